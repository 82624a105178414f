package metrics

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/covseg/covseg/volume"
)

// AffineTolerance is the largest difference, in millimetres, between
// corresponding entries of the truth's and the prediction's affines for
// them to count as the same grid.
const AffineTolerance = 1e-3

// Options control Compare.
type Options struct {
	// Taus are the tolerances of the normalised surface Dice in mm
	// (each ≥ 0); none means the single tolerance 1 mm.
	Taus []float64
	// Label selects the class: 0 reads every label > 0 as foreground, N > 0
	// reads only voxels labelled N.
	Label int
	// Workers is the number of goroutines for one comparison's surfaces and
	// distance transforms; 0 means GOMAXPROCS.
	Workers int
}

// Result holds the figures of one truth/prediction pair. The package
// documentation defines each; undefined figures are NaN Values.
type Result struct {
	TruthVoxels        int     `json:"truth_voxels"`
	PredVoxels         int     `json:"pred_voxels"`
	IntersectionVoxels int     `json:"intersection_voxels"`
	TruthML            float64 `json:"truth_ml"`
	PredML             float64 `json:"pred_ml"`
	DiffML             float64 `json:"volume_diff_ml"` // PredML − TruthML
	Dice               Value   `json:"dice"`
	IoU                Value   `json:"iou"`
	Sensitivity        Value   `json:"sensitivity"`
	Precision          Value   `json:"precision"`
	HD95               Value   `json:"hd95_mm"`
	HD                 Value   `json:"hd_mm"`
	// Taus are the NSD tolerances in mm and NSD the surface Dice at each.
	Taus []float64 `json:"taus_mm"`
	NSD  []Value   `json:"nsd"`
	// Surface sizes in voxels (0 when the distances were not needed).
	TruthSurfaceVoxels int `json:"truth_surface_voxels"`
	PredSurfaceVoxels  int `json:"pred_surface_voxels"`
}

// CheckGrid returns an error unless truth and pred have the same dims and
// affines equal within AffineTolerance mm.
func CheckGrid(truth, pred *volume.Label) error {
	if truth.Dims != pred.Dims {
		return fmt.Errorf("grids differ: truth dims %v, prediction dims %v", truth.Dims, pred.Dims)
	}
	if !truth.Affine.Equal(pred.Affine, AffineTolerance) {
		return fmt.Errorf("grids differ: truth affine %v, prediction affine %v (tolerance %g mm)",
			truth.Affine, pred.Affine, AffineTolerance)
	}
	return nil
}

// Compare computes the figures of pred against truth. The grids must match
// (CheckGrid); spacing and voxel volume come from truth's affine.
func Compare(truth, pred *volume.Label, opt Options) (*Result, error) {
	if err := checkLabel(truth); err != nil {
		return nil, fmt.Errorf("metrics: truth: %w", err)
	}
	if err := checkLabel(pred); err != nil {
		return nil, fmt.Errorf("metrics: prediction: %w", err)
	}
	if err := CheckGrid(truth, pred); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	taus := opt.Taus
	if len(taus) == 0 {
		taus = []float64{1}
	}
	for _, t := range taus {
		if !(t >= 0) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("metrics: tolerance %g mm is not a number ≥ 0", t)
		}
	}
	if opt.Label < 0 || opt.Label > 255 {
		return nil, fmt.Errorf("metrics: label %d is outside 0..255", opt.Label)
	}
	sp := truth.Affine.Spacing()
	for a, s := range sp {
		if !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("metrics: truth spacing %g along axis %d is not a positive number", s, a)
		}
	}
	workers := workerCount(opt.Workers)
	sel := selector(opt.Label)
	c := count(truth, pred, sel, workers)

	// Voxel volume as metrics_ref.py forms it: np.prod(spacing) / 1000.
	voxML := sp[0] * sp[1] * sp[2] / 1000
	r := &Result{
		TruthVoxels:        c.t,
		PredVoxels:         c.p,
		IntersectionVoxels: c.tp,
		TruthML:            float64(c.t) * voxML,
		PredML:             float64(c.p) * voxML,
		Taus:               append([]float64(nil), taus...),
		NSD:                make([]Value, len(taus)),
	}
	r.DiffML = r.PredML - r.TruthML
	r.Sensitivity = ratio(c.tp, c.t)
	r.Precision = ratio(c.tp, c.p)
	switch {
	case c.t == 0 && c.p == 0:
		r.Dice, r.IoU, r.Sensitivity, r.Precision = 1, 1, 1, 1
		r.HD95, r.HD = 0, 0
		for i := range r.NSD {
			r.NSD[i] = 1
		}
		return r, nil
	case c.t == 0 || c.p == 0:
		r.Dice, r.IoU = 0, 0
		r.HD95, r.HD = Undefined(), Undefined()
		for i := range r.NSD {
			r.NSD[i] = 0
		}
		return r, nil
	}
	r.Dice = Value(float64(2*c.tp) / float64(c.t+c.p))
	r.IoU = Value(float64(c.tp) / float64(c.t+c.p-c.tp))

	dPT, dTP := surfaceDistances(truth, pred, sel, c.box, sp, workers)
	r.PredSurfaceVoxels, r.TruthSurfaceVoxels = len(dPT), len(dTP)
	slices.Sort(dPT)
	slices.Sort(dTP)
	r.HD95 = Value(max(percentileSorted(dPT, 95), percentileSorted(dTP, 95)))
	r.HD = Value(max(dPT[len(dPT)-1], dTP[len(dTP)-1]))
	for i, tau := range taus {
		within := countAtMost(dPT, tau) + countAtMost(dTP, tau)
		r.NSD[i] = Value(float64(within) / float64(len(dPT)+len(dTP)))
	}
	return r, nil
}

func checkLabel(l *volume.Label) error {
	if l == nil {
		return fmt.Errorf("no label map")
	}
	if err := l.Dims.Valid(); err != nil {
		return err
	}
	if len(l.Data) != l.Dims.Len() {
		return fmt.Errorf("%d voxels for dims %v", len(l.Data), l.Dims)
	}
	return nil
}

// ratio returns a/b, undefined when b is 0.
func ratio(a, b int) Value {
	if b == 0 {
		return Undefined()
	}
	return Value(float64(a) / float64(b))
}

// selection tells, for each label value, whether it is foreground: a table
// rather than a function so that the per-voxel test inlines.
type selection [256]bool

// selector returns the selection of Options.Label.
func selector(label int) *selection {
	var s selection
	if label == 0 {
		for x := 1; x < 256; x++ {
			s[x] = true
		}
	} else {
		s[label] = true
	}
	return &s
}

// box is a half-open voxel box [lo, hi) on each axis.
type box struct{ lo, hi [3]int }

func (b box) dims() volume.Dims {
	return volume.Dims{b.hi[0] - b.lo[0], b.hi[1] - b.lo[1], b.hi[2] - b.lo[2]}
}

// counts holds |T|, |P|, |T∩P| and the bounding box of T ∪ P.
type counts struct {
	t, p, tp int
	box      box
}

// count takes one parallel pass over the grid, slice by slice. Label 0 is
// never foreground, so runs of eight background voxels in both maps (most
// of a lesion mask) are skipped a word at a time.
func count(truth, pred *volume.Label, sel *selection, workers int) counts {
	d := truth.Dims
	per := make([]counts, d[2])
	plane := d[0] * d[1]
	parallelChunks(d[2], 1, workers, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			c := counts{box: box{lo: [3]int{d[0], d[1], k}, hi: [3]int{0, 0, k}}}
			tv, pv := truth.Data[k*plane:(k+1)*plane], pred.Data[k*plane:(k+1)*plane]
			for p0 := 0; p0 < plane; p0 += 8 {
				p1 := min(p0+8, plane)
				if p1-p0 == 8 && binary.LittleEndian.Uint64(tv[p0:])|binary.LittleEndian.Uint64(pv[p0:]) == 0 {
					continue
				}
				for p := p0; p < p1; p++ {
					t, q := sel[tv[p]], sel[pv[p]]
					if !t && !q {
						continue
					}
					if t {
						c.t++
					}
					if q {
						c.p++
					}
					if t && q {
						c.tp++
					}
					i, j := p%d[0], p/d[0]
					c.box.lo[0], c.box.hi[0] = min(c.box.lo[0], i), max(c.box.hi[0], i+1)
					c.box.lo[1], c.box.hi[1] = min(c.box.lo[1], j), max(c.box.hi[1], j+1)
					c.box.hi[2] = k + 1
				}
			}
			per[k] = c
		}
	})
	all := counts{box: box{lo: [3]int{d[0], d[1], d[2]}}}
	for _, c := range per {
		if c.t == 0 && c.p == 0 {
			continue
		}
		all.t += c.t
		all.p += c.p
		all.tp += c.tp
		for a := 0; a < 3; a++ {
			all.box.lo[a] = min(all.box.lo[a], c.box.lo[a])
			all.box.hi[a] = max(all.box.hi[a], c.box.hi[a])
		}
	}
	return all
}

// surfaceDistances returns D(P→T) and D(T→P) in mm, computed inside b, the
// bounding box of T ∪ P (exact: see the package documentation).
func surfaceDistances(truth, pred *volume.Label, sel *selection, b box, sp [3]float64, workers int) (dPT, dTP []float64) {
	bd := b.dims()
	n := bd.Len()
	tm, pm := make([]bool, n), make([]bool, n)
	parallelChunks(bd[2], 1, workers, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			for j := 0; j < bd[1]; j++ {
				src := truth.Dims.Index(b.lo[0], b.lo[1]+j, b.lo[2]+k)
				dst := bd.Index(0, j, k)
				for i := 0; i < bd[0]; i++ {
					tm[dst+i] = sel[truth.Data[src+i]]
					pm[dst+i] = sel[pred.Data[src+i]]
				}
			}
		}
	})
	ts, ps := make([]bool, n), make([]bool, n)
	nt := surface(tm, bd, workers, ts)
	np := surface(pm, bd, workers, ps)

	sq := make([]float64, n)
	squaredEDT(ts, bd, sp, workers, columns(ps, bd), sq)
	dPT = gather(sq, ps, np)
	squaredEDT(ps, bd, sp, workers, columns(ts, bd), sq)
	dTP = gather(sq, ts, nt)
	return dPT, dTP
}

// columns flags the columns (i, j) that hold a voxel of s: the only ones
// whose distances are read.
func columns(s []bool, d volume.Dims) []bool {
	plane := d[0] * d[1]
	c := make([]bool, plane)
	for p, on := range s {
		if on {
			c[p%plane] = true
		}
	}
	return c
}

// gather returns sqrt(sq[v]) for every v where at[v], in index order.
func gather(sq []float64, at []bool, n int) []float64 {
	out := make([]float64, 0, n)
	for v, ok := range at {
		if ok {
			out = append(out, math.Sqrt(sq[v]))
		}
	}
	return out
}

// countAtMost returns how many of the sorted values are ≤ x.
func countAtMost(sorted []float64, x float64) int {
	i, _ := slices.BinarySearchFunc(sorted, x, func(e, t float64) int {
		if e <= t {
			return -1
		}
		return 1
	})
	return i
}

// percentileSorted returns the q-th percentile of sorted (ascending,
// non-empty) exactly as numpy.percentile's default "linear" method does:
// virtual index h = (n−1)·(q/100), then a lerp between the neighbouring order
// statistics written as numpy's _lerp writes it (from the upper neighbour
// when the weight is ≥ 0.5), so that results agree to the last bit.
func percentileSorted(sorted []float64, q float64) float64 {
	n := len(sorted)
	h := float64(n-1) * (q / 100)
	if h >= float64(n-1) {
		return sorted[n-1]
	}
	if h < 0 {
		return sorted[0]
	}
	lo := math.Floor(h)
	a, b := sorted[int(lo)], sorted[int(lo)+1]
	t := h - lo
	diff := b - a
	if t >= 0.5 {
		return b - diff*(1-t)
	}
	return a + diff*t
}
