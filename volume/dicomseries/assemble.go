package dicomseries

import (
	"fmt"
	"math"
	"sort"

	"github.com/covseg/covseg/volume"
)

// Tolerances of the series geometry checks, in millimetres unless noted.
// Positions and cosines are decimal strings, often rounded to 3 to 6
// digits, so the checks allow that rounding and little more.
const (
	// cosineTol bounds how far direction cosines may be from unit length
	// and orthogonal, and how much they may differ between slices.
	cosineTol = 1e-3
	// spacingTol bounds how much PixelSpacing may differ between slices.
	spacingTol = 1e-4
	// gapRelTol and gapAbsTol bound the deviation of each gap between
	// consecutive slices from the series' mean step, and of each slice from
	// its place on the evenly spaced grid: gapRelTol·step + gapAbsTol.
	gapRelTol = 0.01
	gapAbsTol = 1e-3
	// dupTol: slices closer than this along the normal are duplicates.
	dupTol = 1e-3
	// tiltAbsTol and tiltRelTol bound the sideways drift of slice positions
	// away from the line along the slice normal through the first slice:
	// tiltAbsTol + tiltRelTol·extent (about 0.03° of tilt). A drift within
	// it moves no voxel by more than that distance.
	tiltAbsTol = 0.02
	tiltRelTol = 5e-4
	// maxSpacing is the largest voxel size accepted (1 m).
	maxSpacing = 1000
	// maxPosition is the largest coordinate accepted (100 m from the origin).
	maxPosition = 1e5
)

// sliceGeom is the geometry of one slice, as its header states it.
type sliceGeom struct {
	name       string     // the file, for messages
	ipp        [3]float64 // ImagePositionPatient (LPS mm): centre of the first pixel
	iop        [6]float64 // ImageOrientationPatient: row cosine, column cosine
	spacing    [2]float64 // PixelSpacing: between rows, between columns
	rows, cols int
	thickness  float64 // SliceThickness; only used for a single slice
}

// assemble checks that slices form one evenly spaced, untilted stack and
// returns their order along the slice normal (order[k] is the index in g of
// voxel plane k) and the voxel-to-RAS+ affine of the stack.
func assemble(g []sliceGeom) (order []int, aff volume.Affine, err error) {
	if len(g) == 0 {
		return nil, aff, fmt.Errorf("no slices")
	}
	if err := checkSlices(g); err != nil {
		return nil, aff, err
	}
	r, c, n, err := cosines(g[0])
	if err != nil {
		return nil, aff, err
	}
	pos := make([]float64, len(g))
	order = make([]int, len(g))
	for i := range g {
		pos[i] = dot(g[i].ipp, n)
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return pos[order[a]] < pos[order[b]] })

	var step float64
	if len(g) == 1 {
		step = g[0].thickness
		if !(step > 0 && step <= maxSpacing) {
			return nil, aff, fmt.Errorf("%s: single-slice series without a usable SliceThickness (0018,0050) (%g) for the third voxel size", g[0].name, step)
		}
	} else {
		if step, err = checkSpacing(g, order, pos); err != nil {
			return nil, aff, err
		}
		if err := checkTilt(g, order, n); err != nil {
			return nil, aff, err
		}
	}

	// DICOM: the centre of pixel (column i, row j) of a slice is
	// IPP + i·Δcol·r + j·Δrow·c, in LPS+ patient coordinates. PixelSpacing
	// lists the spacing between rows (Δrow) first.
	first := g[order[0]]
	dc, dr := first.spacing[1], first.spacing[0]
	for a := 0; a < 3; a++ {
		aff[a] = [4]float64{r[a] * dc, c[a] * dr, n[a] * step, first.ipp[a]}
	}
	aff[3] = [4]float64{0, 0, 0, 1}
	// DICOM's LPS+ becomes the volume package's RAS+ here, at the boundary.
	return order, volume.LPSToRAS(aff), nil
}

// checkSlices checks each slice's values and that all slices share rows,
// columns, orientation and pixel spacing.
func checkSlices(g []sliceGeom) error {
	f := g[0]
	for i := range g {
		s := &g[i]
		for _, v := range append(append(s.ipp[:], s.iop[:]...), s.spacing[:]...) {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxPosition {
				return fmt.Errorf("%s: geometry holds an unusable number (%g)", s.name, v)
			}
		}
		if !(s.spacing[0] > 0 && s.spacing[1] > 0 && s.spacing[0] <= maxSpacing && s.spacing[1] <= maxSpacing) {
			return fmt.Errorf("%s: PixelSpacing (0028,0030) %g\\%g mm is not a usable voxel size", s.name, s.spacing[0], s.spacing[1])
		}
		if err := (volume.Dims{s.cols, s.rows, len(g)}).Valid(); err != nil {
			return fmt.Errorf("%s: %d rows x %d columns x %d slices: %w", s.name, s.rows, s.cols, len(g), err)
		}
		if s.rows != f.rows || s.cols != f.cols {
			return fmt.Errorf("slices differ in size: %s is %dx%d (rows x columns), %s is %dx%d", f.name, f.rows, f.cols, s.name, s.rows, s.cols)
		}
		for k := range s.iop {
			if math.Abs(s.iop[k]-f.iop[k]) > cosineTol {
				return fmt.Errorf("slices differ in orientation: ImageOrientationPatient is %v in %s but %v in %s", f.iop, f.name, s.iop, s.name)
			}
		}
		for k := range s.spacing {
			if math.Abs(s.spacing[k]-f.spacing[k]) > spacingTol {
				return fmt.Errorf("slices differ in PixelSpacing: %v mm in %s but %v mm in %s", f.spacing, f.name, s.spacing, s.name)
			}
		}
	}
	return nil
}

// cosines returns the unit row and column cosines of a slice and the slice
// normal r × c (which makes r, c, n a right-handed frame).
func cosines(s sliceGeom) (r, c, n [3]float64, err error) {
	copy(r[:], s.iop[:3])
	copy(c[:], s.iop[3:])
	lr, lc := norm(r), norm(c)
	if math.Abs(lr-1) > cosineTol || math.Abs(lc-1) > cosineTol {
		return r, c, n, fmt.Errorf("%s: ImageOrientationPatient (0020,0037) %v does not hold two unit vectors (lengths %.4f, %.4f)", s.name, s.iop, lr, lc)
	}
	r, c = scale(r, 1/lr), scale(c, 1/lc)
	if d := dot(r, c); math.Abs(d) > cosineTol {
		return r, c, n, fmt.Errorf("%s: ImageOrientationPatient (0020,0037) %v: row and column directions are not perpendicular (cosine %.4f)", s.name, s.iop, d)
	}
	n = cross(r, c)
	return r, c, scale(n, 1/norm(n)), nil
}

// checkSpacing checks that sorted slice positions are distinct and evenly
// spaced, and returns the step between them.
func checkSpacing(g []sliceGeom, order []int, pos []float64) (float64, error) {
	last := len(order) - 1
	for k := 0; k < last; k++ {
		a, b := order[k], order[k+1]
		if pos[b]-pos[a] < dupTol {
			return 0, fmt.Errorf("duplicate slice position %.3f mm along the slice normal: %s and %s (two copies of a slice, or two series with one SeriesInstanceUID)", pos[a], g[a].name, g[b].name)
		}
	}
	step := (pos[order[last]] - pos[order[0]]) / float64(last)
	if step > maxSpacing {
		return 0, fmt.Errorf("slices are %.1f mm apart on average, more than %d mm", step, maxSpacing)
	}
	// Compare each gap with the median gap, so that the gap reported is the
	// one that breaks the pattern (a missing slice shifts the mean).
	gaps := make([]float64, last)
	for k := range gaps {
		gaps[k] = pos[order[k+1]] - pos[order[k]]
	}
	sorted := append([]float64(nil), gaps...)
	sort.Float64s(sorted)
	med := sorted[last/2]
	tol := gapRelTol*med + gapAbsTol
	for k, gap := range gaps {
		if math.Abs(gap-med) > tol {
			a, b := order[k], order[k+1]
			return 0, fmt.Errorf("uneven slice spacing: gap of %.4f mm between slice %d (%s) and slice %d (%s), while the series mostly steps %.4f mm (tolerance %.4f mm; a missing or extra slice?)", gap, k, g[a].name, k+1, g[b].name, med, tol)
		}
	}
	// Gaps each within tolerance can still drift; bound the positions too.
	for k, i := range order {
		if d := pos[i] - (pos[order[0]] + float64(k)*step); math.Abs(d) > tol {
			return 0, fmt.Errorf("uneven slice spacing: slice %d (%s) lies %.4f mm off the evenly spaced grid of step %.4f mm (tolerance %.4f mm)", k, g[i].name, d, step, tol)
		}
	}
	return step, nil
}

// checkTilt refuses stacks whose slice positions drift sideways, i.e. do not
// advance along the slice normal: CT acquired with a tilted gantry (or a
// stack sheared otherwise). Its voxels are not on a rectangular grid and an
// affine would misplace them.
func checkTilt(g []sliceGeom, order []int, n [3]float64) error {
	p0 := g[order[0]].ipp
	extent := math.Abs(dot(sub(g[order[len(order)-1]].ipp, p0), n))
	tol := tiltAbsTol + tiltRelTol*extent
	for k, i := range order {
		v := sub(g[i].ipp, p0)
		side := sub(v, scale(n, dot(v, n)))
		if d := norm(side); d > tol {
			along := math.Abs(dot(v, n))
			return fmt.Errorf("gantry tilt: slice %d (%s) lies %.3f mm sideways of the slice normal through the first slice (%s) after %.3f mm along it, a tilt of %.2f°; tilted series are refused (convert with dcm2niix, which corrects gantry tilt, and read its NIfTI)", k, g[i].name, d, g[order[0]].name, along, math.Atan2(d, along)*180/math.Pi)
		}
	}
	return nil
}

func dot(a, b [3]float64) float64 { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func norm(a [3]float64) float64   { return math.Sqrt(dot(a, a)) }
func sub(a, b [3]float64) [3]float64 {
	return [3]float64{a[0] - b[0], a[1] - b[1], a[2] - b[2]}
}
func scale(a [3]float64, s float64) [3]float64 {
	return [3]float64{a[0] * s, a[1] * s, a[2] * s}
}
func cross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}
