package dicomseries

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/covseg/covseg/internal/testutil"
)

// TestReadKeepsSliceReferences checks the per-slice lists Read fills for
// derived objects: SOP class and position of each slice in voxel order,
// consistent with the volume's affine, and ReadDataset's header.
func TestReadKeepsSliceReferences(t *testing.T) {
	dir := testutil.IO(t, "ibsi_chest_ct", "dicom")
	v, info, err := Read(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(info.Files)
	if len(info.SOPClassUIDs) != n || len(info.Positions) != n {
		t.Fatalf("%d files, %d classes, %d positions", n, len(info.SOPClassUIDs), len(info.Positions))
	}
	a := v.Affine
	for k, p := range info.Positions {
		if info.SOPClassUIDs[k] != "1.2.840.10008.5.1.4.1.1.2" {
			t.Fatalf("slice %d: SOP class %s", k, info.SOPClassUIDs[k])
		}
		// RAS+ affine applied to (0, 0, k), negated x and y: LPS+.
		want := [3]float64{-(a[0][2]*float64(k) + a[0][3]), -(a[1][2]*float64(k) + a[1][3]), a[2][2]*float64(k) + a[2][3]}
		for ax := range 3 {
			if math.Abs(p[ax]-want[ax]) > 1e-3 {
				t.Fatalf("slice %d: position %v, affine says %v", k, p, want)
			}
		}
	}
	if math.Abs(info.SliceStep-3) > 1e-6 || info.PixelSpacing[0] <= 0 || info.Orientation[0] != 1 {
		t.Fatalf("step %g, spacing %v, orientation %v", info.SliceStep, info.PixelSpacing, info.Orientation)
	}
	ds, err := ReadDataset(info.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	e, err := ds.FindElementByTag(tag.StudyInstanceUID)
	if err != nil || dicom.MustGetStrings(e.Value)[0] != info.StudyUID {
		t.Fatalf("StudyInstanceUID %v (%v), want %s", e, err, info.StudyUID)
	}
	if _, err := ds.FindElementByTag(tag.PixelData); err == nil {
		t.Error("ReadDataset kept the pixel data")
	}
	bad := filepath.Join(t.TempDir(), "x.dcm")
	os.WriteFile(bad, []byte("not DICOM at all"), 0o644)
	if _, err := ReadDataset(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("non-DICOM file: %v", err)
	}
}
