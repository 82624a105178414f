package metrics

import (
	"math"
	"testing"

	"github.com/covseg/covseg/volume"
)

// The masks below are made by integer recipes that testdata/synthetic_ref.py
// repeats in numpy; the expected figures are what metrics_ref.py printed for
// them (taus 0, 1, 2.5 and 3 mm), pasted here so that tests need no Python.

// lcg is the 64-bit linear congruential generator of synthetic_ref.py.
type lcg struct{ s uint64 }

func (g *lcg) next() uint64 {
	g.s = g.s*6364136223846793005 + 1442695040888963407
	return g.s >> 33
}

// mask is a boolean grid indexed [i, j, k] through volume.Dims.Index.
type mask struct {
	d volume.Dims
	v []bool
}

func newMask(d volume.Dims) *mask { return &mask{d: d, v: make([]bool, d.Len())} }

func (m *mask) set(i, j, k int) { m.v[m.d.Index(i, j, k)] = true }

// ellipsoid ORs in the voxels with Σ w[a]·(x_a − c[a])² ≤ r2.
func (m *mask) ellipsoid(c, w [3]int, r2 int) {
	for k := 0; k < m.d[2]; k++ {
		for j := 0; j < m.d[1]; j++ {
			for i := 0; i < m.d[0]; i++ {
				di, dj, dk := i-c[0], j-c[1], k-c[2]
				if w[0]*di*di+w[1]*dj*dj+w[2]*dk*dk <= r2 {
					m.set(i, j, k)
				}
			}
		}
	}
}

func (m *mask) blobs(seed uint64, n, rmin, rmax int, w [3]int) {
	g := &lcg{seed}
	for b := 0; b < n; b++ {
		var c [3]int
		for a := range c {
			c[a] = int(g.next() % uint64(m.d[a]))
		}
		r := rmin + int(g.next()%uint64(rmax-rmin+1))
		m.ellipsoid(c, w, r*r)
	}
}

func (m *mask) noise(seed uint64, perMille uint64) {
	g := &lcg{seed}
	for p := range m.v { // i fastest, as the reference loops
		if g.next()%1000 < perMille {
			m.v[p] = !m.v[p]
		}
	}
}

func (m *mask) box(lo, hi [3]int) {
	for k := lo[2]; k < hi[2]; k++ {
		for j := lo[1]; j < hi[1]; j++ {
			for i := lo[0]; i < hi[0]; i++ {
				m.set(i, j, k)
			}
		}
	}
}

// label turns the mask into a volume.Label with value fg inside, on an
// axis-aligned grid with the given spacing and an arbitrary origin.
func (m *mask) label(sp [3]float64, fg uint8) *volume.Label {
	l, _ := volume.NewLabel(m.d, volume.Diag(sp, [3]float64{-12.5, 30, 7}))
	for p, in := range m.v {
		if in {
			l.Data[p] = fg
		}
	}
	return l
}

// syntheticCase rebuilds the case name of synthetic_ref.py.
func syntheticCase(t testing.TB, name string) (truth, pred *mask, sp [3]float64) {
	switch name {
	case "blobs_aniso":
		d := volume.Dims{48, 40, 16}
		truth, pred = newMask(d), newMask(d)
		truth.blobs(1, 5, 3, 8, [3]int{1, 1, 36})
		pred.blobs(1, 5, 4, 9, [3]int{1, 1, 36})
		pred.blobs(2, 2, 2, 5, [3]int{1, 1, 36})
		pred.noise(7, 20)
		return truth, pred, [3]float64{0.8, 0.7, 5.0}
	case "shifted_ellipsoid":
		d := volume.Dims{37, 29, 11}
		truth, pred = newMask(d), newMask(d)
		truth.ellipsoid([3]int{18, 14, 5}, [3]int{4, 9, 100}, 900)
		pred.ellipsoid([3]int{20, 13, 6}, [3]int{5, 8, 90}, 1000)
		return truth, pred, [3]float64{0.6, 0.95, 3.0}
	case "border_full":
		d := volume.Dims{10, 9, 7}
		truth, pred = newMask(d), newMask(d)
		truth.box([3]int{0, 0, 0}, d)
		pred.box([3]int{1, 0, 2}, [3]int{9, 9, 7})
		return truth, pred, [3]float64{1.5, 0.5, 2.0}
	case "single_voxels":
		d := volume.Dims{9, 8, 6}
		truth, pred = newMask(d), newMask(d)
		truth.set(1, 2, 3)
		pred.set(7, 5, 0)
		return truth, pred, [3]float64{0.3, 0.4, 1.2}
	case "noise_iso":
		d := volume.Dims{30, 30, 8}
		truth, pred = newMask(d), newMask(d)
		truth.noise(3, 300)
		pred.noise(4, 300)
		return truth, pred, [3]float64{1, 1, 1}
	case "one_slice":
		d := volume.Dims{25, 20, 1}
		truth, pred = newMask(d), newMask(d)
		truth.blobs(11, 3, 2, 6, [3]int{1, 1, 1})
		pred.blobs(12, 3, 2, 6, [3]int{1, 1, 1})
		return truth, pred, [3]float64{0.5, 0.6, 3.0}
	case "thin_line":
		d := volume.Dims{1, 17, 23}
		truth, pred = newMask(d), newMask(d)
		truth.blobs(21, 2, 3, 7, [3]int{1, 1, 1})
		pred.blobs(22, 2, 3, 7, [3]int{1, 1, 1})
		pred.noise(23, 50)
		return truth, pred, [3]float64{2.0, 0.9, 1.1}
	}
	t.Fatalf("unknown synthetic case %q", name)
	return nil, nil, sp
}

var syntheticTaus = []float64{0, 1, 2.5, 3}

// syntheticExpected was printed by
// /usr/bin/python3 testdata/synthetic_ref.py ../../shared/tools/metrics_ref.py
// (numpy 1.24.2, scipy 1.10.1).
var syntheticExpected = []struct {
	name                       string
	truthVoxels, predVoxels    int
	inter                      int
	truthML, predML, dice, iou float64
	hd95, hd                   float64
	nsd                        []float64
}{
	{name: "blobs_aniso", truthVoxels: 731, predVoxels: 1828, inter: 716, truthML: 2.0468, predML: 5.1184, dice: 0.5595935912465807, iou: 0.38849701573521433, hd95: 19.412244747411457, hd: 32.350579592953196, nsd: []float64{0.427797833935018, 0.5983754512635379, 0.6981046931407943, 0.7125451263537906}},
	{name: "shifted_ellipsoid", truthVoxels: 1837, predVoxels: 2233, inter: 1479, truthML: 3.14127, predML: 3.8184299999999998, dice: 0.7267813267813268, iou: 0.5708220764183712, hd95: 4.181207959429906, hd: 6.0, nsd: []float64{0.24416135881104034, 0.3858811040339703, 0.6395966029723992, 0.833864118895966}},
	{name: "border_full", truthVoxels: 630, predVoxels: 360, inter: 360, truthML: 0.9450000000000001, predML: 0.54, dice: 0.7272727272727273, iou: 0.5714285714285714, hd95: 4.149601029962324, hd: 4.272001872658765, nsd: []float64{0.4657534246575342, 0.5616438356164384, 0.8458904109589042, 0.8458904109589042}},
	{name: "single_voxels", truthVoxels: 1, predVoxels: 1, inter: 0, truthML: 0.00014399999999999998, predML: 0.00014399999999999998, dice: 0.0, iou: 0.0, hd95: 4.199999999999999, hd: 4.199999999999999, nsd: []float64{0.0, 0.0, 0.0, 0.0}},
	{name: "noise_iso", truthVoxels: 2169, predVoxels: 2206, inter: 676, truthML: 2.169, predML: 2.206, dice: 0.30902857142857143, iou: 0.18275209516085428, hd95: 1.4142135623730951, hd: 2.23606797749979, nsd: []float64{0.3090992226794696, 0.9108367626886146, 1.0, 1.0}},
	{name: "one_slice", truthVoxels: 162, predVoxels: 150, inter: 80, truthML: 0.14579999999999999, predML: 0.13499999999999998, dice: 0.5128205128205128, iou: 0.3448275862068966, hd95: 2.684738170265828, hd: 3.49857113690718, nsd: []float64{0.5128205128205128, 0.7211538461538461, 0.9583333333333334, 0.9839743589743589}},
	{name: "thin_line", truthVoxels: 65, predVoxels: 200, inter: 18, truthML: 0.1287, predML: 0.396, dice: 0.13584905660377358, iou: 0.0728744939271255, hd95: 8.538543522137974, hd: 9.88382517044894, nsd: []float64{0.13584905660377358, 0.22641509433962265, 0.4641509433962264, 0.5132075471698113}},
}

func TestSyntheticAgainstReference(t *testing.T) {
	for _, e := range syntheticExpected {
		t.Run(e.name, func(t *testing.T) {
			tm, pm, sp := syntheticCase(t, e.name)
			// Label 0 reads any value > 0: use different foreground values.
			r, err := Compare(tm.label(sp, 1), pm.label(sp, 7), Options{Taus: syntheticTaus, Workers: 3})
			if err != nil {
				t.Fatal(err)
			}
			checkInt(t, "truth voxels", r.TruthVoxels, e.truthVoxels)
			checkInt(t, "pred voxels", r.PredVoxels, e.predVoxels)
			checkInt(t, "intersection", r.IntersectionVoxels, e.inter)
			checkAbs(t, "truth_ml", r.TruthML, e.truthML, 1e-9)
			checkAbs(t, "pred_ml", r.PredML, e.predML, 1e-9)
			checkAbs(t, "diff_ml", r.DiffML, e.predML-e.truthML, 1e-9)
			checkAbs(t, "dice", float64(r.Dice), e.dice, 1e-9)
			checkAbs(t, "iou", float64(r.IoU), e.iou, 1e-9)
			checkAbs(t, "sensitivity", float64(r.Sensitivity), float64(e.inter)/float64(e.truthVoxels), 1e-12)
			checkAbs(t, "precision", float64(r.Precision), float64(e.inter)/float64(e.predVoxels), 1e-12)
			checkRel(t, "hd95", float64(r.HD95), e.hd95, 1e-6)
			checkRel(t, "hd", float64(r.HD), e.hd, 1e-6)
			for i, tau := range syntheticTaus {
				checkRel(t, "nsd at "+fmtTau(tau), float64(r.NSD[i]), e.nsd[i], 1e-6)
			}
		})
	}
}

func fmtTau(tau float64) string { return Value(tau).String() + " mm" }

func checkInt(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %d, want %d", what, got, want)
	}
}

func checkAbs(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if !(math.Abs(got-want) <= tol) {
		t.Errorf("%s = %.17g, want %.17g (tolerance %g)", what, got, want, tol)
	}
}

func checkRel(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if !(math.Abs(got-want) <= tol*math.Max(math.Abs(want), 1e-300)) && got != want {
		t.Errorf("%s = %.17g, want %.17g (relative tolerance %g)", what, got, want, tol)
	}
}
