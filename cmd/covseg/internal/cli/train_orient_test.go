package cli

import (
	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/preprocess"
	"math"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/train"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// TestTrainAndSegmentPrepareAlike: a CT stored LPS (as DICOM series are)
// reaches the network as the same array in training (covseg train's
// loader) and in inference (package infer, following the trained model's
// preprocessing): same orientation, window and resize. A model that
// recorded another orientation would see its inputs mirrored.
func TestTrainAndSegmentPrepareAlike(t *testing.T) {
	for _, scaling := range []preprocess.Scaling{preprocess.ScaleWindow, preprocess.ScaleMinMax} {
		t.Run(string(scaling), func(t *testing.T) { checkPrepareAlike(t, scaling) })
	}
}

// checkPrepareAlike is TestTrainAndSegmentPrepareAlike with one intensity
// scaling (the fixed window, or the paper's per-volume min–max).
func checkPrepareAlike(t *testing.T, scaling preprocess.Scaling) {
	cfg := phantom.Small(volume.Dims{40, 32, 12})
	ph, err := phantom.Generate(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img, mask := filepath.Join(dir, "ct.nii.gz"), filepath.Join(dir, "mask.nii.gz")
	if err := nifti.WriteVolume(img, ph.Image, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nifti.WriteLabel(mask, ph.Lesions); err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig()
	tc.Data.Preprocess.Grid = preprocess.Grid{8, 16, 24}
	tc.Data.Preprocess.Schedule = nil
	tc.Data.Preprocess.Scaling = scaling
	// A window wider than the phantom's range, so that its own clipped
	// minimum and maximum differ from the window's ends.
	tc.Data.Preprocess.WindowLo, tc.Data.Preprocess.WindowHi = -2000, 2000
	tc.Model.Width = 1.0 / 32
	rimg, rmask, err := preprocess.Read(dataset.Entry{Image: img, Mask: mask, Case: "ct"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := preprocess.Prepare("ct", rimg, rmask, tc.Data.Preprocess, 0)
	if err != nil {
		t.Fatal(err)
	}
	mcfg, _, err := train.NewModel(tc)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := volume.PlanReorient(ph.Image.Dims, ph.Image.Affine, mcfg.Preprocess.Orientation)
	if err != nil {
		t.Fatal(err)
	}
	v, err := plan.Apply(ph.Image)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[preprocess.Scaling]string{preprocess.ScaleWindow: model.NormNone, preprocess.ScaleMinMax: model.NormMinMax}[scaling]; mcfg.Preprocess.Normalize != want {
		t.Fatalf("scaling %s: the model records normalisation %q, want %q", scaling, mcfg.Preprocess.Normalize, want)
	}
	lo, hi, _ := ph.Image.MinMax()
	if lo <= -2000 || hi >= 2000 {
		t.Fatalf("the phantom's HU %v..%v fill the window: min–max scaling would equal the window's", lo, hi)
	}
	if _, err := infer.Normalize(v, mcfg.Preprocess); err != nil {
		t.Fatal(err)
	}
	g := mcfg.Preprocess.Grid
	x, err := v.ResizeTo(volume.Dims{g[2], g[1], g[0]}, volume.Linear)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Data) != len(c.Image.Data) {
		t.Fatalf("inference input %d values, training %d", len(x.Data), len(c.Image.Data))
	}
	worst := 0.0
	for i := range x.Data {
		worst = math.Max(worst, math.Abs(float64(x.Data[i]-c.Image.Data[i])))
	}
	if worst > 1e-5 {
		t.Errorf("training and inference inputs differ by up to %g (model orientation %q)", worst, mcfg.Preprocess.Orientation)
	}
}
