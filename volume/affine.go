package volume

import (
	"fmt"
	"math"
)

// Affine is a 4x4 voxel-to-world matrix in RAS+ millimetres, row major:
// world = A · (i, j, k, 1).
type Affine [4][4]float64

// Identity returns the identity affine (1 mm voxels at the origin, RAS).
func Identity() Affine {
	return Affine{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}
}

// Diag returns an axis-aligned RAS affine with the given spacing and origin.
func Diag(spacing [3]float64, origin [3]float64) Affine {
	return Affine{
		{spacing[0], 0, 0, origin[0]},
		{0, spacing[1], 0, origin[1]},
		{0, 0, spacing[2], origin[2]},
		{0, 0, 0, 1},
	}
}

// Apply maps a voxel position (continuous indices) to world millimetres.
func (a Affine) Apply(p [3]float64) [3]float64 {
	var w [3]float64
	for r := 0; r < 3; r++ {
		w[r] = a[r][0]*p[0] + a[r][1]*p[1] + a[r][2]*p[2] + a[r][3]
	}
	return w
}

// Mul returns a·b.
func (a Affine) Mul(b Affine) Affine {
	var c Affine
	for r := 0; r < 4; r++ {
		for col := 0; col < 4; col++ {
			var s float64
			for k := 0; k < 4; k++ {
				s += a[r][k] * b[k][col]
			}
			c[r][col] = s
		}
	}
	return c
}

// Inverse returns the inverse of an affine whose last row is (0, 0, 0, 1).
func (a Affine) Inverse() (Affine, error) {
	m := [3][3]float64{}
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			m[r][c] = a[r][c]
		}
	}
	det := m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) -
		m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) +
		m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
	if det == 0 || math.IsNaN(det) || math.IsInf(det, 0) {
		return Affine{}, fmt.Errorf("affine is singular (determinant %g)", det)
	}
	var inv [3][3]float64
	inv[0][0] = (m[1][1]*m[2][2] - m[1][2]*m[2][1]) / det
	inv[0][1] = (m[0][2]*m[2][1] - m[0][1]*m[2][2]) / det
	inv[0][2] = (m[0][1]*m[1][2] - m[0][2]*m[1][1]) / det
	inv[1][0] = (m[1][2]*m[2][0] - m[1][0]*m[2][2]) / det
	inv[1][1] = (m[0][0]*m[2][2] - m[0][2]*m[2][0]) / det
	inv[1][2] = (m[0][2]*m[1][0] - m[0][0]*m[1][2]) / det
	inv[2][0] = (m[1][0]*m[2][1] - m[1][1]*m[2][0]) / det
	inv[2][1] = (m[0][1]*m[2][0] - m[0][0]*m[2][1]) / det
	inv[2][2] = (m[0][0]*m[1][1] - m[0][1]*m[1][0]) / det
	var out Affine
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			out[r][c] = inv[r][c]
		}
		out[r][3] = -(inv[r][0]*a[0][3] + inv[r][1]*a[1][3] + inv[r][2]*a[2][3])
	}
	out[3] = [4]float64{0, 0, 0, 1}
	return out, nil
}

// Spacing returns the length of each column of the 3x3 part: the voxel size
// in millimetres along i, j and k (what nibabel's header zooms hold).
func (a Affine) Spacing() [3]float64 {
	var s [3]float64
	for c := 0; c < 3; c++ {
		s[c] = math.Sqrt(a[0][c]*a[0][c] + a[1][c]*a[1][c] + a[2][c]*a[2][c])
	}
	return s
}

// Equal reports whether every entry differs by at most tol. An entry that
// is NaN, or infinite in both, never counts as equal.
func (a Affine) Equal(b Affine, tol float64) bool {
	for r := 0; r < 4; r++ {
		for c := 0; c < 4; c++ {
			if !(math.Abs(a[r][c]-b[r][c]) <= tol) {
				return false
			}
		}
	}
	return true
}

// LPSToRAS converts an affine that maps to DICOM LPS+ world coordinates into
// one mapping to RAS+ (negate world x and y). It is its own inverse.
func LPSToRAS(a Affine) Affine {
	for c := 0; c < 4; c++ {
		a[0][c], a[1][c] = -a[0][c], -a[1][c]
	}
	return a
}

// AxCodes returns, for each voxel axis, the world direction it points to most
// ("R"/"L", "A"/"P", "S"/"I"), as nibabel's aff2axcodes does (see Ornt). An
// axis whose dominant direction is shared with an earlier axis gets the best
// free one, so the result is always a permutation; for a singular affine,
// where nibabel gives None, see Ornt.
func (a Affine) AxCodes() string {
	pos := [3]byte{'R', 'A', 'S'}
	neg := [3]byte{'L', 'P', 'I'}
	perm, flip := a.Ornt()
	out := make([]byte, 3)
	for ax := 0; ax < 3; ax++ {
		if flip[ax] {
			out[ax] = neg[perm[ax]]
		} else {
			out[ax] = pos[perm[ax]]
		}
	}
	return string(out)
}

// Ornt returns, for each voxel axis, the world axis (0 = x, 1 = y, 2 = z) it
// is closest to and whether it points the negative way. It follows nibabel's
// io_orientation exactly: the 3x3 part, columns scaled to unit length, is
// replaced by its closest orthogonal matrix (polar decomposition through the
// SVD, singular values below max·3·eps dropped), and then, voxel axis by voxel
// axis in order, the world axis with the largest |component| is taken and
// removed from further choice. Oblique and sheared affines thus get
// nibabel's answer, and the world axes always form a permutation.
//
// Where nibabel gives up (a singular affine, whose dropped voxel axes it
// marks NaN), Ornt instead gives each such axis the first world axis still
// free, pointing the positive way, so that reorientation stays possible.
func (a Affine) Ornt() (worldAxis [3]int, negative [3]bool) {
	r := closestRotation(a)
	usedWorld := [3]bool{}
	assigned := [3]bool{}
	for ax := 0; ax < 3; ax++ {
		best := -1
		for w := 0; w < 3; w++ {
			// nibabel zeroes the row of a used world axis; skipping it is
			// the same, as is skipping entries within allclose's 1e-8.
			if usedWorld[w] || math.Abs(r[w][ax]) <= 1e-8 {
				continue
			}
			if best < 0 || math.Abs(r[w][ax]) > math.Abs(r[best][ax]) {
				best = w
			}
		}
		// No candidate: nibabel's np.allclose(col, 0) (atol 1e-8) holds.
		if best < 0 {
			continue
		}
		usedWorld[best], assigned[ax] = true, true
		worldAxis[ax] = best
		negative[ax] = r[best][ax] < 0
	}
	for ax := 0; ax < 3; ax++ {
		if assigned[ax] {
			continue
		}
		for w := 0; w < 3; w++ {
			if !usedWorld[w] {
				usedWorld[w] = true
				worldAxis[ax], negative[ax] = w, false
				break
			}
		}
	}
	return worldAxis, negative
}

// closestRotation returns the orthogonal factor of the polar decomposition
// of the affine's 3x3 part after its columns are scaled to unit length
// (zero columns left as they are), restricted to the numerical rank: the R
// of nibabel's io_orientation. The SVD is a one-sided Jacobi (Hestenes)
// iteration, accurate for small singular values too.
func closestRotation(a Affine) [3][3]float64 {
	var u [3][3]float64 // u[row][col], columns rotated in place
	sp := a.Spacing()
	for c := 0; c < 3; c++ {
		z := sp[c]
		if z == 0 {
			z = 1
		}
		for r := 0; r < 3; r++ {
			u[r][c] = a[r][c] / z
		}
	}
	v := [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	const eps = 0x1p-52
	for sweep := 0; sweep < 60; sweep++ {
		rotated := false
		for p := 0; p < 2; p++ {
			for q := p + 1; q < 3; q++ {
				var alpha, beta, gamma float64
				for r := 0; r < 3; r++ {
					alpha += u[r][p] * u[r][p]
					beta += u[r][q] * u[r][q]
					gamma += u[r][p] * u[r][q]
				}
				if gamma == 0 || math.Abs(gamma) <= eps*math.Sqrt(alpha*beta) {
					continue
				}
				rotated = true
				zeta := (beta - alpha) / (2 * gamma)
				t := math.Copysign(1, zeta) / (math.Abs(zeta) + math.Sqrt(1+zeta*zeta))
				c := 1 / math.Sqrt(1+t*t)
				s := c * t
				for r := 0; r < 3; r++ {
					up, uq := u[r][p], u[r][q]
					u[r][p], u[r][q] = c*up-s*uq, s*up+c*uq
					vp, vq := v[r][p], v[r][q]
					v[r][p], v[r][q] = c*vp-s*vq, s*vp+c*vq
				}
			}
		}
		if !rotated {
			break
		}
	}
	var sigma [3]float64
	smax := 0.0
	for c := 0; c < 3; c++ {
		sigma[c] = math.Sqrt(u[0][c]*u[0][c] + u[1][c]*u[1][c] + u[2][c]*u[2][c])
		smax = math.Max(smax, sigma[c])
	}
	tol := smax * 3 * eps
	var out [3][3]float64
	for i := 0; i < 3; i++ {
		if !(sigma[i] > tol) {
			continue
		}
		for r := 0; r < 3; r++ {
			pr := u[r][i] / sigma[i]
			for c := 0; c < 3; c++ {
				out[r][c] += pr * v[c][i]
			}
		}
	}
	return out
}
