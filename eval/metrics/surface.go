package metrics

import (
	"fmt"

	"github.com/covseg/covseg/volume"
)

// Surface returns the surface of a mask on a grid of size d (i fastest):
// the mask voxels with at least one of their six face neighbours outside
// the mask, where positions outside the array count as outside.
func Surface(mask []bool, d volume.Dims) ([]bool, error) {
	if err := d.Valid(); err != nil {
		return nil, fmt.Errorf("metrics: surface: %w", err)
	}
	if len(mask) != d.Len() {
		return nil, fmt.Errorf("metrics: surface: %d voxels for dims %v", len(mask), d)
	}
	out := make([]bool, len(mask))
	surface(mask, d, 0, out)
	return out, nil
}

// surface writes the surface of mask into out and returns its size.
func surface(mask []bool, d volume.Dims, workers int, out []bool) int {
	n0, n1, n2 := d[0], d[1], d[2]
	s0, s1 := 1, n0
	s2 := n0 * n1
	counts := make([]int, n2)
	parallelChunks(n2, 1, workerCount(workers), func(lo, hi int) {
		for k := lo; k < hi; k++ {
			c := 0
			for j := 0; j < n1; j++ {
				base := s1*j + s2*k
				for i := 0; i < n0; i++ {
					p := base + i
					if !mask[p] {
						continue
					}
					edge := i == 0 || i == n0-1 || j == 0 || j == n1-1 || k == 0 || k == n2-1
					if edge || !mask[p-s0] || !mask[p+s0] || !mask[p-s1] || !mask[p+s1] || !mask[p-s2] || !mask[p+s2] {
						out[p] = true
						c++
					}
				}
			}
			counts[k] = c
		}
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	return total
}
