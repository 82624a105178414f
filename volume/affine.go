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

// Equal reports whether every entry differs by at most tol.
func (a Affine) Equal(b Affine, tol float64) bool {
	for r := 0; r < 4; r++ {
		for c := 0; c < 4; c++ {
			if math.Abs(a[r][c]-b[r][c]) > tol {
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
// ("R"/"L", "A"/"P", "S"/"I"), as nibabel's aff2axcodes does. An axis whose
// dominant direction is shared with an earlier axis still gets the best free
// one, so the result is always a permutation.
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
// is closest to and whether it points the negative way. Like nibabel's
// io_orientation it picks the largest remaining |component| greedily, so the
// world axes form a permutation even for oblique affines.
func (a Affine) Ornt() (worldAxis [3]int, negative [3]bool) {
	// Normalise columns so that spacing does not bias the choice.
	var m [3][3]float64
	sp := a.Spacing()
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			if sp[c] > 0 {
				m[r][c] = a[r][c] / sp[c]
			}
		}
	}
	usedRow := [3]bool{}
	usedCol := [3]bool{}
	for n := 0; n < 3; n++ {
		best, br, bc := -1.0, 0, 0
		for r := 0; r < 3; r++ {
			if usedRow[r] {
				continue
			}
			for c := 0; c < 3; c++ {
				if usedCol[c] {
					continue
				}
				if v := math.Abs(m[r][c]); v > best {
					best, br, bc = v, r, c
				}
			}
		}
		usedRow[br], usedCol[bc] = true, true
		worldAxis[bc] = br
		negative[bc] = m[br][bc] < 0
	}
	return worldAxis, negative
}
