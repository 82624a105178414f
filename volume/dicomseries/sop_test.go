package dicomseries

import (
	"fmt"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// TestSOPInstanceUIDs checks that Read reports each voxel plane's
// SOPInstanceUID (files written in shuffled order, instance numbers against
// the position), and the study and patient of the series.
func TestSOPInstanceUIDs(t *testing.T) {
	base := axialSpec("1.2.826.0.1.7", 4, 3)
	base.extra = []rawElem{
		{t: tag.StudyInstanceUID, vr: "UI", val: []byte("1.2.3.4\x00")},
		{t: tag.PatientID, vr: "LO", val: []byte("PAT-01")},
	}
	st := stack{base: base, n: 5, origin: [3]float64{0, 0, 10}, step: -2, value: gradient}
	specs := st.specs()
	dir := t.TempDir()
	writeFiles(t, dir, specs, 3)
	_, info, err := Read(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.SOPInstanceUIDs) != len(info.Files) {
		t.Fatalf("%d UIDs for %d files", len(info.SOPInstanceUIDs), len(info.Files))
	}
	// The step is negative: plane k is the spec written n-1-k.
	for k, got := range info.SOPInstanceUIDs {
		s := specs[len(specs)-1-k]
		if want := fmt.Sprintf("%s.%d", s.series, s.instance+1000); got != want {
			t.Errorf("plane %d: SOPInstanceUID %s, want %s", k, got, want)
		}
	}
	if info.StudyUID != "1.2.3.4" || info.PatientID != "PAT-01" {
		t.Errorf("study %q, patient %q", info.StudyUID, info.PatientID)
	}
	scanned, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(scanned[0].SOPInstanceUIDs) != 5 {
		t.Errorf("Scan: %d UIDs", len(scanned[0].SOPInstanceUIDs))
	}
}
