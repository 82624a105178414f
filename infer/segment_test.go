package infer_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/volio"
)

// thresholdHU is where the threshold model cuts: half a HU off the integer
// values CTs hold, so no voxel sits on it.
const thresholdHU = -500.5

func openORT(t *testing.T, path string) infer.Engine {
	t.Helper()
	e, err := infer.OpenEngine(path, infer.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func segmenter(t *testing.T, e infer.Engine, opts infer.Options) *infer.Segmenter {
	t.Helper()
	s, err := infer.New(e, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func read(t *testing.T, path string) *volume.Volume {
	t.Helper()
	v, _, err := volio.Read(path, volio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// copies returns v and reoriented copies of it: the fixtures are stored LPS,
// so these run the reorientation both ways and with a permutation.
func copies(t *testing.T, v *volume.Volume) map[string]*volume.Volume {
	t.Helper()
	out := map[string]*volume.Volume{"as stored (" + v.Affine.AxCodes() + ")": v}
	for _, code := range []string{"RAS", "PIR", "SLA"} {
		c, err := v.Reorient(code)
		if err != nil {
			t.Fatal(err)
		}
		out[code] = c
	}
	return out
}

// checkGrid requires a mask on exactly v's grid.
func checkGrid(t *testing.T, name string, v *volume.Volume, m *volume.Label) {
	t.Helper()
	if m.Dims != v.Dims || m.Affine != v.Affine || len(m.Data) != v.Dims.Len() {
		t.Fatalf("%s: mask on %v %v, input on %v %v", name, m.Dims, m.Affine, v.Dims, v.Affine)
	}
}

// thresholdDiffs counts the voxels where the mask is not "HU > thresholdHU".
func thresholdDiffs(v *volume.Volume, m *volume.Label) (diff, fg int) {
	for i, x := range v.Data {
		want := uint8(0)
		if float64(x) > thresholdHU {
			want = 1
			fg++
		}
		if m.Data[i] != want {
			diff++
		}
	}
	return diff, fg
}

// TestMaskOnAnatomy runs a model whose mask is "HU > −500.5" voxel by voxel
// in sliding mode at the CT's own spacing (so no resampling blurs it) over
// the IBSI chest CT as stored, in reoriented copies and from its DICOM
// series: every mask must be exactly the threshold of its own input, on its
// input's grid. A flipped or permuted axis anywhere on the way would put the
// mask on other anatomy.
func TestMaskOnAnatomy(t *testing.T) {
	orig := read(t, testutil.IO(t, "ibsi_chest_ct/image.nii.gz"))
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{32, 160, 160} // 3x2x2 overlapping patches
	sp := orig.Spacing()                       // LPS, the model's orientation: D = k
	cfg.Preprocess.Mode, cfg.Preprocess.Spacing = model.ModeSpacing, [3]float64{sp[2], sp[1], sp[0]}
	e := openORT(t, infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, thresholdHU))
	s := segmenter(t, e, infer.DefaultOptions())
	if s.Mode() != infer.ModeSliding {
		t.Fatalf("mode %s for a spacing model", s.Mode())
	}
	vols := copies(t, orig)
	vols["DICOM"] = read(t, testutil.IO(t, "ibsi_chest_ct/dicom"))
	for name, v := range vols {
		r, err := s.Segment(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkGrid(t, name, v, r.Mask)
		diff, fg := thresholdDiffs(v, r.Mask)
		if fg < v.Dims.Len()/10 || fg > v.Dims.Len()*9/10 {
			t.Fatalf("%s: %d of %d voxels above the threshold; the check needs both classes", name, fg, v.Dims.Len())
		}
		if r.Patches != 12 || r.Timing.Forwards != 12 {
			t.Errorf("%s: %d patches, %d forwards; want 12", name, r.Patches, r.Timing.Forwards)
		}
		if diff != 0 {
			t.Errorf("%s: %d voxels differ from the CT's own threshold", name, diff)
		}
	}
}

// TestAxisMapping checks that the network's D, H and W are the k, j and i
// axes of the volume in the model's orientation (LPS), for an input stored
// LPS, reoriented copies and DICOM: with models that mark where intensity
// grows along one network axis, run on a grid equal to the volume's (no
// resampling), every mask must be that axis's central difference of the CT.
func TestAxisMapping(t *testing.T) {
	orig := read(t, testutil.IO(t, "ibsi_chest_ct/image.nii.gz"))
	if orig.Affine.AxCodes() != "LPS" {
		t.Fatalf("the fixture is stored %s; the expected masks below assume LPS", orig.Affine.AxCodes())
	}
	cfg := model.DefaultConfig()
	d := orig.Dims
	cfg.Preprocess.Grid = [3]int{d[2], d[1], d[0]}
	vols := map[string]*volume.Volume{"LPS": orig, "DICOM": read(t, testutil.IO(t, "ibsi_chest_ct/dicom"))}
	for _, code := range []string{"PIR"} {
		c, err := orig.Reorient(code)
		if err != nil {
			t.Fatal(err)
		}
		vols[code] = c
	}
	dir := t.TempDir()
	for netAxis, name := range []string{"D", "H", "W"} {
		e := openORT(t, infertest.GradientONNX(t, dir, name+".onnx", cfg, netAxis))
		s := segmenter(t, e, infer.Options{Mode: infer.ModeResize})
		want := centralDifference(orig, 2-netAxis, float32(cfg.Preprocess.WindowLow), float32(cfg.Preprocess.WindowHigh))
		for vname, v := range vols {
			r, err := s.Segment(v)
			if err != nil {
				t.Fatal(err)
			}
			checkGrid(t, vname, v, r.Mask)
			if diff := infertest.WorldEqual(t, want, r.Mask); diff != 0 {
				t.Errorf("network axis %s, %s: %d voxels differ from the CT's difference along voxel axis %d", name, vname, diff, 2-netAxis)
			}
		}
	}
}

// centralDifference marks the voxels of v where the HU, clipped to
// [lo, hi], is larger one voxel further along axis than one voxel back,
// with lo beyond the edges (the network's zero padding of windowed input).
func centralDifference(v *volume.Volume, axis int, lo, hi float32) *volume.Label {
	m, _ := volume.NewLabel(v.Dims, v.Affine)
	at := func(p [3]int) float32 {
		if p[axis] < 0 || p[axis] >= v.Dims[axis] {
			return lo
		}
		return min(max(v.At(p[0], p[1], p[2]), lo), hi)
	}
	fg := 0
	for k := range v.Dims[2] {
		for j := range v.Dims[1] {
			for i := range v.Dims[0] {
				next, prev := [3]int{i, j, k}, [3]int{i, j, k}
				next[axis]++
				prev[axis]--
				if at(next) > at(prev) {
					m.Data[v.Dims.Index(i, j, k)] = 1
					fg++
				}
			}
		}
	}
	return m
}

// TestResizeModeLandsInWorld checks the paper's mode, where the volume is
// resized to a small grid and back: the mask of every reoriented copy must
// cover the same world voxels as the original's (exactly: the reoriented
// inputs are identical), and agree with the CT's threshold on most voxels
// (the resize blurs only the borders).
func TestResizeModeLandsInWorld(t *testing.T) {
	orig := read(t, testutil.IO(t, "totalseg_chest_crop.nii.gz"))
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{40, 48, 56}
	e := openORT(t, infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, thresholdHU))
	s := segmenter(t, e, infer.DefaultOptions())
	ref, err := s.Segment(orig)
	if err != nil {
		t.Fatal(err)
	}
	checkGrid(t, "original", orig, ref.Mask)
	want := volume.Dims{56, 48, 40}
	if ref.Grid != want {
		t.Errorf("network grid %v, want %v (W, H, D)", ref.Grid, want)
	}
	diff, fg := thresholdDiffs(orig, ref.Mask)
	t.Logf("resize mode: %d voxels off the threshold, %d foreground", diff, fg)
	if float64(diff) > 0.1*float64(fg) {
		t.Errorf("resize mode: %d voxels off the threshold, %d foreground", diff, fg)
	}
	for name, v := range copies(t, orig) {
		r, err := s.Segment(v)
		if err != nil {
			t.Fatal(err)
		}
		checkGrid(t, name, v, r.Mask)
		if d := infertest.WorldEqual(t, ref.Mask, r.Mask); d != 0 {
			t.Errorf("%s: %d voxels differ from the original's mask in world space", name, d)
		}
	}
}

// TestUNetReorientedCopies runs a narrow random U-Net in both modes on
// reoriented copies: the class probabilities, taken back to the original's
// voxel order, must be identical. The probabilities vary over the volume and
// differ from their own mirror images, so a misplaced flip would show.
func TestUNetReorientedCopies(t *testing.T) {
	orig := read(t, testutil.IO(t, "totalseg_chest_crop.nii.gz"))
	cfg := infertest.Config([3]int{8, 32, 32})
	ctx := infertest.Narrow(t, cfg, 1)
	e := openORT(t, infertest.ExportNarrow(t, t.TempDir(), "unet.onnx", cfg, ctx))
	for _, opts := range []infer.Options{
		{Mode: infer.ModeResize, KeepProbs: true},
		// 6 mm: 28x26x30 voxels (D, H, W) in 4x2x2 patches.
		{Mode: infer.ModeSliding, Spacing: [3]float64{6, 6, 6}, Overlap: 0.5, KeepProbs: true},
	} {
		s := segmenter(t, e, opts)
		ref, err := s.Segment(orig)
		if err != nil {
			t.Fatal(err)
		}
		p := ref.Probs[1]
		checkVaries(t, opts.Mode, p)
		for name, v := range copies(t, orig) {
			r, err := s.Segment(v)
			if err != nil {
				t.Fatal(err)
			}
			checkGrid(t, name, v, r.Mask)
			plan, err := volume.PlanReorient(orig.Dims, orig.Affine, v.Affine.AxCodes())
			if err != nil {
				t.Fatal(err)
			}
			back, err := plan.Undo(r.Probs[1])
			if err != nil {
				t.Fatal(err)
			}
			for i := range back.Data {
				if back.Data[i] != p.Data[i] {
					t.Fatalf("%s, %s mode: probability %v at voxel %d, the original's %v", name, opts.Mode, back.Data[i], i, p.Data[i])
				}
			}
		}
	}
}

// checkVaries requires a probability map that is not constant and not
// symmetric under any flip.
func checkVaries(t *testing.T, mode string, p *volume.Volume) {
	t.Helper()
	lo, hi, _ := p.MinMax()
	if hi-lo < 0.05 {
		t.Fatalf("%s: probabilities %v..%v: too flat to test geometry", mode, lo, hi)
	}
	for ax := range 3 {
		f, err := p.Flip(ax)
		if err != nil {
			t.Fatal(err)
		}
		var d float64
		for i := range f.Data {
			d = max(d, math.Abs(float64(f.Data[i]-p.Data[i])))
		}
		if d < 0.01 {
			t.Fatalf("%s: probabilities nearly symmetric along axis %d (max difference %v)", mode, ax, d)
		}
	}
}

// synth makes a volume of random HU around the threshold with the given
// dims and spacing.
func synth(d volume.Dims, spacing [3]float64, seed uint64) *volume.Volume {
	v, _ := volume.New(d, volume.Diag(spacing, [3]float64{-10, 20, 30}))
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range v.Data {
		v.Data[i] = float32(math.Round(-1000 + 1500*rng.Float64()))
	}
	return v
}

// TestSlidingPadsAndTiles checks sliding mode on a volume smaller than a
// patch along some axes (padded, then cropped) and larger along others:
// the threshold model's mask must still be the input's threshold, voxel by
// voxel, with the expected number of patches.
func TestSlidingPadsAndTiles(t *testing.T) {
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{16, 24, 32}
	e := openORT(t, infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, thresholdHU))
	for _, c := range []struct {
		dims    volume.Dims // i, j, k = W, H, D (the volume is RAS; the model wants LPS: i and j reversed)
		patches int
	}{
		{volume.Dims{10, 7, 5}, 1},    // smaller than the patch everywhere
		{volume.Dims{20, 30, 9}, 2},   // W padded; H 30 over 24: 2 patches; D padded
		{volume.Dims{70, 24, 40}, 16}, // W 70/32: 4 starts; H exactly one; D 40/16: 4 starts
	} {
		v := synth(c.dims, [3]float64{2, 2, 2}, 3)
		s := segmenter(t, e, infer.Options{Mode: infer.ModeSliding, Spacing: [3]float64{2, 2, 2}, Overlap: 0.5})
		r, err := s.Segment(v)
		if err != nil {
			t.Fatal(err)
		}
		checkGrid(t, "synthetic", v, r.Mask)
		if r.Patches != c.patches {
			t.Errorf("%v: %d patches, want %d", c.dims, r.Patches, c.patches)
		}
		if diff, fg := thresholdDiffs(v, r.Mask); diff != 0 || fg == 0 {
			t.Errorf("%v: %d voxels off the threshold (%d foreground)", c.dims, diff, fg)
		}
	}
}

// TestTTA checks the flip test-time augmentation: eight forward passes per
// patch, a mask on the input's grid, probabilities that differ from a single
// pass for a random U-Net and equal it for a voxel-wise model.
func TestTTA(t *testing.T) {
	v := synth(volume.Dims{30, 26, 11}, [3]float64{1, 1, 2.5}, 5)
	dir := t.TempDir()
	cfg := infertest.Config([3]int{8, 16, 16})
	unet := openORT(t, infertest.ExportNarrow(t, dir, "unet.onnx", cfg, infertest.Narrow(t, cfg, 2)))
	thr := openORT(t, infertest.ThresholdONNX(t, dir, "thr.onnx", cfg, thresholdHU))
	for _, c := range []struct {
		name   string
		e      infer.Engine
		differ bool
	}{{"unet", unet, true}, {"threshold", thr, false}} {
		for _, mode := range []string{infer.ModeResize, infer.ModeSliding} {
			opts := infer.Options{Mode: mode, Spacing: [3]float64{2.5, 2, 2}, Overlap: 0.25, KeepProbs: true}
			one, err := segmenter(t, c.e, opts).Segment(v)
			if err != nil {
				t.Fatal(err)
			}
			opts.TTA = true
			tta, err := segmenter(t, c.e, opts).Segment(v)
			if err != nil {
				t.Fatal(err)
			}
			checkGrid(t, c.name+" TTA", v, tta.Mask)
			if tta.Timing.Forwards != 8*one.Patches || tta.Patches != one.Patches {
				t.Errorf("%s %s: %d forwards for %d patches with TTA", c.name, mode, tta.Timing.Forwards, tta.Patches)
			}
			if len(tta.Probs) != 2 || tta.Probs[1].Dims != v.Dims {
				t.Fatalf("%s %s: TTA probabilities %d maps", c.name, mode, len(tta.Probs))
			}
			var d float64
			for i := range v.Data {
				d = max(d, math.Abs(float64(tta.Probs[1].Data[i]-one.Probs[1].Data[i])))
			}
			if c.differ && d < 1e-3 {
				t.Errorf("%s %s: TTA changed no probability by more than %g", c.name, mode, d)
			}
			if !c.differ && d > 1e-5 {
				t.Errorf("%s %s: TTA of a voxel-wise model changed a probability by %g", c.name, mode, d)
			}
		}
	}
}

// TestEnginesAgree runs the same narrow U-Net through ONNX Runtime (from the
// exported file and from the model file, exported on the fly) and GoMLX:
// the class probabilities must agree within 1e-4.
func TestEnginesAgree(t *testing.T) {
	v := read(t, testutil.IO(t, "totalseg_chest_crop.nii.gz"))
	cfg := infertest.Config([3]int{8, 24, 24})
	ctx := infertest.Narrow(t, cfg, 3)
	dir := t.TempDir()
	ckpt := infertest.SaveNarrow(t, dir, "unet.ckpt", cfg, ctx)
	engines := map[string]infer.Engine{
		"ort":      openORT(t, infertest.ExportNarrow(t, dir, "unet.onnx", cfg, ctx)),
		"ort-ckpt": openORT(t, ckpt),
	}
	g, err := infer.OpenEngine(ckpt, infer.EngineOptions{Kind: infer.EngineGoMLX})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	engines["gomlx"] = g
	probs := map[string]*volume.Volume{}
	for name, e := range engines {
		r, err := segmenter(t, e, infer.Options{Mode: infer.ModeResize, KeepProbs: true}).Segment(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		probs[name] = r.Probs[1]
	}
	checkVaries(t, "resize", probs["ort"])
	for _, name := range []string{"ort-ckpt", "gomlx"} {
		var d float64
		for i, x := range probs[name].Data {
			d = max(d, math.Abs(float64(x-probs["ort"].Data[i])))
		}
		t.Logf("%s vs ort: largest probability difference %.2g", name, d)
		if d > 1e-4 {
			t.Errorf("%s vs ort: probabilities differ by up to %g", name, d)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{4, 4, 4}
	e := openORT(t, infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, 0))
	for name, o := range map[string]infer.Options{
		"sliding without spacing": {Mode: infer.ModeSliding},
		"bad mode":                {Mode: "tiles"},
		"overlap 1":               {Mode: infer.ModeSliding, Spacing: [3]float64{1, 1, 1}, Overlap: 1},
		"negative spacing":        {Mode: infer.ModeSliding, Spacing: [3]float64{1, -1, 1}},
	} {
		if _, err := infer.New(e, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s := segmenter(t, e, infer.Options{})
	if _, err := s.Segment(&volume.Volume{Dims: volume.Dims{2, 2, 2}, Data: make([]float32, 3), Affine: volume.Identity()}); err == nil {
		t.Error("a malformed volume was segmented")
	}
}

// TestInput checks that Input gives the array Segment feeds the network:
// the threshold model's mask on that array, resized back, is the mask
// Segment writes.
func TestInput(t *testing.T) {
	// An off-centre ball of tissue in air: few boundary voxels, and a
	// mirrored preparation would move it.
	v, _ := volume.New(volume.Dims{30, 26, 11}, volume.Diag([3]float64{1, 1, 2.5}, [3]float64{}))
	for k := range 11 {
		for j := range 26 {
			for i := range 30 {
				v.Set(i, j, k, -1000)
				if sq(float64(i-9))+sq(float64(j-16))+sq(2.5*float64(k-4)) < 49 {
					v.Set(i, j, k, 40)
				}
			}
		}
	}
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{6, 13, 15}
	cfg.Preprocess.Orientation = "PIR"
	s := segmenter(t, openORT(t, infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, thresholdHU)), infer.Options{})
	x, err := s.Input(v)
	if err != nil {
		t.Fatal(err)
	}
	if x.Dims != (volume.Dims{15, 13, 6}) || x.Affine.AxCodes() != "PIR" {
		t.Fatalf("input %v %s, want 15x13x6 (W, H, D) in PIR", x.Dims, x.Affine.AxCodes())
	}
	lo, hi, _ := x.MinMax()
	if lo < 0 || hi > 1 {
		t.Errorf("windowed input spans %v..%v", lo, hi)
	}
	r, err := s.Segment(v)
	if err != nil {
		t.Fatal(err)
	}
	// Threshold on the input grid (windowed −500.5 HU), back to v's grid.
	thr := float32((thresholdHU + 1024) / 1624)
	m := x.Threshold(thr)
	back, err := m.ResizeTo(volume.Dims{26, 11, 30}) // v reoriented to PIR: (j, k, i) sizes
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := volume.PlanReorient(v.Dims, v.Affine, "PIR")
	back.Affine = plan.DstAffine
	want, err := plan.UndoLabel(back)
	if err != nil {
		t.Fatal(err)
	}
	diff, fg := 0, 0
	for i := range want.Data {
		fg += int(r.Mask.Data[i])
		if want.Data[i] != r.Mask.Data[i] {
			diff++
		}
	}
	// Nearest resizing of the thresholded input and linear resizing of the
	// probabilities disagree only at the ball's surface.
	t.Logf("%d voxels differ, %d in the mask", diff, fg)
	if fg < 200 || diff > fg/3 {
		t.Errorf("%d of %d mask voxels differ from the input's threshold", diff, fg)
	}
	if _, err := s.Input(&volume.Volume{Dims: volume.Dims{2, 2, 2}, Data: make([]float32, 1)}); err == nil {
		t.Error("a malformed volume was prepared")
	}
}

func sq(x float64) float64 { return x * x }

// TestInfiltrateMask: lung classes are left out of the infiltrate, on the
// mask's own grid; masks of infiltrate classes only are used as they are.
func TestInfiltrateMask(t *testing.T) {
	aff := volume.Identity()
	aff[0][0], aff[1][3] = -0.7, 12 // LPS-like, shifted: the copy keeps it
	m, _ := volume.NewLabel(volume.Dims{5, 1, 1}, aff)
	copy(m.Data, []uint8{0, 1, 2, 3, 4})
	got := infer.InfiltrateMask(m, []string{"background", "infiltrate", "Lung", "consolidation", "lungs"})
	if !slices.Equal(got.Data, []uint8{0, 1, 0, 1, 0}) || !slices.Equal(m.Data, []uint8{0, 1, 2, 3, 4}) {
		t.Errorf("with lung classes: %v (input now %v)", got.Data, m.Data)
	}
	if got.Dims != m.Dims || got.Affine != m.Affine {
		t.Errorf("the infiltrate's grid %v %v, want the mask's %v %v", got.Dims, got.Affine, m.Dims, m.Affine)
	}
	if got := infer.InfiltrateMask(m, []string{"background", "ground glass", "consolidation", "other"}); got != m {
		t.Errorf("no lung class: a copy %v", got.Data)
	}
}
