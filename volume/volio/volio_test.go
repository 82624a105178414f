package volio

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
)

var fixtures = testutil.SharedPath("fixtures", "io")

// The IBSI chest CT is stored as NIfTI (LPS) and as its DICOM series: both
// must give the same canonical voxels and the same affine.
func TestNIfTIAndDICOMAgree(t *testing.T) {
	nii, src1, err := Read(filepath.Join(fixtures, "ibsi_chest_ct/image.nii.gz"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dcm, src2, err := Read(filepath.Join(fixtures, "ibsi_chest_ct/dicom"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src1.Format != NIfTI || src2.Format != DICOM || src2.Series == nil || src1.NIfTI == nil {
		t.Fatalf("sources %+v %+v", src1, src2)
	}
	a, b := nii.Canonical(), dcm.Canonical()
	if a.Dims != b.Dims || !a.Affine.Equal(b.Affine, 1e-4) {
		t.Fatalf("canonical grids differ: %v %v / %v %v", a.Dims, a.Affine, b.Dims, b.Affine)
	}
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			t.Fatalf("voxel %d: NIfTI %v, DICOM %v", i, a.Data[i], b.Data[i])
		}
	}
}

func TestCaseName(t *testing.T) {
	for in, want := range map[string]string{
		"/d/coronacases_org_001.nii.gz": "coronacases_org_001",
		"study_0255_mask.nii":           "study_0255_mask",
		"/data/ricord/patient7/":        "patient7",
	} {
		if got := CaseName(in); got != want {
			t.Errorf("CaseName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStats(t *testing.T) {
	s := Compute([]float32{1, 2, float32(math.NaN()), 3, float32(math.Inf(1))})
	if s.Min != 1 || s.Max != 3 || s.Mean != 2 || s.Sum != 6 || s.NonFinite != 2 || math.Abs(s.SD-math.Sqrt(2.0/3)) > 1e-12 {
		t.Errorf("%+v", s)
	}
}

func TestReadRefusesSingleDICOMFile(t *testing.T) {
	p := filepath.Join(fixtures, "ricord_jpeg_lossless_3slices/1-120.dcm")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(p, Options{}); err == nil {
		t.Fatal("a single DICOM file was read as a volume")
	}
}
