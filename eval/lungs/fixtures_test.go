package lungs

import (
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/volio"
)

// ioFixtures is the shared folder of real CTs (see its README.md).
var ioFixtures = testutil.SharedPath("fixtures", "io")

func readFixture(t *testing.T, name string) *volume.Volume {
	t.Helper()
	v, _, err := readBench(name)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return v
}

func readBench(name string) (*volume.Volume, *volio.Source, error) {
	return volio.Read(filepath.Join(ioFixtures, name), volio.Options{})
}

// TestTotalSegCrop: a contrast chest CT crop (TotalSegmentator's test
// file, stored LPS) that cuts through both lungs laterally, from the liver
// dome to above the carina: two lungs of about a litre each, the right one
// at larger world x.
func TestTotalSegCrop(t *testing.T) {
	v := readFixture(t, "totalseg_chest_crop.nii.gz")
	r, err := Segment(v, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("right %.1f ml, left %.1f ml, airway %.1f ml, midline x %.1f mm (%s), split %s",
		r.RightML, r.LeftML, r.AirwayML, r.MidlineX, r.MidlineFrom, r.Split)
	for _, l := range []struct {
		name string
		ml   float64
	}{{"right", r.RightML}, {"left", r.LeftML}} {
		// The crop holds 183 x 153 x 168 mm, 4.7 l; the lungs fill about
		// 40 % of it.
		if l.ml < 600 || l.ml > 1300 {
			t.Errorf("%s lung %.1f ml, want 600..1300 ml for this crop", l.name, l.ml)
		}
	}
	if xr, xl := centroidX(r.Mask, Right), centroidX(r.Mask, Left); !(xr > r.MidlineX && r.MidlineX > xl) {
		t.Errorf("right lung centred at x = %.1f mm, left at %.1f mm, midline %.1f mm: want right > midline > left (RAS+)", xr, xl, r.MidlineX)
	}
	if r.MidlineFrom != "airway" || r.AirwayML < 5 {
		t.Errorf("midline from %q, airway %.1f ml: want the trachea found", r.MidlineFrom, r.AirwayML)
	}
	checkOrientations(t, v, r.Mask, "x flipped", "SLA")
}

// TestIBSIChest: the IBSI radiomics CT crop holds the patient's right lung
// (with a large tumour) and the mediastinum, not the left lung: one lung,
// labelled right. The liver under it confirms the side. Its DICOM series
// (stored LAS, the NIfTI LPS) must give the same mask in world space.
func TestIBSIChest(t *testing.T) {
	v := readFixture(t, filepath.Join("ibsi_chest_ct", "image.nii.gz"))
	r, err := Segment(v, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("right %.1f ml, left %.1f ml, airway %.1f ml, midline x %.1f mm (%s), split %s",
		r.RightML, r.LeftML, r.AirwayML, r.MidlineX, r.MidlineFrom, r.Split)
	if r.RightML < 1000 || r.RightML > 1400 || r.LeftML != 0 {
		t.Errorf("right %.1f ml, left %.1f ml; want 1000..1400 ml and 0", r.RightML, r.LeftML)
	}
	if x := centroidX(r.Mask, Right); x <= r.MidlineX {
		t.Errorf("right lung centred at x = %.1f mm, not right of the midline at %.1f mm", x, r.MidlineX)
	}
	checkOrientations(t, v, r.Mask, "PIR")

	d := readFixture(t, filepath.Join("ibsi_chest_ct", "dicom"))
	rd, err := Segment(d, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	a, b := r.Mask.Canonical(), rd.Mask.Canonical()
	if a.Dims != b.Dims || !a.Affine.Equal(b.Affine, 1e-3) {
		t.Fatalf("DICOM mask on grid %v %v, NIfTI's on %v %v", b.Dims, b.Affine, a.Dims, a.Affine)
	}
	diff := 0
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			diff++
		}
	}
	if diff != 0 {
		t.Errorf("DICOM series (%s) and NIfTI (%s): %d voxels differ in canonical space", d.Affine.AxCodes(), v.Affine.AxCodes(), diff)
	}
}
