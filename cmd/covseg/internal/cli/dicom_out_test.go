package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	if tool, err := exec.LookPath("dciodvfy"); err == nil {
		for _, p := range paths {
			o, _ := exec.Command(tool, p).CombinedOutput()
			if strings.Contains(string(o), "Error") {
				t.Errorf("dciodvfy %s:\n%s", p, o)
			}
		}
	} else if os.Getenv("CI") != "" {
		t.Fatal("dciodvfy not installed (Debian dicom3tools; scripts/setup installs it)")
	}

	_, stderr, code = run(t, "segment", fixture(t, "ibsi_chest_ct/image.nii.gz"), "-o", t.TempDir(), "--model", model, "--dicom-seg")
	if code == 0 || !strings.Contains(stderr, "need a DICOM series") {
		t.Fatalf("NIfTI input with --dicom-seg: exit %d, stderr %s", code, stderr)
	}
}
