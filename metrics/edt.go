package metrics

import (
	"fmt"
	"math"

	"github.com/covseg/covseg/volume"
)

// SquaredDistanceTransform returns, for every voxel of a grid of size d
// (i fastest), the squared Euclidean distance in mm² from its centre to the
// centre of the nearest feature voxel (feature[v] true), with voxel spacing
// sp millimetres along i, j and k. Feature voxels get 0; if there is no
// feature at all every value is +Inf. workers goroutines share the lines of
// each pass (0 means GOMAXPROCS).
//
// The transform is exact and linear in the number of voxels: the squared
// distance is separable, so a first pass finds the nearest feature along i
// by two scans, and passes along j and k take, on each line, the lower
// envelope of the parabolas f(q) + (s·(x−q))² (Felzenszwalb & Huttenlocher,
// "Distance transforms of sampled functions", Theory of Computing 8, 2012).
// Each value is formed as scipy's distance_transform_edt forms it,
// (Δi·sᵢ)² + (Δj·sⱼ)² + (Δk·sₖ)² summed in that order, so that ties at a
// tolerance compare the same way.
func SquaredDistanceTransform(feature []bool, d volume.Dims, sp [3]float64, workers int) ([]float64, error) {
	if err := d.Valid(); err != nil {
		return nil, fmt.Errorf("metrics: distance transform: %w", err)
	}
	if len(feature) != d.Len() {
		return nil, fmt.Errorf("metrics: distance transform: %d features for dims %v", len(feature), d)
	}
	for a, s := range sp {
		if !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("metrics: distance transform: spacing %g along axis %d is not a positive number", s, a)
		}
	}
	out := make([]float64, d.Len())
	squaredEDT(feature, d, sp, workerCount(workers), out)
	return out, nil
}

// squaredEDT is SquaredDistanceTransform without the checks, writing into out.
func squaredEDT(feature []bool, d volume.Dims, sp [3]float64, workers int, out []float64) {
	n0, n1, n2 := d[0], d[1], d[2]
	const chunk = 64
	parallelChunks(n1*n2, chunk, workers, func(lo, hi int) {
		for line := lo; line < hi; line++ {
			nearestAlongLine(feature[line*n0:(line+1)*n0], sp[0], out[line*n0:(line+1)*n0])
		}
	})
	if n1 > 1 {
		// Lines along j: index L = i + n0·k, start i + n0·n1·k, stride n0.
		// Consecutive L are neighbouring i, so a chunk reuses cache lines.
		parallelChunks(n0*n2, chunk, workers, func(lo, hi int) {
			e := newEnvelope(n1)
			for l := lo; l < hi; l++ {
				e.line(out, l%n0+(l/n0)*n0*n1, n0, sp[1])
			}
		})
	}
	if n2 > 1 {
		// Lines along k: index L = i + n0·j = start, stride n0·n1.
		parallelChunks(n0*n1, chunk, workers, func(lo, hi int) {
			e := newEnvelope(n2)
			for l := lo; l < hi; l++ {
				e.line(out, l, n0*n1, sp[2])
			}
		})
	}
}

// nearestAlongLine writes the squared distance in mm² from each voxel of a
// line to the nearest feature on that line (+Inf if none): a forward scan
// for the feature behind, a backward scan for the one ahead.
func nearestAlongLine(feature []bool, s float64, out []float64) {
	prev := -1
	for i, f := range feature {
		switch {
		case f:
			prev = i
			out[i] = 0
		case prev < 0:
			out[i] = math.Inf(1)
		default:
			t := float64(i-prev) * s
			out[i] = t * t
		}
	}
	next := -1
	for i := len(feature) - 1; i >= 0; i-- {
		if feature[i] {
			next = i
			continue
		}
		if next >= 0 {
			t := float64(next-i) * s
			if t*t < out[i] {
				out[i] = t * t
			}
		}
	}
}

// envelope holds the scratch space of one goroutine for the lower-envelope
// passes: the gathered line, the parabola apexes and their boundaries.
type envelope struct {
	f []float64
	v []int
	z []float64
}

func newEnvelope(n int) *envelope {
	return &envelope{f: make([]float64, n), v: make([]int, n), z: make([]float64, n+1)}
}

// line replaces the n values data[start + q·stride] (q < len(e.f)) by
// min over r of data[start + r·stride] + ((q−r)·s)², skipping +Inf inputs
// (lines without a feature stay +Inf).
func (e *envelope) line(data []float64, start, stride int, s float64) {
	f, v, z := e.f, e.v, e.z
	n := len(f)
	for q, p := 0, start; q < n; q, p = q+1, p+stride {
		f[q] = data[p]
	}
	w := s * s
	k := -1
	for q := 0; q < n; q++ {
		fq := f[q]
		if math.IsInf(fq, 1) {
			continue
		}
		if k < 0 {
			k = 0
			v[0] = q
			z[0], z[1] = math.Inf(-1), math.Inf(1)
			continue
		}
		// Intersection of the parabola at q with the one on top of the
		// envelope; pop those it hides. z[0] = −Inf stops the loop at k = 0.
		var x float64
		for {
			r := v[k]
			x = ((fq + w*float64(q*q)) - (f[r] + w*float64(r*r))) / (2 * w * float64(q-r))
			if x > z[k] {
				break
			}
			k--
		}
		k++
		v[k] = q
		z[k], z[k+1] = x, math.Inf(1)
	}
	if k < 0 {
		return // no feature reaches this line: it is +Inf already
	}
	k = 0
	for q, p := 0, start; q < n; q, p = q+1, p+stride {
		for z[k+1] < float64(q) {
			k++
		}
		r := v[k]
		t := float64(q-r) * s
		data[p] = f[r] + t*t
	}
}
