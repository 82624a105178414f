package metrics

import (
	"fmt"
	"math"
	"slices"

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
// (Δi·sᵢ)² + (Δj·sⱼ)² + (Δk·sₖ)² summed in that order, so that the two
// agree to the last bit wherever they pick the same nearest feature.
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
	squaredEDT(feature, d, sp, workerCount(workers), nil, out)
	return out, nil
}

// squaredEDT is SquaredDistanceTransform without the checks, writing into
// out. If need is not nil, only the columns (i, j) with need[i + n0·j] are
// certain to be right: the last pass skips the others, which is how
// Compare saves the work for columns without a surface voxel to measure.
func squaredEDT(feature []bool, d volume.Dims, sp [3]float64, workers int, need []bool, out []float64) {
	n0, n1, n2 := d[0], d[1], d[2]
	const chunk = 64
	lineHas := make([]bool, n1*n2)
	parallelChunks(n1*n2, chunk, workers, func(lo, hi int) {
		for line := lo; line < hi; line++ {
			lineHas[line] = nearestAlongLine(feature[line*n0:(line+1)*n0], sp[0], out[line*n0:(line+1)*n0])
		}
	})
	// A slice without a feature stays +Inf through the pass along j.
	sliceHas := make([]bool, n2)
	for line, has := range lineHas {
		if has {
			sliceHas[line/n1] = true
		}
	}
	if n1 > 1 {
		// Lines along j: for line L = i + n0·k, start i + n0·n1·k, stride n0.
		parallelChunks(n0*n2, chunk, workers, func(lo, hi int) {
			e := newEnvelope(n1)
			for l := lo; l < hi; {
				i, k := l%n0, l/n0
				nb := min(batch, n0-i, hi-l) // stay within one k and the chunk
				if sliceHas[k] {
					e.lines(out, i+n0*n1*k, nb, n0, sp[1])
				}
				l += nb
			}
		})
	}
	if n2 > 1 {
		// Lines along k: for line L = i + n0·j, start L, stride n0·n1.
		parallelChunks(n0*n1, chunk, workers, func(lo, hi int) {
			e := newEnvelope(n2)
			for l := lo; l < hi; {
				nb := min(batch, n0-l%n0, hi-l)
				if need == nil || slices.Contains(need[l:l+nb], true) {
					e.lines(out, l, nb, n0*n1, sp[2])
				}
				l += nb
			}
		})
	}
}

// batch is how many neighbouring lines (adjacent in memory, 64 bytes of
// float64) an envelope pass gathers together: reading a whole cache line per
// position instead of one value makes the strided passes several times
// faster.
const batch = 8

// nearestAlongLine writes the squared distance in mm² from each voxel of a
// line to the nearest feature on that line (+Inf if none): a forward scan
// for the feature behind, a backward scan for the one ahead. It reports
// whether the line holds a feature.
func nearestAlongLine(feature []bool, s float64, out []float64) bool {
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
	if prev < 0 {
		return false
	}
	next := -1
	for i := prev; i >= 0; i-- {
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
	return true
}

// envelope holds the scratch space of one goroutine for the lower-envelope
// passes: a batch of gathered lines and their results, the parabola apexes
// and their boundaries.
type envelope struct {
	n    int
	f, g []float64 // batch·n inputs and outputs, line b at [b·n, (b+1)·n)
	v    []int
	z    []float64
}

func newEnvelope(n int) *envelope {
	return &envelope{n: n, f: make([]float64, batch*n), g: make([]float64, batch*n),
		v: make([]int, n), z: make([]float64, n+1)}
}

// lines applies line to the nb lines starting at start, start+1, …,
// start+nb−1 (each with the given stride), gathering them together.
func (e *envelope) lines(data []float64, start, nb, stride int, s float64) {
	n := e.n
	for q, p := 0, start; q < n; q, p = q+1, p+stride {
		row := data[p : p+nb]
		for b, x := range row {
			e.f[b*n+q] = x
		}
	}
	for b := 0; b < nb; b++ {
		e.line(e.f[b*n:(b+1)*n], e.g[b*n:(b+1)*n], s)
	}
	for q, p := 0, start; q < n; q, p = q+1, p+stride {
		row := data[p : p+nb]
		for b := range row {
			row[b] = e.g[b*n+q]
		}
	}
}

// line sets out[q] = min over r of f[r] + ((q−r)·s)², skipping +Inf inputs
// (a line without a finite input stays +Inf).
func (e *envelope) line(f, out []float64, s float64) {
	v, z := e.v, e.z
	n := len(f)
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
		copy(out, f) // all +Inf
		return
	}
	k = 0
	for q := 0; q < n; q++ {
		for z[k+1] < float64(q) {
			k++
		}
		r := v[k]
		t := float64(q-r) * s
		out[q] = f[r] + t*t
	}
}
