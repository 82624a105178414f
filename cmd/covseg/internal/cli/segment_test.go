package cli

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/eval/severity"

	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// thresholdModel writes an ONNX model whose mask is HU > −500.5 (see
// infertest.ThresholdONNX) on a small resize grid.
func thresholdModel(t *testing.T) string {
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{24, 48, 48}
	return infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, -500.5)
}

// checkMaskOn reads a written mask and requires the dims and affine of the
// CT at in (the affine to float32 precision, NIfTI-1's).
func checkMaskOn(t *testing.T, maskPath, in string) (*volume.Label, *volume.Volume) {
	t.Helper()
	ct, _, err := volio.Read(in, volio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, h, err := nifti.ReadLabel(maskPath)
	if err != nil {
		t.Fatal(err)
	}
	if h.Datatype != nifti.Uint8 {
		t.Errorf("%s: datatype %s, want uint8", maskPath, h.Datatype)
	}
	if m.Dims != ct.Dims || !m.Affine.Equal(ct.Affine, 1e-4) {
		t.Fatalf("%s: mask %v %v, CT %s %v %v", maskPath, m.Dims, m.Affine, in, ct.Dims, ct.Affine)
	}
	return m, ct
}

// TestSegmentOrientations segments the IBSI chest CT stored LPS, as copies
// reoriented to PIR and RAS, and from its DICOM series, in one batch: every
// mask has its input's dims and affine, and they all cover the same world
// voxels (the model's mask is an HU threshold, so it sits on anatomy).
func TestSegmentOrientations(t *testing.T) {
	ct, _, err := volio.Read(fixture(t, "ibsi_chest_ct/image.nii.gz"), volio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ins := map[string]string{"dicom": fixture(t, "ibsi_chest_ct/dicom")}
	for _, code := range []string{"LPS", "PIR", "RAS"} {
		c, err := ct.Reorient(code)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "ct_"+code+".nii.gz")
		if err := nifti.WriteVolume(p, c, nifti.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		ins["ct_"+code] = p
	}
	out := filepath.Join(dir, "out")
	stdout, stderr, code := run(t, "segment", dir, ins["dicom"], "-o", out, "--model", thresholdModel(t))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "segmented 4 of 4") {
		t.Errorf("stdout %q", stdout)
	}
	ref, _ := checkMaskOn(t, filepath.Join(out, "ct_LPS_mask.nii.gz"), ins["ct_LPS"])
	fg := 0
	for _, l := range ref.Data {
		fg += int(l)
	}
	if fg < len(ref.Data)/10 || fg > len(ref.Data)*9/10 {
		t.Fatalf("%d of %d voxels in the mask: the check needs both classes", fg, len(ref.Data))
	}
	for name, in := range ins {
		m, _ := checkMaskOn(t, filepath.Join(out, name+"_mask.nii.gz"), in)
		if d := infertest.WorldEqual(t, ref, m); d != 0 {
			t.Errorf("%s: %d voxels differ from the LPS input's mask in world space", name, d)
		}
	}
}

// TestSegmentBatchWithCorruptCase runs a folder of cases in which one file
// is corrupt: the others are written, the bad one is named, the exit status
// is 1. A mask file beside the CTs is not taken for a case.
func TestSegmentBatchWithCorruptCase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cases")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	infertest.WriteRandomCT(t, filepath.Join(dir, "a.nii.gz"), volume.Dims{40, 30, 12}, 1)
	infertest.WriteRandomCT(t, filepath.Join(dir, "c.nii"), volume.Dims{33, 41, 9}, 2)
	infertest.WriteRandomCT(t, filepath.Join(dir, "a_mask.nii.gz"), volume.Dims{40, 30, 12}, 3)
	good, err := os.ReadFile(filepath.Join(dir, "a.nii.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.nii.gz"), good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "masks")
	stdout, stderr, code := run(t, "segment", dir, "-o", out, "--model", thresholdModel(t), "--report")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr)
	}
	if !strings.Contains(stdout, "segmented 2 of 3") {
		t.Errorf("stdout %q", stdout)
	}
	if !strings.Contains(stderr, "b FAILED") || !strings.Contains(stderr, "b.nii.gz") || !strings.Contains(stderr, "1 of 3 case(s) failed: b") {
		t.Errorf("stderr does not name the bad case:\n%s", stderr)
	}
	for c, file := range map[string]string{"a": "a.nii.gz", "c": "c.nii"} {
		checkMaskOn(t, filepath.Join(out, c+"_mask.nii.gz"), filepath.Join(dir, file))
		raw, err := os.ReadFile(filepath.Join(out, c+"_report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r severity.Report
		if err := json.Unmarshal(raw, &r); err != nil || r.Category == "" || r.InfiltrateML+r.InfiltrateOutsideML <= 0 {
			t.Errorf("%s report: %s (%v)", c, raw, err)
		}
		if _, err := os.Stat(filepath.Join(out, c+"_report.md")); err != nil {
			t.Errorf("%s: no Markdown report: %v", c, err)
		}
	}
	for _, absent := range []string{"b_mask.nii.gz", "a_mask_mask.nii.gz"} {
		if _, err := os.Stat(filepath.Join(out, absent)); err == nil {
			t.Errorf("%s was written", absent)
		}
	}
}

// TestSegmentOneFile names the mask file, asks for probabilities, a montage
// and sliding windows with TTA, and runs the GoMLX engine on a model file.
func TestSegmentOneFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "ct.nii.gz")
	infertest.WriteRandomCT(t, in, volume.Dims{30, 20, 10}, 4)
	cfg := infertest.Config([3]int{8, 16, 16})
	ctx := infertest.Narrow(t, cfg, 5)
	ckpt := infertest.SaveNarrow(t, dir, "m.ckpt", cfg, ctx)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"ort", []string{"--probs", "--png", "--mode", "sliding", "--spacing", "6,2,2", "--tta"}},
		{"gomlx", []string{"--engine", "gomlx"}},
	} {
		mask := filepath.Join(dir, c.name+".nii.gz")
		_, stderr, code := run(t, append([]string{"segment", in, "-o", mask, "--model", ckpt}, c.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.name, code, stderr)
		}
		checkMaskOn(t, mask, in)
		if c.name == "gomlx" && !strings.Contains(stderr, "slower") {
			t.Errorf("no warning that GoMLX is slow: %s", stderr)
		}
		if c.name != "ort" {
			continue
		}
		if !strings.Contains(stderr, "sliding mode") || !strings.Contains(stderr, "(16 forward)") {
			t.Errorf("sliding with TTA over 2 patches (23x15x5 voxels at 2x2x6 mm, patches 16x16x8) should take 16 forward passes: %s", stderr)
		}
		p, _, err := nifti.ReadVolume(filepath.Join(dir, "ort_probs.nii.gz"))
		if err != nil {
			t.Fatal(err)
		}
		lo, hi, _ := p.MinMax()
		if p.Dims != (volume.Dims{30, 20, 10}) || lo < 0 || hi > 1 || hi == lo {
			t.Errorf("probabilities %v in %v..%v", p.Dims, lo, hi)
		}
		f, err := os.Open(filepath.Join(dir, "ort_mask.png"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("montage: %v", err)
		}
		f.Close()
	}
}

func TestSegmentErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "ct.nii.gz")
	infertest.WriteRandomCT(t, in, volume.Dims{8, 8, 4}, 6)
	onnxModel := thresholdModel(t)
	sub := filepath.Join(dir, "x")
	os.Mkdir(sub, 0o755)
	infertest.WriteRandomCT(t, filepath.Join(sub, "ct.nii.gz"), volume.Dims{8, 8, 4}, 7)
	other := filepath.Join(dir, "other.nii.gz")
	infertest.WriteRandomCT(t, other, volume.Dims{8, 8, 4}, 8)
	for _, c := range []struct {
		name string
		args []string
		env  string
		want []string
	}{
		{"no output", []string{in, "--model", onnxModel}, "", []string{"-o OUT"}},
		{"no model", []string{in, "-o", dir}, "", []string{"--model"}},
		{"missing input", []string{filepath.Join(dir, "none.nii"), "-o", dir, "--model", onnxModel}, "", []string{"none.nii"}},
		{"duplicate names", []string{in, sub, "-o", filepath.Join(dir, "o"), "--model", onnxModel}, "", []string{`two cases are named "ct"`}},
		{"file output for a batch", []string{in, other, "-o", filepath.Join(dir, "o.nii.gz"), "--model", onnxModel}, "", []string{"must be a folder"}},
		{"gomlx on onnx", []string{in, "-o", dir, "--model", onnxModel, "--engine", "gomlx"}, "", []string{"not ONNX"}},
		{"no library", []string{in, "-o", dir, "--model", onnxModel}, filepath.Join(dir, "nolib.so"), []string{"scripts/setup", "--engine gomlx"}},
		{"sliding without spacing", []string{in, "-o", dir, "--model", onnxModel, "--mode", "sliding"}, "", []string{"spacing"}},
		{"bad model", []string{in, "-o", dir, "--model", in}, "", []string{in}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("COVSEG_ORT_LIB", c.env)
			}
			_, stderr, code := run(t, append([]string{"segment"}, c.args...)...)
			if code == 0 {
				t.Errorf("succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q does not mention %q", stderr, w)
				}
			}
		})
	}
}

// TestSegmentJSON: --json prints one object whose cases have covseg
// evaluate's keys, the failed case with its error; the exit status is 1.
func TestSegmentJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cases")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	infertest.WriteRandomCT(t, filepath.Join(dir, "a.nii.gz"), volume.Dims{20, 16, 6}, 1)
	if err := os.WriteFile(filepath.Join(dir, "b.NII"), []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "masks")
	stdout, stderr, code := run(t, "segment", dir, "-o", out, "--model", thresholdModel(t), "--json")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr)
	}
	var res struct {
		Out    string           `json:"out"`
		Failed int              `json:"failed"`
		Cases  []map[string]any `json:"cases"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&res); err != nil || dec.More() {
		t.Fatalf("stdout is not one JSON object (%v): %q", err, stdout)
	}
	if res.Out != out || res.Failed != 1 || len(res.Cases) != 2 {
		t.Fatalf("result %+v", res)
	}
	a, b := res.Cases[0], res.Cases[1]
	if a["case"] != "a" || a["pred"] != filepath.Join(out, "a_mask.nii.gz") || a["pred_ml"] == nil || a["dice"] != nil || a["error"] != nil {
		t.Errorf("case a: %v", a)
	}
	if b["case"] != "b" || !strings.Contains(fmt.Sprint(b["error"]), "b.NII") {
		t.Errorf("case b: %v", b)
	}
}
