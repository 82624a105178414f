package dicomreport

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomout"
	"github.com/covseg/covseg/volume/dicomseries"
)

// TestWriteSEGAndSC writes both objects for the fixture series with a
// block of "infiltrate" and checks what they hold; dciodvfy checks them
// when installed (required under CI).
func TestWriteSEGAndSC(t *testing.T) {
	ct, info, err := dicomseries.Read(testutil.IO(t, "ibsi_chest_ct", "dicom"), dicomseries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := dicomout.NewSource(info)
	if err != nil {
		t.Fatal(err)
	}
	// Lung-density voxels denser than aerated lung: enough for CT-2, whose
	// range ("25 % ≤ ...") must reach the SC as ASCII.
	inf, _ := volume.NewLabel(ct.Dims, ct.Affine)
	for i, v := range ct.Data {
		if v > -700 && v < -300 {
			inf.Data[i] = 1
		}
	}
	stem := filepath.Join(t.TempDir(), "case")
	out, err := Write(stem, src, ct, inf, nil, Options{SEG: true, SC: true, Lungs: true, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.SEG.FramesPerSegment) != 3 || out.SEG.FramesPerSegment[0] == 0 || out.SEG.FramesPerSegment[1] == 0 {
		t.Fatalf("frames per segment %v, want 3 segments, infiltrate and right lung not empty", out.SEG.FramesPerSegment)
	}
	if out.Report.Category != "CT-2" {
		t.Fatalf("category %s, want CT-2 (the test needs a range with ≤)", out.Report.Category)
	}
	if out.SEG.StudyInstanceUID != info.StudyUID || out.SC.StudyInstanceUID != info.StudyUID {
		t.Fatal("outputs not in the source study")
	}
	lines := FigureLines(out.Report, "test")
	if !strings.Contains(lines[len(lines)-1], NotForDiagnosis) || !strings.Contains(lines[0], out.Report.Category) {
		t.Fatalf("figure lines %q", lines)
	}
	tool := testutil.Tool(t, "dciodvfy", "dicom3tools")
	for _, p := range []string{out.SEG.Path, out.SC.Path} {
		o, _ := exec.Command(tool, p).CombinedOutput()
		if strings.Contains(string(o), "Error") {
			t.Fatalf("dciodvfy %s:\n%s", p, o)
		}
	}
}

// TestFigureLinesASCII checks that every category's lines are plain ASCII
// (the picture's font and the source's character set may have nothing
// else): CT-2's range holds "≤".
func TestFigureLinesASCII(t *testing.T) {
	p := 30.0
	r := &severity.Report{Category: "CT-2", CategoryRange: "25 % ≤ involvement < 50 %", InvolvementPct: &p}
	for _, l := range FigureLines(r, "v") {
		for _, c := range l {
			if c > 0x7e || c < 0x20 {
				t.Fatalf("non-ASCII %q in %q", c, l)
			}
		}
	}
	if l := FigureLines(r, "v")[0]; !strings.Contains(l, "25 % <= involvement < 50 %") {
		t.Fatalf("line %q", l)
	}
}
