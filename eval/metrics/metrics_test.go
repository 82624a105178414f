package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
)

// randomPair makes two overlapping blob masks on a random anisotropic grid.
func randomPair(rng *rand.Rand) (truth, pred *mask, sp [3]float64) {
	d := volume.Dims{4 + rng.IntN(20), 4 + rng.IntN(20), 1 + rng.IntN(10)}
	truth, pred = newMask(d), newMask(d)
	w := [3]int{1, 1 + rng.IntN(3), 1 + rng.IntN(9)}
	truth.blobs(rng.Uint64(), 1+rng.IntN(4), 1, 5, w)
	pred.blobs(rng.Uint64(), 1+rng.IntN(4), 1, 5, w)
	if rng.IntN(2) == 0 {
		pred.noise(rng.Uint64(), uint64(rng.IntN(100)))
	}
	sp = [3]float64{0.2 + 3*rng.Float64(), 0.2 + 3*rng.Float64(), 0.5 + 6*rng.Float64()}
	return truth, pred, sp
}

func compare(t *testing.T, truth, pred *mask, sp [3]float64, taus ...float64) *Result {
	t.Helper()
	r, err := Compare(truth.label(sp, 1), pred.label(sp, 1), Options{Taus: taus})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// bruteDirected lists d(p, S(dst)) for p in S(src) by the definition.
func bruteDirected(src, dst []bool, d volume.Dims, sp [3]float64) []float64 {
	var out []float64
	for p, on := range src {
		if !on {
			continue
		}
		best := math.Inf(1)
		for q, f := range dst {
			if !f {
				continue
			}
			a := float64(p%d[0]-q%d[0]) * sp[0]
			b := float64(p/d[0]%d[1]-q/d[0]%d[1]) * sp[1]
			c := float64(p/(d[0]*d[1])-q/(d[0]*d[1])) * sp[2]
			best = min(best, math.Sqrt(a*a+b*b+c*c))
		}
		out = append(out, best)
	}
	slices.Sort(out)
	return out
}

// TestDistancesAgainstBruteForce checks the bounding-box shortcut and the
// transform together against whole-grid brute force.
func TestDistancesAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 60; trial++ {
		tm, pm, sp := randomPair(rng)
		taus := []float64{0, 0.5 + 3*rng.Float64()}
		r := compare(t, tm, pm, sp, taus...)
		if r.TruthVoxels == 0 || r.PredVoxels == 0 {
			continue
		}
		st, spr := bruteSurface(tm.v, tm.d), bruteSurface(pm.v, pm.d)
		dPT, dTP := bruteDirected(spr, st, tm.d, sp), bruteDirected(st, spr, tm.d, sp)
		hd95 := max(percentileSorted(dPT, 95), percentileSorted(dTP, 95))
		hd := max(dPT[len(dPT)-1], dTP[len(dTP)-1])
		checkRel(t, "hd95", float64(r.HD95), hd95, 1e-12)
		checkRel(t, "hd", float64(r.HD), hd, 1e-12)
		for i, tau := range taus {
			nsd := float64(countAtMost(dPT, tau)+countAtMost(dTP, tau)) / float64(len(dPT)+len(dTP))
			checkRel(t, "nsd", float64(r.NSD[i]), nsd, 1e-12)
		}
		checkInt(t, "pred surface", r.PredSurfaceVoxels, len(dPT))
		checkInt(t, "truth surface", r.TruthSurfaceVoxels, len(dTP))
	}
}

func TestPercentileLikeNumpy(t *testing.T) {
	// np.percentile(x, 95) for these arrays, printed by numpy 1.24.2.
	cases := []struct {
		x    []float64
		want float64
	}{
		{[]float64{7}, 7},
		{[]float64{1, 2}, 1.95},
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 19},
		{[]float64{0.5, 1, 1.5, 4, 10}, 8.799999999999999},
	}
	for _, c := range cases {
		if got := percentileSorted(c.x, 95); got != c.want {
			t.Errorf("percentile95(%v) = %.17g, want %.17g", c.x, got, c.want)
		}
	}
}

func TestProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 40; trial++ {
		tm, pm, sp := randomPair(rng)
		taus := []float64{1, 2}
		r := compare(t, tm, pm, sp, taus...)

		// Symmetry: every figure but sensitivity/precision (which swap).
		s := compare(t, pm, tm, sp, taus...)
		sameValue(t, "dice symmetric", r.Dice, s.Dice)
		sameValue(t, "iou symmetric", r.IoU, s.IoU)
		sameValue(t, "hd95 symmetric", r.HD95, s.HD95)
		sameValue(t, "hd symmetric", r.HD, s.HD)
		sameValue(t, "nsd symmetric", r.NSD[1], s.NSD[1])
		sameValue(t, "sensitivity/precision swap", r.Sensitivity, s.Precision)

		// Identical masks.
		id := compare(t, tm, tm, sp, taus...)
		sameValue(t, "dice identical", id.Dice, 1)
		sameValue(t, "hd95 identical", id.HD95, 0)
		sameValue(t, "nsd identical", id.NSD[0], 1)

		// Flipping both masks along each axis changes nothing.
		for ax := 0; ax < 3; ax++ {
			f := compare(t, flip(tm, ax), flip(pm, ax), sp, taus...)
			sameValue(t, "dice flipped", f.Dice, r.Dice)
			closeValue(t, "hd95 flipped", f.HD95, r.HD95)
			closeValue(t, "nsd flipped", f.NSD[0], r.NSD[0])
		}

		if r.HD95.Defined() && !(r.HD95 >= 0 && r.HD >= r.HD95) {
			t.Errorf("hd95 %v, hd %v: want 0 ≤ hd95 ≤ hd", r.HD95, r.HD)
		}

		// Scaling the spacing by c scales distances by c, volumes by c³,
		// and leaves NSD at c·τ unchanged.
		c := 0.5 + 2*rng.Float64()
		csp := [3]float64{c * sp[0], c * sp[1], c * sp[2]}
		sc := compare(t, tm, pm, csp, c*taus[0], c*taus[1])
		closeValue(t, "hd95 scaled", sc.HD95, r.HD95*Value(c))
		closeValue(t, "hd scaled", sc.HD, r.HD*Value(c))
		closeValue(t, "truth_ml scaled", Value(sc.TruthML), Value(r.TruthML*c*c*c))
		sameValue(t, "dice scaled", sc.Dice, r.Dice)
		if r.HD95.Defined() {
			// Ties at exactly τ may round either way after scaling.
			if math.Abs(float64(sc.NSD[1]-r.NSD[1])) > 0.05 {
				t.Errorf("nsd at scaled tau %v, unscaled %v", sc.NSD[1], r.NSD[1])
			}
		}
	}
}

func flip(m *mask, ax int) *mask {
	f := newMask(m.d)
	for k := 0; k < m.d[2]; k++ {
		for j := 0; j < m.d[1]; j++ {
			for i := 0; i < m.d[0]; i++ {
				x := [3]int{i, j, k}
				x[ax] = m.d[ax] - 1 - x[ax]
				f.v[m.d.Index(x[0], x[1], x[2])] = m.v[m.d.Index(i, j, k)]
			}
		}
	}
	return f
}

func sameValue(t *testing.T, what string, got, want Value) {
	t.Helper()
	if got != want && (got.Defined() || want.Defined()) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

func closeValue(t *testing.T, what string, got, want Value) {
	t.Helper()
	if got.Defined() != want.Defined() || got.Defined() && math.Abs(float64(got-want)) > 1e-9*math.Max(1, math.Abs(float64(want))) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

func TestEmptyMaskConventions(t *testing.T) {
	d := volume.Dims{6, 5, 4}
	sp := [3]float64{0.5, 0.7, 2}
	empty, some := newMask(d), newMask(d)
	some.box([3]int{1, 1, 1}, [3]int{4, 3, 3})
	vox := 0.5 * 0.7 * 2 / 1000
	u := Undefined()
	for _, c := range []struct {
		name                       string
		truth, pred                *mask
		dice, iou, sens, prec, nsd Value
		hd95, hd                   Value
		truthML, predML            float64
	}{
		{"both empty", empty, empty, 1, 1, 1, 1, 1, 0, 0, 0, 0},
		{"truth empty", empty, some, 0, 0, u, 0, 0, u, u, 0, 12 * vox},
		{"prediction empty", some, empty, 0, 0, 0, u, 0, u, u, 12 * vox, 0},
	} {
		r := compare(t, c.truth, c.pred, sp, 1, 3)
		sameValue(t, c.name+" dice", r.Dice, c.dice)
		sameValue(t, c.name+" iou", r.IoU, c.iou)
		sameValue(t, c.name+" sensitivity", r.Sensitivity, c.sens)
		sameValue(t, c.name+" precision", r.Precision, c.prec)
		sameValue(t, c.name+" hd95", r.HD95, c.hd95)
		sameValue(t, c.name+" hd", r.HD, c.hd)
		sameValue(t, c.name+" nsd 1", r.NSD[0], c.nsd)
		sameValue(t, c.name+" nsd 3", r.NSD[1], c.nsd)
		checkAbs(t, c.name+" truth_ml", r.TruthML, c.truthML, 1e-15)
		checkAbs(t, c.name+" pred_ml", r.PredML, c.predML, 1e-15)
	}
}

func TestLabelSelection(t *testing.T) {
	tm, pm, sp := syntheticCase(t, "shifted_ellipsoid")
	want, err := Compare(tm.label(sp, 1), pm.label(sp, 1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Put the masks in class 2 of multi-class maps with a distracting class 1.
	truth, pred := tm.label(sp, 2), pm.label(sp, 2)
	for p := range truth.Data {
		if truth.Data[p] == 0 && p%3 == 0 {
			truth.Data[p] = 1
		}
		if pred.Data[p] == 0 && p%5 == 0 {
			pred.Data[p] = 1
		}
	}
	got, err := Compare(truth, pred, Options{Label: 2})
	if err != nil {
		t.Fatal(err)
	}
	sameValue(t, "dice of class 2", got.Dice, want.Dice)
	sameValue(t, "hd95 of class 2", got.HD95, want.HD95)
	sameValue(t, "nsd of class 2", got.NSD[0], want.NSD[0])
	any, _ := Compare(truth, pred, Options{})
	if any.Dice == want.Dice {
		t.Error("label 0 (> 0) gave the same Dice as class 2 alone")
	}
}

func TestCompareRejectsBadInput(t *testing.T) {
	sp := [3]float64{1, 1, 2}
	a := newMask(volume.Dims{4, 4, 3}).label(sp, 1)
	b := newMask(volume.Dims{4, 4, 4}).label(sp, 1)
	if _, err := Compare(a, b, Options{}); err == nil || !strings.Contains(err.Error(), "dims") {
		t.Errorf("different dims: %v", err)
	}
	moved := a.Clone()
	moved.Affine[0][3] += 0.01
	if _, err := Compare(a, moved, Options{}); err == nil || !strings.Contains(err.Error(), "affine") {
		t.Errorf("affine 0.01 mm off: %v", err)
	}
	near := a.Clone()
	near.Affine[1][3] += 0.0005
	if _, err := Compare(a, near, Options{}); err != nil {
		t.Errorf("affine 0.0005 mm off: %v", err)
	}
	for _, tau := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := Compare(a, a, Options{Taus: []float64{tau}}); err == nil {
			t.Errorf("tau %v accepted", tau)
		}
	}
	if _, err := Compare(a, a, Options{Label: 256}); err == nil {
		t.Error("label 256 accepted")
	}
	short := a.Clone()
	short.Data = short.Data[:5]
	if _, err := Compare(a, short, Options{}); err == nil {
		t.Error("short data accepted")
	}
	if _, err := Compare(nil, a, Options{}); err == nil {
		t.Error("nil truth accepted")
	}
	flat := a.Clone()
	flat.Affine[2][2] = 0
	if _, err := Compare(flat, flat, Options{}); err == nil {
		t.Error("zero spacing accepted")
	}
}

func TestValueJSON(t *testing.T) {
	in := struct {
		A, B Value
	}{1.5, Undefined()}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":1.5,"B":null}` {
		t.Errorf("marshal: %s", b)
	}
	var out struct{ A, B Value }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.A != 1.5 || out.B.Defined() {
		t.Errorf("round trip: %+v", out)
	}
	if err := json.Unmarshal([]byte(`{"A":"x"}`), &out); err == nil {
		t.Error("string accepted as a value")
	}
}

func TestSummarize(t *testing.T) {
	rs := []*Result{
		{TruthVoxels: 10, PredVoxels: 10, IntersectionVoxels: 8, Dice: 0.8, HD95: 2, Taus: []float64{1}, NSD: []Value{0.9}},
		{TruthVoxels: 0, PredVoxels: 5, IntersectionVoxels: 0, Dice: 0, HD95: Undefined(), Taus: []float64{1}, NSD: []Value{0}},
		{TruthVoxels: 30, PredVoxels: 20, IntersectionVoxels: 15, Dice: 0.6, HD95: 5, Taus: []float64{1}, NSD: []Value{0.7}},
		{TruthVoxels: 0, PredVoxels: 0, Dice: 1, HD95: 0, Taus: []float64{1}, NSD: []Value{1}},
	}
	s := Summarize(rs)
	checkInt(t, "cases", s.Cases, 4)
	checkInt(t, "empty truths", s.EmptyTruths, 2)
	checkInt(t, "empty preds", s.EmptyPreds, 1)
	checkInt(t, "both empty", s.BothEmpty, 1)
	checkAbs(t, "pooled dice", float64(s.PooledDice), 2.0*23/75, 1e-15)
	checkInt(t, "dice n", s.Dice.N, 4)
	checkAbs(t, "dice mean", float64(s.Dice.Mean), 0.6, 1e-15)
	// sample SD of 0.8, 0, 0.6, 1: sqrt(((.2)²+(.6)²+0+(.4)²)/3)
	checkAbs(t, "dice sd", float64(s.Dice.SD), math.Sqrt(0.56/3), 1e-15)
	checkAbs(t, "dice median", float64(s.Dice.Median), 0.7, 1e-15)
	checkInt(t, "hd95 n", s.HD95.N, 3)
	checkAbs(t, "hd95 median", float64(s.HD95.Median), 2, 0)
	checkAbs(t, "nsd mean", float64(s.NSD[0].Mean), 2.6/4, 1e-15)
	one := Describe([]float64{3, math.NaN()})
	if one.N != 1 || one.Mean != 3 || one.SD.Defined() || one.Median != 3 {
		t.Errorf("Describe of one value: %+v", one)
	}
	if none := Summarize(nil); none.Cases != 0 || none.PooledDice.Defined() || none.Dice.Mean.Defined() {
		t.Errorf("Summarize(nil) = %+v", none)
	}
}
