package nifti

import (
	"math"
	"testing"

	"github.com/covseg/covseg/volume"
)

// TestQformRounding: stored quaternion parameters whose squares add up to a
// little over 1 (float32 rounding of a 180° rotation) give a = 0, as in
// nibabel; the expected matrix is what nibabel 5.0 computes for the same
// header (pixdim 1, 2, 3 and qfac -1).
func TestQformRounding(t *testing.T) {
	u := float64(math.Nextafter32(float32(1/math.Sqrt(3)), 1))
	h := &Header{Version: 1, QformCode: 1, Quatern: [3]float64{u, u, u}, Pixdim: [8]float64{-1, 1, 2, 3}, Dim: [8]int64{3, 2, 2, 2}}
	if w2 := 1 - 3*u*u; w2 >= 0 {
		t.Fatalf("test needs a negative w2, got %g", w2)
	}
	got, err := h.QformAffine()
	if err != nil {
		t.Fatal(err)
	}
	want := volume.Affine{
		{-0.3333333333333333, 1.3333333333333333, -2.0, 0.0},
		{0.6666666666666666, -0.6666666666666666, -2.0, 0.0},
		{0.6666666666666666, 1.3333333333333333, 1.0, 0.0},
		{0, 0, 0, 1},
	}
	if !got.Equal(want, 1e-12) {
		t.Errorf("qform\n%v\nnibabel\n%v", got, want)
	}
	// NIfTI-2 stores float64 parameters, so its tolerance is float64's.
	h.Version = 2
	if _, err := h.QformAffine(); err == nil {
		t.Error("NIfTI-2 accepted b²+c²+d² - 1 = 1.7e-7")
	}
}

// TestQformChoice: the transform is chosen by its code as nibabel does,
// codes outside 1..5 counting as 0, and the fallback is nibabel's.
func TestQformChoice(t *testing.T) {
	h := &Header{Version: 1, Dim: [8]int64{3, 3, 5, 7}, Pixdim: [8]float64{1, 3, 2, 1}}
	h.Srow = [3][4]float64{{1, 0, 0, 10}, {0, 1, 0, 20}, {0, 0, 1, 30}}
	h.QOffset = [3]float64{-1, -2, -3}
	cases := []struct {
		q, s int
		want volume.Affine
	}{
		{1, 1, h.SformAffine()},
		{0, 2, h.SformAffine()},
		{0, 5, h.SformAffine()},
		{1, 0, volume.Affine{{3, 0, 0, -1}, {0, 2, 0, -2}, {0, 0, 1, -3}, {0, 0, 0, 1}}},
		{1, 6, volume.Affine{{3, 0, 0, -1}, {0, 2, 0, -2}, {0, 0, 1, -3}, {0, 0, 0, 1}}},
		{3, -1, volume.Affine{{3, 0, 0, -1}, {0, 2, 0, -2}, {0, 0, 1, -3}, {0, 0, 0, 1}}},
		// nibabel's shape_zoom_affine((3, 5, 7), (3, 2, 1)) docstring example.
		{0, 0, volume.Affine{{-3, 0, 0, 3}, {0, 2, 0, -4}, {0, 0, 1, -3}, {0, 0, 0, 1}}},
		{-2, 9, volume.Affine{{-3, 0, 0, 3}, {0, 2, 0, -4}, {0, 0, 1, -3}, {0, 0, 0, 1}}},
	}
	for _, c := range cases {
		h.QformCode, h.SformCode = c.q, c.s
		got, err := h.Affine()
		if err != nil || got != c.want {
			t.Errorf("codes q %d s %d: %v %v, want %v", c.q, c.s, got, err, c.want)
		}
	}
	// nibabel takes negative voxel sizes as positive and zero as 1.
	h.QformCode, h.SformCode = 0, 0
	h.Pixdim = [8]float64{1, -3, 0, 1}
	if got, _ := h.Affine(); got != (volume.Affine{{-3, 0, 0, 3}, {0, 1, 0, -2}, {0, 0, 1, -3}, {0, 0, 0, 1}}) {
		t.Errorf("fallback with pixdim -3, 0: %v", got)
	}
}

// TestToQform: the quaternion form of rotations of every kind gives back
// the affine. Near 180° the format itself loses precision: a is not stored
// but computed as sqrt(1 - b² - c² - d²), so an error of one rounding in
// b, c, d becomes one of about its square root in a (1e-8 with NIfTI-2's
// float64, 3e-4 with NIfTI-1's float32, where the sform holds the exact
// affine).
func TestToQform(t *testing.T) {
	for _, axis := range [][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}, {-0.3, 0.2, 0.9}} {
		for _, deg := range []float64{0, 1, 45, 90, 135, 179.999, 180} {
			for _, flip := range []bool{false, true} {
				a := oblique(rotation(axis, deg), flip, [3]float64{0.5, 1.5, 4}, [3]float64{1, -2, 3})
				q := toQform(a)
				h := &Header{Version: 2, Quatern: q.quatern, QOffset: q.offset,
					Pixdim: [8]float64{q.qfac, q.zooms[0], q.zooms[1], q.zooms[2]}}
				got, err := h.QformAffine()
				tol := 1e-12
				if deg > 170 {
					tol = 1e-6
				}
				if err != nil || !got.Equal(a, tol) {
					t.Errorf("axis %v %g° flip %v: %v %v, want %v", axis, deg, flip, got, err, a)
				}
			}
		}
	}
}
