package cli

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// TestLungsCommand segments the TotalSegmentator crop (NIfTI, LPS) and the
// IBSI series (DICOM folder): the mask lies on the input's grid and holds
// what package lungs finds; the montage is a PNG.
func TestLungsCommand(t *testing.T) {
	for _, c := range []struct {
		rel         string
		right, left bool
	}{
		{"totalseg_chest_crop.nii.gz", true, true},
		{"ibsi_chest_ct/dicom", true, false},
	} {
		in := fixture(t, c.rel)
		dir := t.TempDir()
		out, pngPath := filepath.Join(dir, "lungs.nii.gz"), filepath.Join(dir, "lungs.png")
		stdout, stderr, code := run(t, "lungs", in, "-o", out, "--png", pngPath)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.rel, code, stderr)
		}
		if !strings.Contains(stdout, "right lung") || c.left != (stderr == "") || (!c.left && !strings.Contains(stderr, "no left lung")) {
			t.Errorf("%s: stdout %q, stderr %q", c.rel, stdout, stderr)
		}
		ct, _, err := volio.Read(in, volio.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := nifti.ReadLabel(out)
		if err != nil {
			t.Fatal(err)
		}
		if got.Dims != ct.Dims || !got.Affine.Equal(ct.Affine, 1e-4) {
			t.Errorf("%s: mask on %v %v, CT on %v %v", c.rel, got.Dims, got.Affine, ct.Dims, ct.Affine)
		}
		want, err := lungs.Segment(ct, lungs.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if !equalLabels(got, want.Mask) {
			t.Errorf("%s: the written mask differs from lungs.Segment's", c.rel)
		}
		f, err := os.Open(pngPath)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: montage: %v", c.rel, err)
		}
		f.Close()
	}
}

func equalLabels(a, b *volume.Label) bool {
	if a.Dims != b.Dims || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			return false
		}
	}
	return true
}

func TestLungsCommandErrors(t *testing.T) {
	dir := t.TempDir()
	notNifti := filepath.Join(dir, "notes.nii.gz")
	if err := os.WriteFile(notNifti, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lungs", filepath.Join(dir, "missing.nii.gz"), "-o", filepath.Join(dir, "o.nii.gz")}, "missing.nii.gz"},
		{[]string{"lungs", notNifti, "-o", filepath.Join(dir, "o.nii.gz")}, "notes.nii.gz"},
		{[]string{"lungs", notNifti}, "-o"},
		{[]string{"lungs", fixture(t, "totalseg_chest_crop.nii.gz"), "-o", filepath.Join(dir, "o.nii.gz"), "--bridge", "-3"}, "negative"},
	} {
		_, stderr, code := run(t, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want failure mentioning %q", c.args, code, stderr, c.want)
		}
	}
}

// TestReportCommand reports on the TotalSegmentator crop with an
// infiltrate covering every other voxel of the left lung (27 % of both):
// JSON on standard output, Markdown and PNG files, computed or given lungs.
func TestReportCommand(t *testing.T) {
	in := fixture(t, "totalseg_chest_crop.nii.gz")
	dir := t.TempDir()
	lungsPath := filepath.Join(dir, "lungs.nii.gz")
	if _, stderr, code := run(t, "lungs", in, "-o", lungsPath); code != 0 {
		t.Fatal(stderr)
	}
	lm, _, err := nifti.ReadLabel(lungsPath)
	if err != nil {
		t.Fatal(err)
	}
	mask := &volume.Label{Dims: lm.Dims, Affine: lm.Affine, Data: make([]uint8, len(lm.Data))}
	var inf, left int
	for p, l := range lm.Data {
		if l == lungs.Left {
			left++
			if p%2 == 0 {
				mask.Data[p] = 1
				inf++
			}
		}
	}
	maskPath := filepath.Join(dir, "mask.nii.gz")
	if err := nifti.WriteLabel(maskPath, mask); err != nil {
		t.Fatal(err)
	}
	for _, given := range []bool{false, true} {
		args := []string{"report", "--ct", in, "--mask", maskPath, "--json",
			"--markdown", filepath.Join(dir, "r.md"), "--png", filepath.Join(dir, "r.png")}
		if given {
			args = append(args, "--lungs", lungsPath)
		}
		stdout, stderr, code := run(t, args...)
		if code != 0 {
			t.Fatalf("given=%v: exit %d: %s", given, code, stderr)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("given=%v: standard output is not JSON: %v\n%s", given, err, stdout)
		}
		wantPct := 100 * float64(inf) / float64(left)
		if p := r["involvement_left_pct"].(float64); p < wantPct-1e-9 || p > wantPct+1e-9 {
			t.Errorf("given=%v: left involvement %v, want %v", given, p, wantPct)
		}
		if r["category"] != "CT-2" || r["involvement_right_pct"].(float64) != 0 {
			t.Errorf("given=%v: category %v, right %v; want CT-2 and 0", given, r["category"], r["involvement_right_pct"])
		}
		if r["inputs"].(map[string]any)["lungs_computed"] != !given {
			t.Errorf("given=%v: inputs %v", given, r["inputs"])
		}
		md, err := os.ReadFile(filepath.Join(dir, "r.md"))
		if err != nil || !strings.Contains(string(md), "**Category CT-2**") {
			t.Errorf("given=%v: Markdown file: %v\n%s", given, err, md)
		}
		if _, err := os.Stat(filepath.Join(dir, "r.png")); err != nil {
			t.Errorf("given=%v: %v", given, err)
		}
	}
	// Without --json, standard output is the Markdown.
	stdout, stderr, code := run(t, "report", "--ct", in, "--mask", maskPath, "--lungs", lungsPath)
	if code != 0 || !strings.HasPrefix(stdout, "# COVID-19 severity report") {
		t.Errorf("Markdown to standard output: exit %d, %q %q", code, stdout, stderr)
	}
}

func TestReportCommandErrors(t *testing.T) {
	ts := fixture(t, "totalseg_chest_crop.nii.gz")
	ibsi := fixture(t, "ibsi_chest_ct/image.nii.gz")
	mosmed := fixture(t, "mosmed_masks/study_0255_mask.nii.gz")
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--ct", ts}, "--mask"},
		{[]string{"report", "--ct", ts, "--mask", mosmed}, "must lie on one grid"},
		{[]string{"report", "--ct", ts, "--mask", ts}, "totalseg_chest_crop.nii.gz"}, // HU values are no label map
		{[]string{"report", "--ct", ibsi, "--mask", filepath.Join(dir, "none.nii.gz")}, "none.nii.gz"},
	} {
		_, stderr, code := run(t, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want failure mentioning %q", c.args[1:], code, stderr, c.want)
		}
	}
}
