package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadManifest feeds arbitrary bytes as a manifest: it must give cases
// with both paths or a clear error, never panic.
func FuzzReadManifest(f *testing.F) {
	f.Add([]byte("pred,truth,case\na.nii.gz,b.nii.gz,x\n"))
	f.Add([]byte("a.nii,b.nii\n# comment\n/abs/c.nii, d.nii ,name\n"))
	f.Add([]byte("truth,pred\n\"q,1.nii\",\"r\n.nii\"\n"))
	f.Add([]byte("pred\n"))
	f.Add([]byte("\"unterminated\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "m.csv")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cases, err := readManifest(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the manifest", err)
			}
			return
		}
		for _, c := range cases {
			if c.pred == "" || c.truth == "" || c.name == "" {
				t.Errorf("case %+v lacks a path or name", c)
			}
		}
	})
}

// FuzzCaseName: never empty, never longer than the cleaned path's base name
// (nifti.CaseName cleans first, so "dicom/case01/" and "case01/." name
// case01, the folder).
func FuzzCaseName(f *testing.F) {
	for _, s := range []string{"study_0255_mask.nii.gz", "_mask.nii", ".nii.gz", "x-SEG.nii", "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base := filepath.Base(filepath.Clean(s))
		got := caseName(s)
		if got == "" {
			t.Errorf("caseName(%q) is empty", s)
		}
		if len(got) > len(base) {
			t.Errorf("caseName(%q) = %q is longer than the base name", s, got)
		}
	})
}

// TestCaseName: the NIfTI extension (any letter case) and one mask suffix
// go.
func TestCaseName(t *testing.T) {
	for in, want := range map[string]string{
		"study_0255_mask.nii.gz":    "study_0255",
		"study_0255.nii.gz":         "study_0255",
		"dir/case-01_PRED.nii":      "case-01",
		"case.seg.nii.gz":           "case",
		"coronacases_001.nii.gz":    "coronacases_001",
		"mask.nii.gz":               "mask",
		"x_segmentation.NII.GZ":     "x",
		"lesion_gt_mask.nii.gz":     "lesion_gt",
		"radiopaedia_4_85506_1.nii": "radiopaedia_4_85506_1",
	} {
		if got := caseName(in); got != want {
			t.Errorf("caseName(%q) = %q, want %q", in, got, want)
		}
	}
}
