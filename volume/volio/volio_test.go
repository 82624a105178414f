package volio

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/membudget"
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

// TestAccumulatorMatchesTwoPass: statistics accumulated over uneven chunks
// (some holding NaN and Inf) agree with a direct two-pass computation, also
// for data whose mean is far from zero beside its spread.
func TestAccumulatorMatchesTwoPass(t *testing.T) {
	data := make([]float32, 100003)
	x := uint32(7)
	for i := range data {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		data[i] = 3000 + float32(x%1000)/250
	}
	data[17], data[50000], data[99999] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
	var n, sum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range data {
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			n++
			sum += f
			lo, hi = math.Min(lo, f), math.Max(hi, f)
		}
	}
	mean := sum / n
	var ss float64
	for _, v := range data {
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			ss += (f - mean) * (f - mean)
		}
	}
	sd := math.Sqrt(ss / n)
	var a Accumulator
	for i := 0; i < len(data); {
		j := min(len(data), i+1+(i*7919)%40000)
		a.Add(data[i:j])
		i = j
	}
	s := a.Stats()
	if s.Finite != int(n) || s.NonFinite != 3 || s.Min != lo || s.Max != hi ||
		math.Abs(s.Mean-mean) > 1e-9 || math.Abs(s.SD-sd) > 1e-9*sd || math.Abs(s.Sum-sum) > 1e-6 {
		t.Errorf("accumulated %+v; two-pass n %v mean %v sd %v sum %v min %v max %v", s, n, mean, sd, sum, lo, hi)
	}
}

// TestReadRefusesOverBudget: NIfTI and DICOM volumes whose working copies
// exceed the memory budget are refused before their voxels are read, with
// the path, the sizes and how to raise the budget; ReadStats streams a
// NIfTI file whatever the budget.
func TestReadRefusesOverBudget(t *testing.T) {
	defer membudget.Reset()
	nii := filepath.Join(fixtures, "ibsi_chest_ct/image.nii.gz")
	dcm := filepath.Join(fixtures, "ibsi_chest_ct/dicom")
	v, _, err := Read(nii, Options{})
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(v.Data)) * 4
	membudget.Set(size * 3)
	for _, p := range []string{nii, dcm} {
		if _, _, err := Read(p, Options{Copies: 2}); err != nil {
			t.Errorf("%s with 2 copies in a budget of 3: %v", p, err)
		}
		_, _, err := Read(p, Options{Copies: 4})
		if !errors.Is(err, membudget.ErrTooLarge) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "--mem-budget") {
			t.Errorf("%s with 4 copies in a budget of 3: %v", p, err)
		}
	}
	membudget.Set(1 << 10)
	src, s, err := ReadStats(nii, Options{})
	if err != nil || s == nil || s.Finite != len(v.Data) || src.NonFinite != 0 {
		t.Fatalf("ReadStats under a 1 KiB budget: %+v, %v", s, err)
	}
	if want := Compute(v.Data); math.Abs(s.Mean-want.Mean) > 1e-9*math.Abs(want.Mean) || s.Min != want.Min || s.Max != want.Max ||
		math.Abs(s.SD-want.SD) > 1e-9*want.SD {
		t.Errorf("streamed %+v, whole %+v", *s, want)
	}
}
