package infer_test

import (
	"math"
	"testing"

	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/data/preprocess"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/train"
	"github.com/covseg/covseg/volume"
)

// configEngine is an engine that is never run: the Segmenter needs only its
// configuration to prepare inputs.
type configEngine struct{ cfg model.Config }

func (e configEngine) Run([]float32, [5]int) ([]float32, [5]int, error) {
	panic("configEngine: not for running")
}
func (e configEngine) Config() model.Config { return e.cfg }
func (e configEngine) Name() string         { return "config only" }
func (e configEngine) Close() error         { return nil }

// TestTrainAndSegmentPrepareAlike: a model trained on a CT segments that CT
// from exactly the tensor training saw (covseg train's preprocess.Prepare
// and infer's Segmenter both run preprocess.MakeInput on what the model
// records), for the paper's resize mode and nnU-Net's patch mode, both
// intensity scalings, and CTs stored in orientations other than RAS.
func TestTrainAndSegmentPrepareAlike(t *testing.T) {
	ph, err := phantom.Generate(phantom.Small(volume.Dims{40, 32, 12}), 5)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, _ := ph.Image.MinMax()
	if lo <= -2000 || hi >= 2000 {
		t.Fatalf("the phantom's HU %v..%v fill the window: min–max scaling would equal the window's", lo, hi)
	}
	for _, orient := range []string{"LPS", "PIL"} {
		img, err := ph.Image.Reorient(orient)
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []preprocess.Mode{preprocess.ModeResize, preprocess.ModePatch} {
			for _, scaling := range []preprocess.Scaling{preprocess.ScaleWindow, preprocess.ScaleMinMax} {
				t.Run(orient+"/"+string(mode)+"/"+string(scaling), func(t *testing.T) {
					checkPrepareAlike(t, img, mode, scaling)
				})
			}
		}
	}
}

func checkPrepareAlike(t *testing.T, img *volume.Volume, mode preprocess.Mode, scaling preprocess.Scaling) {
	tc := train.DefaultConfig()
	p := &tc.Data.Preprocess
	p.Mode, p.Scaling, p.Schedule = mode, scaling, nil
	p.Grid, p.Patch, p.Spacing = preprocess.Grid{8, 16, 24}, preprocess.Grid{8, 16, 16}, [3]float64{9, 13, 11}
	// A window wider than the phantom's range, so that its own clipped
	// minimum and maximum differ from the window's ends.
	p.WindowLo, p.WindowHi = -2000, 2000
	tc.Model.Width = 1.0 / 32
	sample, err := preprocess.Prepare("ct", img, nil, *p, tc.TotalEpochs()-1)
	if err != nil {
		t.Fatal(err)
	}
	mcfg, _, err := train.NewModel(tc)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := infer.New(configEngine{mcfg}, infer.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[preprocess.Mode]string{preprocess.ModeResize: infer.ModeResize, preprocess.ModePatch: infer.ModeSliding}[mode]; seg.Mode() != want {
		t.Fatalf("the model trained in %s mode segments in %s mode, want %s", mode, seg.Mode(), want)
	}
	x, err := seg.Input(img)
	if err != nil {
		t.Fatal(err)
	}
	if x.Dims != sample.Image.Dims || !x.Affine.Equal(sample.Image.Affine, 1e-9) {
		t.Fatalf("inference input %v %s, training %v %s", x.Dims, x.Affine.AxCodes(), sample.Image.Dims, sample.Image.Affine.AxCodes())
	}
	worst := 0.0
	for i := range x.Data {
		worst = math.Max(worst, math.Abs(float64(x.Data[i]-sample.Image.Data[i])))
	}
	if worst != 0 {
		t.Errorf("training and inference inputs differ by up to %g (model orientation %q)", worst, mcfg.Preprocess.Orientation)
	}
	if x.Affine.AxCodes() != "RAS" {
		t.Errorf("the network's input is %s, want the canonical RAS the model records", x.Affine.AxCodes())
	}
}
