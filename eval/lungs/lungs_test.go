package lungs

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
)

// counts tallies, per truth code, how many voxels got each label.
func counts(truth []uint8, mask []uint8) (c [5][3]int) {
	for p, t := range truth {
		c[t][mask[p]]++
	}
	return c
}

// centroidX returns the mean world x of the voxels with label l.
func centroidX(m *volume.Label, l uint8) float64 {
	var sum float64
	var n int
	d := m.Dims
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				if m.Data[d.Index(i, j, k)] == l {
					sum += m.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})[0]
					n++
				}
			}
		}
	}
	return sum / float64(n)
}

// dice is the overlap of mask label l with the truth codes in want.
func dice(truth, mask []uint8, l uint8, want ...uint8) float64 {
	var inter, a, b int
	for p, t := range truth {
		isT := false
		for _, w := range want {
			isT = isT || t == w
		}
		isM := mask[p] == l
		if isT {
			a++
		}
		if isM {
			b++
		}
		if isT && isM {
			inter++
		}
	}
	return 2 * float64(inter) / float64(a+b)
}

func TestPhantom(t *testing.T) {
	for _, bridge := range []bool{false, true} {
		ph := smallPhantom()
		ph.bridge = bridge
		v, truth := ph.build()
		r, err := Segment(v, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		m := r.Mask
		if m.Dims != v.Dims || m.Affine != v.Affine {
			t.Fatalf("mask grid %v %v, want the input's %v %v", m.Dims, m.Affine, v.Dims, v.Affine)
		}
		c := counts(truth, m.Data)
		t.Logf("bridge=%v: %+v; right %.0f ml, left %.0f ml, airway %.1f ml, midline %.1f (%s), split %s",
			bridge, c, r.RightML, r.LeftML, r.AirwayML, r.MidlineX, r.MidlineFrom, r.Split)
		// The patient's right is +x in RAS+: the right lung's centre is at
		// x = +phLungX.
		if x := centroidX(m, Right); math.Abs(x-phLungX) > 5 {
			t.Errorf("bridge=%v: label %d (right) centred at x = %.1f mm, want %.0f", bridge, Right, x, phLungX)
		}
		if x := centroidX(m, Left); math.Abs(x+phLungX) > 5 {
			t.Errorf("bridge=%v: label %d (left) centred at x = %.1f mm, want %.0f", bridge, Left, x, -phLungX)
		}
		if d := dice(truth, m.Data, Right, tRightLung, tDense); d < 0.98 {
			t.Errorf("bridge=%v: right lung Dice %.4f, want ≥ 0.98", bridge, d)
		}
		if d := dice(truth, m.Data, Left, tLeftLung); d < 0.98 {
			t.Errorf("bridge=%v: left lung Dice %.4f, want ≥ 0.98", bridge, d)
		}
		if n := c[tTrachea][Right] + c[tTrachea][Left]; n != 0 {
			t.Errorf("bridge=%v: trachea and main bronchi: %v voxels labelled right/left, want none", bridge, c[tTrachea][1:])
		}
		// The consolidation makes a 40 mm bite in the lung's costal border:
		// closing and bridging must bring 80 % of it into the right lung
		// (the disc alone brings 60 %), none into the left.
		dense := c[tDense][0] + c[tDense][1] + c[tDense][2]
		if 5*c[tDense][Right] < 4*dense || c[tDense][Left] != 0 {
			t.Errorf("bridge=%v: consolidation: %d of %d voxels in the right lung, %d in the left; want 80 %%, none",
				bridge, c[tDense][Right], dense, c[tDense][Left])
		}
		if bg := c[tBackground][1] + c[tBackground][2]; bg > 200 {
			t.Errorf("bridge=%v: %d background voxels labelled lung", bridge, bg)
		}
		wantSplit := "separate"
		if bridge {
			wantSplit = "erosion"
		}
		if !strings.HasPrefix(r.Split, wantSplit) || r.MidlineFrom != "airway" {
			t.Errorf("bridge=%v: split %q, midline from %q; want %s…, airway", bridge, r.Split, r.MidlineFrom, wantSplit)
		}
		if math.Abs(r.MidlineX) > 2 {
			t.Errorf("bridge=%v: midline at x = %.2f mm, want 0", bridge, r.MidlineX)
		}
		vox := ph.spacing[0] * ph.spacing[1] * ph.spacing[2] / 1000
		if got, want := r.RightML, float64(countOf(m.Data, Right))*vox; math.Abs(got-want) > 1e-9 {
			t.Errorf("RightML %g, want %g", got, want)
		}
	}
}

func countOf(data []uint8, l uint8) int {
	n := 0
	for _, v := range data {
		if v == l {
			n++
		}
	}
	return n
}

// reorder returns v with its voxel axes permuted and flipped, affine
// updated so that every voxel keeps its world position: new axis b runs
// along old axis perm[b], reversed where flip[b]. It is written here
// independently of package volume's reorientation.
func reorder(v *volume.Volume, perm [3]int, flip [3]bool) (*volume.Volume, func(i, j, k int) int) {
	od := v.Dims
	var nd volume.Dims
	for b := 0; b < 3; b++ {
		nd[b] = od[perm[b]]
	}
	// old index = M · new index (homogeneous).
	var m volume.Affine
	m[3][3] = 1
	for b := 0; b < 3; b++ {
		if flip[b] {
			m[perm[b]][b] = -1
			m[perm[b]][3] = float64(od[perm[b]] - 1)
		} else {
			m[perm[b]][b] = 1
		}
	}
	oldIndex := func(i, j, k int) int {
		n := [3]int{i, j, k}
		var o [3]int
		for b := 0; b < 3; b++ {
			o[perm[b]] = n[b]
			if flip[b] {
				o[perm[b]] = od[perm[b]] - 1 - n[b]
			}
		}
		return od.Index(o[0], o[1], o[2])
	}
	out := &volume.Volume{Dims: nd, Affine: v.Affine.Mul(m), Data: make([]float32, len(v.Data))}
	for k := 0; k < nd[2]; k++ {
		for j := 0; j < nd[1]; j++ {
			for i := 0; i < nd[0]; i++ {
				out.Data[nd.Index(i, j, k)] = v.Data[oldIndex(i, j, k)]
			}
		}
	}
	return out, oldIndex
}

// orientations are the permutations and flips the orientation tests use:
// LPS (DICOM's), a radiological flip of x only, and two axis permutations.
var orientations = []struct {
	name string
	perm [3]int
	flip [3]bool
}{
	{"LPS", [3]int{0, 1, 2}, [3]bool{true, true, false}},
	{"x flipped", [3]int{0, 1, 2}, [3]bool{true, false, false}},
	{"PIR", [3]int{1, 2, 0}, [3]bool{true, true, false}},
	{"SLA", [3]int{2, 0, 1}, [3]bool{false, true, false}},
}

// checkOrientations segments v in the test orientations (those named, or
// all) and checks that each mask, mapped back voxel by voxel, equals want
// (the mask of v).
func checkOrientations(t *testing.T, v *volume.Volume, want *volume.Label, names ...string) {
	t.Helper()
	for _, o := range orientations {
		if len(names) > 0 && !slices.Contains(names, o.name) {
			continue
		}
		w, oldIndex := reorder(v, o.perm, o.flip)
		if w.Affine.AxCodes() == v.Affine.AxCodes() {
			t.Fatalf("%s: reordered volume still %s", o.name, w.Affine.AxCodes())
		}
		r, err := Segment(w, DefaultOptions())
		if err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		if r.Mask.Dims != w.Dims || r.Mask.Affine != w.Affine {
			t.Fatalf("%s: mask grid differs from its input's", o.name)
		}
		d := w.Dims
		diff := 0
		for k := 0; k < d[2]; k++ {
			for j := 0; j < d[1]; j++ {
				for i := 0; i < d[0]; i++ {
					if r.Mask.Data[d.Index(i, j, k)] != want.Data[oldIndex(i, j, k)] {
						diff++
					}
				}
			}
		}
		if diff != 0 {
			t.Errorf("%s (%s): %d voxels differ from the mask of the %s input", o.name, w.Affine.AxCodes(), diff, v.Affine.AxCodes())
		}
	}
}

func TestPhantomOrientations(t *testing.T) {
	ph := smallPhantom()
	ph.bridge = true
	v, _ := ph.build()
	r, err := Segment(v, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	checkOrientations(t, v, r.Mask)
}

// TestOneSide crops the phantom to the patient's right half: one lung,
// labelled right, whatever the crop does to the midline.
func TestOneSide(t *testing.T) {
	ph := smallPhantom()
	v, _ := ph.build()
	lo := [3]int{v.Dims[0]/2 - 10, 0, 0} // x > about −20 mm
	c, err := v.Crop(lo, [3]int{v.Dims[0], v.Dims[1], v.Dims[2]})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Segment(c, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	full, _ := Segment(v, DefaultOptions())
	if r.LeftML != 0 || math.Abs(r.RightML-full.RightML) > 0.02*full.RightML {
		t.Errorf("right half: right %.1f ml, left %.1f ml; want right ≈ %.1f ml (the whole scan's), left 0 (split %s, midline %.1f from %s)",
			r.RightML, r.LeftML, full.RightML, r.Split, r.MidlineX, r.MidlineFrom)
	}
}

func TestNoLungs(t *testing.T) {
	d := volume.Dims{20, 20, 6}
	for _, tc := range []struct {
		name string
		fill func(i, j, k int) float32
	}{
		{"air", func(int, int, int) float32 { return -1000 }},
		{"tissue", func(int, int, int) float32 { return 40 }},
		{"NaN", func(int, int, int) float32 { return float32(math.NaN()) }},
		{"block of tissue in air", func(i, j, k int) float32 {
			if i > 3 && i < 16 && j > 3 && j < 16 {
				return 40
			}
			return -1000
		}},
	} {
		v, _ := volume.New(d, volume.Diag([3]float64{1, 1, 2}, [3]float64{}))
		for k := 0; k < d[2]; k++ {
			for j := 0; j < d[1]; j++ {
				for i := 0; i < d[0]; i++ {
					v.Set(i, j, k, tc.fill(i, j, k))
				}
			}
		}
		r, err := Segment(v, DefaultOptions())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := len(r.Mask.Data) - countOf(r.Mask.Data, 0); n != 0 || r.RightML != 0 || r.LeftML != 0 || r.Split != "none" {
			t.Errorf("%s: %d voxels labelled lung, want none", tc.name, n)
		}
	}
}

func TestBadInput(t *testing.T) {
	good, _ := volume.New(volume.Dims{4, 4, 4}, volume.Identity())
	short := &volume.Volume{Dims: volume.Dims{4, 4, 4}, Affine: volume.Identity(), Data: make([]float32, 10)}
	singular := good.Clone()
	singular.Affine[0][0] = 0
	zero := &volume.Volume{Dims: volume.Dims{0, 4, 4}, Affine: volume.Identity()}
	for _, tc := range []struct {
		name string
		v    *volume.Volume
		opt  func(*Options)
		want string
	}{
		{"short data", short, nil, "voxels"},
		{"singular affine", singular, nil, "singular"},
		{"zero dims", zero, nil, "dimension"},
		{"NaN option", good, func(o *Options) { o.AirHU = math.NaN() }, "AirHU"},
		{"airway above air", good, func(o *Options) { o.AirwayHU = 0 }, "AirwayHU"},
		{"bone below air", good, func(o *Options) { o.BoneHU = -500 }, "BoneHU"},
		{"negative bridge", good, func(o *Options) { o.BridgeMM = -1 }, "negative"},
		{"huge bridge", good, func(o *Options) { o.BridgeMM = 1e6 }, "BridgeMM"},
	} {
		opt := DefaultOptions()
		if tc.opt != nil {
			tc.opt(&opt)
		}
		_, err := Segment(tc.v, opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "lungs: ") {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
