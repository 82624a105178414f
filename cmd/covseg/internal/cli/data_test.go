package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/data/dataset"
)

// TestDataCommands writes the synthetic stand-ins, converts the RICORD one
// and lists all three in one manifest.
func TestDataCommands(t *testing.T) {
	dir := t.TempDir()
	out, stderr, code := run(t, "data", "synth", "-o", dir, "--dims", "20x20x6", "--coronacases", "3", "--mosmed", "3", "--ricord", "2")
	if code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	if !strings.Contains(out, "synthetic") {
		t.Errorf("synth does not say the data are synthetic:\n%s", out)
	}
	ri := filepath.Join(dir, "ricord-nifti")
	out, stderr, code = run(t, "data", "ricord", "--dicom", filepath.Join(dir, "ricord", "dicom"),
		"--annotations", filepath.Join(dir, "ricord", "annotations.json"), "-o", ri, "--val", "0.5", "--test", "0")
	if code != 0 {
		t.Fatalf("ricord: %s", stderr)
	}
	if !strings.Contains(out, "wrote 2 pairs") || !strings.Contains(out, "ricord: 1 train, 1 val, 0 test") {
		t.Errorf("ricord output:\n%s", out)
	}
	man := filepath.Join(dir, "all.csv")
	out, stderr, code = run(t, "data", "discover", "--coronacases", filepath.Join(dir, "coronacases"),
		"--mosmed", filepath.Join(dir, "mosmed"), "--unlabelled", "--pairs", "ricord="+ri, "--whole", "coronacases=test", "-o", man)
	if code != 0 {
		t.Fatalf("discover: %s", stderr)
	}
	m, err := dataset.ReadManifest(man)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range m.Entries {
		n[e.Dataset]++
		if e.Dataset == dataset.Coronacases && e.Split != dataset.Test {
			t.Errorf("coronacases entry in %s", e.Split)
		}
	}
	if n[dataset.Coronacases] != 3 || n[dataset.MosMed] != 4 || n[dataset.RICORD] != 2 {
		t.Errorf("counts %v\n%s", n, out)
	}
	for _, bad := range [][]string{
		{"data", "ricord", "--dicom", dir},
		{"data", "discover", "-o", man},
		{"data", "discover", "--mosmed", dir, "--whole", "mosmed", "-o", man},
		{"data", "synth", "-o", dir, "--dims", "20x20"},
		{"data", "ricord", "--dicom", filepath.Join(dir, "ricord", "dicom"), "--annotations", filepath.Join(dir, "ricord", "annotations.json"), "-o", ri, "--label", "Nodule"},
	} {
		if _, stderr, code := run(t, bad...); code == 0 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", bad, code, stderr)
		}
	}
}
