package nifti

import (
	"fmt"
	"math"

	"github.com/covseg/covseg/volume"
)

// Affine returns the voxel-to-world transform exactly as nibabel's
// get_best_affine chooses it: the sform if sform_code is not 0, else the
// qform if qform_code is not 0, else the fallback (BaseAffine). Codes that
// NIfTI does not define (outside 0..5) count as 0, as nibabel's header fixes
// make them. A transform holding non-finite numbers is an error.
func (h *Header) Affine() (volume.Affine, error) {
	var a volume.Affine
	var what string
	switch {
	case validXform(h.SformCode):
		a, what = h.SformAffine(), "sform"
	case validXform(h.QformCode):
		var err error
		if a, err = h.QformAffine(); err != nil {
			return a, err
		}
		what = "qform"
	default:
		a, what = h.BaseAffine(), "fallback affine from dims and pixdim"
	}
	for r := 0; r < 3; r++ {
		for c := 0; c < 4; c++ {
			if math.IsNaN(a[r][c]) || math.IsInf(a[r][c], 0) {
				return a, fmt.Errorf("the %s holds a non-finite value (%g at row %d, column %d)", what, a[r][c], r, c)
			}
		}
	}
	return a, nil
}

// validXform reports whether code names a transform nibabel would use:
// 1 (scanner) to 5 (template).
func validXform(code int) bool { return code >= 1 && code <= 5 }

// SformAffine returns the affine held in srow_x, srow_y and srow_z, whatever
// sform_code says.
func (h *Header) SformAffine() volume.Affine {
	var a volume.Affine
	for r := 0; r < 3; r++ {
		a[r] = h.Srow[r]
	}
	a[3] = [4]float64{0, 0, 0, 1}
	return a
}

// zooms returns pixdim[1:4] as nibabel's header checks fix them on load:
// negative sizes become positive and zero sizes become 1.
func (h *Header) zooms() [3]float64 {
	var z [3]float64
	for i := range z {
		z[i] = math.Abs(h.Pixdim[i+1])
		if z[i] == 0 {
			z[i] = 1
		}
	}
	return z
}

// QformAffine returns the affine held in the quaternion fields, whatever
// qform_code says, computed as nibabel's get_qform does: the quaternion's a
// is sqrt(1 - b² - c² - d²), taken as 0 when rounding of the stored b, c, d
// makes that slightly negative (by less than 3 machine epsilons of the
// header's float type) and an error when it is more negative; qfac is -1
// only when pixdim[0] is exactly -1 (nibabel sets any other value to 1; the
// NIfTI C library would take the sign of any negative pixdim[0]).
func (h *Header) QformAffine() (volume.Affine, error) {
	b, c, d := h.Quatern[0], h.Quatern[1], h.Quatern[2]
	eps := 0x1p-23 // float32
	if h.Version == 2 {
		eps = 0x1p-52
	}
	w2 := 1 - (b*b + c*c + d*d)
	w := 0.0
	switch {
	case w2 >= 0:
		w = math.Sqrt(w2)
	case w2 < -3*eps || math.IsNaN(w2):
		return volume.Affine{}, fmt.Errorf("the qform quaternion (b, c, d) = (%g, %g, %g) is not a unit quaternion: b²+c²+d² = %g > 1",
			b, c, d, 1-w2)
	}
	rot := quatToMat(w, b, c, d)
	z := h.zooms()
	if h.Pixdim[0] == -1 {
		z[2] = -z[2]
	}
	var a volume.Affine
	for r := 0; r < 3; r++ {
		for col := 0; col < 3; col++ {
			a[r][col] = rot[r][col] * z[col]
		}
		a[r][3] = h.QOffset[r]
	}
	a[3] = [4]float64{0, 0, 0, 1}
	return a, nil
}

// quatToMat is nibabel's quat2mat: the rotation of a quaternion, normalising
// one that is not of unit length.
func quatToMat(w, x, y, z float64) [3][3]float64 {
	n := w*w + x*x + y*y + z*z
	if n < 0x1p-52 {
		return [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	}
	s := 2 / n
	X, Y, Z := x*s, y*s, z*s
	wX, wY, wZ := w*X, w*Y, w*Z
	xX, xY, xZ := x*X, x*Y, x*Z
	yY, yZ, zZ := y*Y, y*Z, z*Z
	return [3][3]float64{
		{1 - (yY + zZ), xY - wZ, xZ + wY},
		{xY + wZ, 1 - (xX + zZ), yZ - wX},
		{xZ - wY, yZ + wX, 1 - (xX + yY)},
	}
}

// BaseAffine returns nibabel's fallback affine when neither transform is
// set (Analyze convention): voxel sizes from pixdim on the diagonal, x
// flipped, and the world origin at the centre of the image.
func (h *Header) BaseAffine() volume.Affine {
	shape := [3]float64{1, 1, 1}
	zoom := [3]float64{1, 1, 1}
	fixed := h.zooms()
	for i := 0; i < 3 && i < int(h.Dim[0]); i++ {
		shape[i] = float64(h.Dim[i+1])
		zoom[i] = fixed[i]
	}
	zoom[0] = -zoom[0]
	a := volume.Identity()
	for i := 0; i < 3; i++ {
		a[i][i] = zoom[i]
		a[i][3] = -(shape[i] - 1) / 2 * zoom[i]
	}
	return a
}

// qform holds the quaternion representation of an affine.
type qform struct {
	quatern [3]float64 // b, c, d
	offset  [3]float64
	zooms   [3]float64 // pixdim[1:4]
	qfac    float64    // pixdim[0]
}

// toQform computes the qform parameters of an affine as nibabel's set_qform
// does: voxel sizes are the column norms, qfac is -1 when the directions
// have a negative determinant (the third is then negated), and shears are
// stripped by taking the nearest rotation (the orthogonal polar factor) of
// the directions. The affine must be finite and non-singular.
func toQform(a volume.Affine) qform {
	q := qform{zooms: a.Spacing(), qfac: 1}
	var m [3][3]float64
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			m[r][c] = a[r][c] / q.zooms[c]
		}
		q.offset[r] = a[r][3]
	}
	if det3(m) < 0 {
		q.qfac = -1
		for r := 0; r < 3; r++ {
			m[r][2] = -m[r][2]
		}
	}
	_, x, y, z := matToQuat(polar(m))
	q.quatern = [3]float64{x, y, z}
	return q
}

// det3 is the determinant of a 3x3 matrix.
func det3(m [3][3]float64) float64 {
	return m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) -
		m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) +
		m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
}

// polar returns the orthogonal factor of the polar decomposition of m (the
// rotation nearest to m, what nibabel gets from an SVD) by Newton's
// iteration X ← (X + X⁻ᵀ)/2, which converges quadratically for a
// non-singular m.
func polar(m [3][3]float64) [3][3]float64 {
	x := m
	for it := 0; it < 100; it++ {
		inv := inverseTranspose(x)
		var next [3][3]float64
		diff := 0.0
		for r := 0; r < 3; r++ {
			for c := 0; c < 3; c++ {
				next[r][c] = (x[r][c] + inv[r][c]) / 2
				diff = math.Max(diff, math.Abs(next[r][c]-x[r][c]))
			}
		}
		x = next
		if diff < 1e-15 {
			break
		}
	}
	return x
}

// inverseTranspose returns (m⁻¹)ᵀ: the cofactor matrix over the determinant.
func inverseTranspose(m [3][3]float64) [3][3]float64 {
	det := det3(m)
	var c [3][3]float64
	for r := 0; r < 3; r++ {
		for k := 0; k < 3; k++ {
			r1, r2 := (r+1)%3, (r+2)%3
			k1, k2 := (k+1)%3, (k+2)%3
			c[r][k] = (m[r1][k1]*m[r2][k2] - m[r1][k2]*m[r2][k1]) / det
		}
	}
	return c
}

// matToQuat returns the unit quaternion (w ≥ 0) of a rotation matrix,
// choosing the numerically safest formula for its largest component
// (Shepperd's method). For a rotation it equals nibabel's mat2quat.
func matToQuat(m [3][3]float64) (w, x, y, z float64) {
	tr := m[0][0] + m[1][1] + m[2][2]
	switch {
	case tr > 0:
		s := 2 * math.Sqrt(tr+1)
		w, x, y, z = s/4, (m[2][1]-m[1][2])/s, (m[0][2]-m[2][0])/s, (m[1][0]-m[0][1])/s
	case m[0][0] > m[1][1] && m[0][0] > m[2][2]:
		s := 2 * math.Sqrt(1+m[0][0]-m[1][1]-m[2][2])
		w, x, y, z = (m[2][1]-m[1][2])/s, s/4, (m[0][1]+m[1][0])/s, (m[0][2]+m[2][0])/s
	case m[1][1] > m[2][2]:
		s := 2 * math.Sqrt(1+m[1][1]-m[0][0]-m[2][2])
		w, x, y, z = (m[0][2]-m[2][0])/s, (m[0][1]+m[1][0])/s, s/4, (m[1][2]+m[2][1])/s
	default:
		s := 2 * math.Sqrt(1+m[2][2]-m[0][0]-m[1][1])
		w, x, y, z = (m[1][0]-m[0][1])/s, (m[0][2]+m[2][0])/s, (m[1][2]+m[2][1])/s, s/4
	}
	if w < 0 {
		w, x, y, z = -w, -x, -y, -z
	}
	return w, x, y, z
}
