package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/train"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// tinyDemoConfig is the demo shrunk to seconds: the plumbing, not the Dice.
func tinyDemoConfig() DemoConfig {
	c := DefaultDemoConfig()
	c.Phantom = phantom.Small(volume.Dims{24, 20, 8})
	c.Phantom.MinLesions, c.Phantom.MaxLesions, c.Phantom.LesionScale = 2, 3, 1.6
	c.Train, c.Val, c.Test = 2, 1, 2
	c.Grid = [3]int{8, 16, 24}  // layer4 is 1x1x2: BatchNorm needs two values
	c.Patch = [3]int{8, 16, 24} // two patches along H (20 voxels)
	c.BatchSize, c.LesionFraction = 2, 0.5
	c.Width = 1.0 / 32
	c.Epochs = 2
	return c
}

// TestDemoTiny runs the whole demo at tiny sizes and checks the JSON
// object it writes to demo.json (the one covseg demo --json prints), the
// files it names and that every output says the data are synthetic.
func TestDemoTiny(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	var log bytes.Buffer
	out, err := Demo(context.Background(), DemoOptions{Config: tinyDemoConfig(), Dir: dir, Seed: 3, Budget: 10 * time.Minute, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Log(log.String())
	if !strings.Contains(log.String(), "SYNTHETIC") {
		t.Errorf("the progress does not say the data are synthetic:\n%s", log.String())
	}
	js, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("demo.json is not a JSON object: %v\n%s", err, js)
	}
	if dec.More() {
		t.Errorf("more than one JSON value in demo.json")
	}
	var res DemoResult
	if err := json.Unmarshal(js, &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"synthetic", "dice_mean", "cases", "seconds", "paths", "training", "engine"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, js)
		}
	}
	// Every held-out phantom is a metrics.CaseResult: the unified keys.
	cases, _ := obj["cases"].([]any)
	for _, c := range cases {
		for _, k := range []string{"case", "dice", "iou", "hd95_mm", "nsd_1mm", "truth_ml", "pred_ml", "volume_diff_ml", "pred", "truth"} {
			if _, ok := c.(map[string]any)[k]; !ok {
				t.Errorf("case %v has no %q", c, k)
			}
		}
	}
	if res.DiceMean != out.DiceMean || len(res.Cases) != len(out.Cases) || len(res.Cases) == 0 || res.Cases[0].NSDAt(1) != out.Cases[0].NSDAt(1) {
		t.Errorf("demo.json %+v differs from the result %+v", res, out)
	}
	if obj["synthetic"] != true {
		t.Errorf("synthetic = %v", obj["synthetic"])
	}
	if len(cases) != 2 {
		t.Errorf("cases = %v, want the 2 held-out phantoms", obj["cases"])
	}
	if d := res.DiceMean; !(d >= 0 && d <= 1) {
		t.Errorf("dice_mean %v", d)
	}
	if res.Seed != 3 || res.Seconds <= 0 {
		t.Errorf("seed %d, seconds %v", res.Seed, res.Seconds)
	}
	// Two phantoms in batches of two patches: one step an epoch; the
	// BatchNorm recalibration ran on them.
	if tr := res.Training; tr.EpochsDone != 2 || tr.Epochs != 2 || tr.Steps != 2 || tr.BatchSize != 2 || tr.PreciseBNPatches != 2 {
		t.Errorf("training %+v, want 2 epochs of 1 step, batches of 2 patches, 2 patches for the BatchNorm statistics", res.Training)
	}

	p := res.Paths
	for _, f := range []string{p.Manifest, p.Checkpoint, p.ONNX, p.CT, p.Mask, p.ReportJSON, p.ReportMD, p.Montage, p.Comparison, p.Summary, p.SummaryMD} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range []string{p.Montage, p.Comparison} {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(fh); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		fh.Close()
	}
	for _, f := range []string{p.ReportJSON, p.ReportMD, p.Summary, p.SummaryMD, filepath.Join(p.Phantoms, "README.txt")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "SYNTHETIC") {
			t.Errorf("%s does not say the data are synthetic", f)
		}
	}

	// The phantoms are a manifest covseg train reads; the mask lies on its
	// CT's grid.
	m, err := dataset.ReadManifest(p.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if n := [3]int{len(m.Select(dataset.Train)), len(m.Select(dataset.Val)), len(m.Select(dataset.Test))}; n != [3]int{2, 1, 2} {
		t.Errorf("manifest splits %v", n)
	}
	ct, _, err := nifti.ReadVolume(p.CT)
	if err != nil {
		t.Fatal(err)
	}
	mask, _, err := nifti.ReadLabel(p.Mask)
	if err != nil {
		t.Fatal(err)
	}
	if mask.Dims != ct.Dims || !mask.Affine.Equal(ct.Affine, 1e-4) {
		t.Errorf("mask %v %v on CT %v %v", mask.Dims, mask.Affine, ct.Dims, ct.Affine)
	}
	// The trained model prepares CTs as the training data were: the
	// canonical orientation, the demo's grid.
	mcfg, _, err := model.Load(p.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if pp := mcfg.Preprocess; pp.Orientation != "RAS" || pp.Mode != model.ModeSpacing || pp.Grid != [3]int{8, 16, 24} || mcfg.Width != 1.0/32 {
		t.Errorf("model preprocessing %+v width %v", mcfg.Preprocess, mcfg.Width)
	}

	checkDemoBurden(t, &res, p.Phantoms)

	// A second demo into the same folder is refused before any work.
	_, err = Demo(context.Background(), DemoOptions{Config: tinyDemoConfig(), Dir: dir, Budget: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("second demo in %s: %v", dir, err)
	}
}

// TestDemoBudgetTooShort: a budget that ends before the first epoch gives
// a clear error, not a model.
func TestDemoBudgetTooShort(t *testing.T) {
	c := tinyDemoConfig()
	c.FixedEpochs = true
	_, err := Demo(context.Background(), DemoOptions{Config: c, Dir: t.TempDir(), Budget: time.Millisecond})
	if !errors.Is(err, ErrNoEpoch) {
		t.Errorf("err = %v, want ErrNoEpoch", err)
	}
}

// checkDemoBurden recomputes each held-out phantom's burden from the
// lesion and lung masks the demo wrote and compares it with the result's.
func checkDemoBurden(t *testing.T, res *DemoResult, phantoms string) {
	t.Helper()
	b := res.Phantoms.Burden
	if len(b.Cases) != len(res.Cases) {
		t.Fatalf("burden of %d phantoms, want the %d held-out ones", len(b.Cases), len(res.Cases))
	}
	var sum float64
	for i, c := range b.Cases {
		if c.Case != res.Cases[i].Case {
			t.Errorf("burden case %d is %s, want %s", i, c.Case, res.Cases[i].Case)
		}
		lesions, _, err := nifti.ReadLabel(filepath.Join(phantoms, "masks", c.Case+".nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		lungs, _, err := nifti.ReadLabel(filepath.Join(phantoms, "lungs", c.Case+".nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		want := lungBurdenPct(&phantom.Phantom{Lesions: lesions, Lungs: lungs})
		if !(want > 0) || math.Abs(c.Pct-want) > 1e-9 {
			t.Errorf("%s: burden %v %%, the masks say %v %%", c.Case, c.Pct, want)
		}
		sum += c.Pct
	}
	if m := sum / float64(len(b.Cases)); math.Abs(b.MeanPct-m) > 1e-9 || b.MinPct > b.MeanPct || b.MaxPct < b.MeanPct {
		t.Errorf("burden mean %v min %v max %v; the cases' mean is %v", b.MeanPct, b.MinPct, b.MaxPct, m)
	}
}

// TestLungBurdenPct: lesion voxels over lung voxels, both lungs counted.
func TestLungBurdenPct(t *testing.T) {
	d := volume.Dims{4, 2, 1}
	lungs := &volume.Label{Dims: d, Data: []uint8{1, 1, 2, 2, 2, 0, 0, 0}}
	lesions := &volume.Label{Dims: d, Data: []uint8{1, 0, 0, 1, 0, 0, 0, 0}}
	if got := lungBurdenPct(&phantom.Phantom{Lesions: lesions, Lungs: lungs}); math.Abs(got-40) > 1e-12 {
		t.Errorf("burden %v %%, want 40 (2 of 5 lung voxels)", got)
	}
	none := &volume.Label{Dims: d, Data: make([]uint8, 8)}
	if got := lungBurdenPct(&phantom.Phantom{Lesions: lesions, Lungs: none}); got != 0 {
		t.Errorf("burden without lungs %v, want 0", got)
	}
}

// TestRealisticBurden checks what README.md says of the realistic demo's
// held-out phantoms with seeds 1 and 2: the burden of most COVID-19 CTs,
// MosMedData's CT-1 (a mean under 25 % of the lungs), some under 10 %.
func TestRealisticBurden(t *testing.T) {
	c := RealisticDemoConfig()
	for _, seed := range []uint64{1, 2} {
		seeds := demoPhantomSeeds(c, seed)
		var sum, low float64
		for _, s := range seeds[c.Train+c.Val:] {
			ph, err := phantom.Generate(c.Phantom, s)
			if err != nil {
				t.Fatal(err)
			}
			b := lungBurdenPct(ph)
			sum += b
			if b < 10 {
				low++
			}
		}
		if mean := sum / float64(c.Test); mean >= 25 || low == 0 {
			t.Errorf("seed %d: held-out burden mean %.1f %%, %v under 10 %%: want a mean under 25 %% and some under 10 %%", seed, mean, low)
		}
	}
}

// TestDemoLungClass: with DemoConfig.LungClass the demo trains on class
// label maps (1 lesion, 2 the rest of the lungs, exactly the phantoms'
// masks) named in the manifest, its network has the three classes, and
// the held-out phantoms are scored on the lesion class alone.
func TestDemoLungClass(t *testing.T) {
	c := tinyDemoConfig()
	c.LungClass = true
	dir := filepath.Join(t.TempDir(), "demo")
	var log bytes.Buffer
	res, err := Demo(context.Background(), DemoOptions{Config: c, Dir: dir, Seed: 5, Budget: 10 * time.Minute, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	m, err := dataset.ReadManifest(res.Paths.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Entries {
		if filepath.Base(filepath.Dir(e.Mask)) != "labels" {
			t.Errorf("%s: manifest mask %s, want labels/", e.Case, e.Mask)
		}
		labels, _, err := nifti.ReadLabel(e.Mask)
		if err != nil {
			t.Fatal(err)
		}
		lesions, _, err := nifti.ReadLabel(filepath.Join(res.Paths.Phantoms, "masks", e.Case+".nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		lungs, _, err := nifti.ReadLabel(filepath.Join(res.Paths.Phantoms, "lungs", e.Case+".nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		if labels.Dims != lesions.Dims || !labels.Affine.Equal(lesions.Affine, 1e-4) {
			t.Errorf("%s: labels on %v %v, lesion mask on %v %v", e.Case, labels.Dims, labels.Affine, lesions.Dims, lesions.Affine)
		}
		var n [3]int
		for i, x := range labels.Data {
			want := uint8(0)
			if lesions.Data[i] != 0 {
				want = 1
			} else if lungs.Data[i] != 0 {
				want = 2
			}
			if x != want {
				t.Fatalf("%s voxel %d: class %d, want %d", e.Case, i, x, want)
			}
			n[x]++
		}
		if n[1] == 0 || n[2] == 0 {
			t.Errorf("%s: classes %v", e.Case, n)
		}
	}
	mcfg, _, err := model.Load(res.Paths.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if mcfg.Classes != 3 || !slices.Equal(mcfg.ClassNames, []string{"background", "infiltrate", "lung"}) {
		t.Errorf("model classes %d %v", mcfg.Classes, mcfg.ClassNames)
	}
	for _, cr := range res.Cases {
		pred, _, err := nifti.ReadLabel(cr.Pred)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range pred.Data {
			if x == 1 {
				n++
			}
		}
		sp := pred.Affine.Spacing()
		ml := float64(n) * sp[0] * sp[1] * sp[2] / 1000
		if math.Abs(float64(cr.PredML)-ml) > 1e-6 {
			t.Errorf("%s: scored %.3f ml, class 1 of the mask is %.3f ml", cr.Case, cr.PredML, ml)
		}
	}
}

// TestDemoClockSchedule: when the epochs asked for can't fit the budget,
// the learning-rate schedule follows the clock: training ends with it,
// inside the budget, after fewer epochs, at the end of the schedule, and
// the demo keeps that last epoch.
func TestDemoClockSchedule(t *testing.T) {
	c := tinyDemoConfig()
	c.Epochs = 1000
	dir := filepath.Join(t.TempDir(), "demo")
	var log bytes.Buffer
	budget := 14 * time.Second
	res, err := Demo(context.Background(), DemoOptions{Config: c, Dir: dir, Seed: 3, Budget: budget, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	tr := res.Training
	if tr.StoppedByTime || tr.EpochsDone < 2 || tr.EpochsDone >= c.Epochs || tr.Kept != tr.EpochsDone || tr.Epochs != c.Epochs {
		t.Errorf("training %+v: want the clock to end it after a few of %d epochs, the last one kept", tr, c.Epochs)
	}
	if !strings.Contains(log.String(), "schedule is complete after") || !strings.Contains(log.String(), "the learning-rate schedule ending by") {
		t.Errorf("the log does not say the schedule followed the clock:\n%s", log.String())
	}
	if res.Seconds > budget.Seconds() {
		t.Errorf("the demo took %.1f s of a %v budget", res.Seconds, budget)
	}
	b, err := os.ReadFile(filepath.Join(res.Paths.Run, train.FileMetricsJSON))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last train.EpochRecord
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	// The last update came before the validation that crossed the end, so
	// just short of the schedule's final 1e-7: the cosine's last thousandth.
	if last.Epoch != tr.EpochsDone || !(last.LR <= 1e-3*c.LR) {
		t.Errorf("last epoch %d at lr %g, want epoch %d within a thousandth of the peak %g", last.Epoch, last.LR, tr.EpochsDone, c.LR)
	}
	if res.Paths.Checkpoint != filepath.Join(res.Paths.Run, train.FileLast) {
		t.Errorf("exported %s, want the last epoch's checkpoint", res.Paths.Checkpoint)
	}
}
