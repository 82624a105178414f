package lungs

import (
	"math/rand/v2"
	"testing"
)

// floodLabels labels a mask by breadth-first flood fill, components
// numbered in raster order of their first pixel: the reference for labeler.
func floodLabels(mask []uint8, w, h int, conn8 bool) ([]int32, int) {
	lab := make([]int32, w*h)
	n := int32(0)
	for p := range mask {
		if mask[p] == 0 || lab[p] != 0 {
			continue
		}
		n++
		lab[p] = n
		queue := []int{p}
		for len(queue) > 0 {
			q := queue[0]
			queue = queue[1:]
			x, y := q%w, q/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if (dx == 0 && dy == 0) || (!conn8 && dx != 0 && dy != 0) {
						continue
					}
					xx, yy := x+dx, y+dy
					if xx < 0 || yy < 0 || xx >= w || yy >= h {
						continue
					}
					if r := yy*w + xx; mask[r] != 0 && lab[r] == 0 {
						lab[r] = n
						queue = append(queue, r)
					}
				}
			}
		}
	}
	return lab, int(n)
}

func TestLabelerMatchesFloodFill(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var lb labeler
	for trial := 0; trial < 300; trial++ {
		w, h := 1+rng.IntN(40), 1+rng.IntN(40)
		density := rng.Float64()
		mask := make([]uint8, w*h)
		for i := range mask {
			if rng.Float64() < density {
				mask[i] = 1
			}
		}
		for _, conn8 := range []bool{false, true} {
			want, wn := floodLabels(mask, w, h, conn8)
			got := make([]int32, w*h)
			for i := range got {
				got[i] = -7 // label must overwrite everything
			}
			n := lb.label(got, mask, w, h, conn8)
			if n != wn {
				t.Fatalf("trial %d conn8=%v: %d components, want %d", trial, conn8, n, wn)
			}
			area := make([]int32, n+1)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("trial %d conn8=%v: pixel %d labelled %d, want %d", trial, conn8, i, got[i], want[i])
				}
				area[want[i]]++
			}
			for l := 1; l <= n; l++ {
				if lb.area[l] != area[l] {
					t.Fatalf("trial %d: area of %d is %d, want %d", trial, l, lb.area[l], area[l])
				}
			}
		}
	}
}

func TestLabelerConnectivity(t *testing.T) {
	// Two pixels touching at a corner: one component in 8-connectivity,
	// two in 4-connectivity.
	mask := []uint8{
		1, 0,
		0, 1,
	}
	var lb labeler
	lab := make([]int32, 4)
	if n := lb.label(lab, mask, 2, 2, false); n != 2 {
		t.Errorf("4-connectivity: %d components, want 2", n)
	}
	if n := lb.label(lab, mask, 2, 2, true); n != 1 {
		t.Errorf("8-connectivity: %d components, want 1", n)
	}
	// A U shape whose arms join only at the bottom: the union must reach
	// back to the first run.
	u := []uint8{
		1, 0, 1, 0, 1,
		1, 0, 1, 0, 1,
		1, 1, 1, 1, 1,
	}
	lab = make([]int32, len(u))
	if n := lb.label(lab, u, 5, 3, false); n != 1 {
		t.Errorf("U shape: %d components, want 1 (labels %v)", n, lab)
	}
}
