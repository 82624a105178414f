package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
)

// TestSegmentDICOMOutputs segments the IBSI DICOM series with --dicom-seg
// and --dicom-sc: both objects are written beside the mask (and pass
// dciodvfy where it is installed; CI requires it), while a NIfTI case
// asking for them fails with the reason.
func TestSegmentDICOMOutputs(t *testing.T) {
	out := t.TempDir()
	model := thresholdModel(t)
	_, stderr, code := run(t, "segment", fixture(t, "ibsi_chest_ct/dicom"), "-o", out, "--model", model, "--dicom-seg", "--dicom-sc")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	paths := []string{filepath.Join(out, "dicom_seg.dcm"), filepath.Join(out, "dicom_sc.dcm")}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	tool := testutil.Tool(t, "dciodvfy", "dicom3tools")
	for _, p := range paths {
		o, _ := exec.Command(tool, p).CombinedOutput()
		if strings.Contains(string(o), "Error") {
			t.Errorf("dciodvfy %s:\n%s", p, o)
		}
	}

	_, stderr, code = run(t, "segment", fixture(t, "ibsi_chest_ct/image.nii.gz"), "-o", t.TempDir(), "--model", model, "--dicom-seg")
	if code == 0 || !strings.Contains(stderr, "need a DICOM series") {
		t.Fatalf("NIfTI input with --dicom-seg: exit %d, stderr %s", code, stderr)
	}
}

// TestReportAndLungsDICOM writes a SEG and an SC from covseg report (the
// mask covseg segment wrote for the DICOM series) and a lungs SEG from
// covseg lungs.
func TestReportAndLungsDICOM(t *testing.T) {
	dir := t.TempDir()
	series := fixture(t, "ibsi_chest_ct/dicom")
	if _, stderr, code := run(t, "segment", series, "-o", dir, "--model", thresholdModel(t)); code != 0 {
		t.Fatalf("segment: %s", stderr)
	}
	seg, sc := filepath.Join(dir, "r_seg.dcm"), filepath.Join(dir, "r_sc.dcm")
	if _, stderr, code := run(t, "report", "--ct", series, "--mask", filepath.Join(dir, "dicom_mask.nii.gz"), "--dicom-seg", seg, "--dicom-sc", sc); code != 0 {
		t.Fatalf("report: %s", stderr)
	}
	lungSEG := filepath.Join(dir, "lungs_seg.dcm")
	if _, stderr, code := run(t, "lungs", series, "-o", filepath.Join(dir, "lungs.nii.gz"), "--dicom-seg", lungSEG); code != 0 {
		t.Fatalf("lungs: %s", stderr)
	}
	for _, p := range []string{seg, sc, lungSEG} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, stderr, code := run(t, "lungs", fixture(t, "ibsi_chest_ct/image.nii.gz"), "-o", filepath.Join(dir, "l2.nii.gz"), "--dicom-seg", filepath.Join(dir, "x.dcm")); code == 0 || !strings.Contains(stderr, "need a DICOM series") {
		t.Fatalf("lungs --dicom-seg on NIfTI: exit %d %s", code, stderr)
	}
}
