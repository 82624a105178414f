package dicomreport

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	inf, _ := volume.NewLabel(ct.Dims, ct.Affine)
	d := ct.Dims
	for k := 20; k < 30; k++ {
		for j := 60; j < 90; j++ {
			for i := 40; i < 70; i++ {
				inf.Data[i+d[0]*(j+d[1]*k)] = 1
			}
		}
	}
	stem := filepath.Join(t.TempDir(), "case")
	out, err := Write(stem, src, ct, inf, nil, Options{SEG: true, SC: true, Lungs: true, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.SEG.FramesPerSegment) != 3 || out.SEG.FramesPerSegment[0] != 10 {
		t.Fatalf("frames per segment %v, want 3 segments, 10 infiltrate frames", out.SEG.FramesPerSegment)
	}
	if out.SEG.StudyInstanceUID != info.StudyUID || out.SC.StudyInstanceUID != info.StudyUID {
		t.Fatal("outputs not in the source study")
	}
	lines := FigureLines(out.Report, "test")
	if !strings.Contains(lines[len(lines)-1], NotForDiagnosis) || !strings.Contains(lines[0], out.Report.Category) {
		t.Fatalf("figure lines %q", lines)
	}
	tool, err := exec.LookPath("dciodvfy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dciodvfy not installed (Debian dicom3tools; scripts/setup installs it)")
		}
		t.Skip("dciodvfy not installed")
	}
	for _, p := range []string{out.SEG.Path, out.SC.Path} {
		o, _ := exec.Command(tool, p).CombinedOutput()
		if strings.Contains(string(o), "Error") {
			t.Fatalf("dciodvfy %s:\n%s", p, o)
		}
	}
}
