package nifti

import (
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// ioExpect is an entry of ../shared/fixtures/io/expected.json; the fields are
// defined in ../shared/tools/io_expect.py.
type ioExpect struct {
	Dims          []int       `json:"dims"`
	Spacing       []float64   `json:"spacing"`
	AffineRAS     [][]float64 `json:"affine_ras"`
	AxcodesOnDisk string      `json:"axcodes_on_disk"`
	DtypeOnDisk   string      `json:"dtype_on_disk"`
	DimsOnDisk    []int       `json:"dims_on_disk"`
	AffineOnDisk  [][]float64 `json:"affine_on_disk"`
	Min           float64     `json:"min"`
	Max           float64     `json:"max"`
	Mean          float64     `json:"mean"`
	Sum           float64     `json:"sum"`
	Nonfinite     int         `json:"nonfinite"`
	SHA256        string      `json:"sha256_f32_xfastest"`
}

// TestFixtures reads every NIfTI file of the shared io fixtures and compares
// it with what nibabel read from it: on-disk dims, affine and datatype, the
// voxel statistics, and after reorientation to RAS+ the dims, spacing,
// affine and the hash of every voxel.
func TestFixtures(t *testing.T) {
	dir := filepath.Join(sharedDir, "fixtures", "io")
	var want map[string]ioExpect
	readJSON(t, filepath.Join(dir, "expected.json"), &want)
	var names []string
	for name := range want {
		if strings.HasSuffix(name, ".nii.gz") || strings.HasSuffix(name, ".nii") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) < 7 {
		t.Fatalf("expected.json lists only %d NIfTI files: %v", len(names), names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			checkFixture(t, filepath.Join(dir, name), want[name])
		})
	}
}

func checkFixture(t *testing.T, path string, e ioExpect) {
	v, h, err := ReadVolume(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Shape(); !equalInts(got, e.DimsOnDisk) {
		t.Errorf("dims on disk %v, nibabel %v", got, e.DimsOnDisk)
	}
	if got := h.Datatype.String(); got != e.DtypeOnDisk {
		t.Errorf("datatype %s, nibabel %s", got, e.DtypeOnDisk)
	}
	if want := affineFrom(t, e.AffineOnDisk); !v.Affine.Equal(want, 1e-4) {
		t.Errorf("affine on disk\n%v\nnibabel\n%v", v.Affine, want)
	}
	if got := v.Affine.AxCodes(); got != e.AxcodesOnDisk {
		t.Errorf("axis codes %s, nibabel %s", got, e.AxcodesOnDisk)
	}
	s := statsOf(v.Data)
	if s.nonfinite != e.Nonfinite || s.min != e.Min || s.max != e.Max ||
		!near(s.mean, e.Mean, 1e-9) || !near(s.sum, e.Sum, 1e-9) {
		t.Errorf("stats %+v, nibabel min %g max %g mean %g sum %g nonfinite %d",
			s, e.Min, e.Max, e.Mean, e.Sum, e.Nonfinite)
	}

	c := v.Canonical()
	if got := c.Dims[:]; !equalInts(got, e.Dims) {
		t.Errorf("canonical dims %v, nibabel %v", got, e.Dims)
	}
	sp := c.Spacing()
	for i := range sp {
		if math.Abs(sp[i]-e.Spacing[i]) > 1e-5 {
			t.Errorf("canonical spacing %v, nibabel %v", sp, e.Spacing)
			break
		}
	}
	if want := affineFrom(t, e.AffineRAS); !c.Affine.Equal(want, 1e-4) {
		t.Errorf("canonical affine\n%v\nnibabel\n%v", c.Affine, want)
	}
	if got := c.Affine.AxCodes(); got != "RAS" {
		t.Errorf("canonical volume has axis codes %s", got)
	}
	if got := f32Hash(c.Data); got != e.SHA256 {
		t.Errorf("canonical voxel sha256 %s, nibabel %s", got, e.SHA256)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
