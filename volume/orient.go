package volume

import (
	"fmt"
	"strings"
)

// Reorientation maps a voxel grid onto another by permuting and flipping its
// axes only: no voxel value changes, every voxel keeps its world position, and
// the new affine is the old one times the permutation-and-flip matrix (as
// nibabel's as_reoriented computes it). Plan one with PlanCanonical or
// PlanReorient; Apply takes data from the source grid to the destination
// grid, and Undo takes data on the destination grid (a prediction made in
// canonical space, say) back onto the source grid, bit for bit.
type Reorientation struct {
	// SrcDims and SrcAffine describe the grid before, DstDims and DstAffine
	// the grid after.
	SrcDims   Dims
	SrcAffine Affine
	DstDims   Dims
	DstAffine Affine
	// Axis[b] is the source axis that destination axis b runs along, and
	// Flip[b] says whether it runs the opposite way: destination index x
	// along b is source index SrcDims[Axis[b]]-1-x when flipped, x otherwise.
	Axis [3]int
	Flip [3]bool
}

// PlanCanonical plans the reorientation of a grid to the closest canonical
// RAS+ orientation, as nibabel's as_closest_canonical does: destination axis
// b is the source axis whose direction is closest to world axis b (see
// Affine.Ornt), flipped where it points the negative way. For a grid that is
// already RAS+ the plan is the identity.
func PlanCanonical(d Dims, a Affine) Reorientation {
	world, neg := a.Ornt()
	var axis [3]int
	var flip [3]bool
	for src := 0; src < 3; src++ {
		axis[world[src]] = src
		flip[world[src]] = neg[src]
	}
	return newReorientation(d, a, axis, flip)
}

// PlanReorient plans the reorientation of a grid so that its axes point as
// the three-letter axis codes say ("RAS", "LPS", "PIR", ...: one of R/L, one
// of A/P and one of S/I, in any order), as nibabel's
// as_reoriented(ornt_transform(io_orientation(affine), axcodes2ornt(codes)))
// does. For oblique affines the result's AxCodes can differ from codes, as in
// nibabel, since the closest directions are chosen greedily.
func PlanReorient(d Dims, a Affine, codes string) (Reorientation, error) {
	tWorld, tNeg, err := parseAxCodes(codes)
	if err != nil {
		return Reorientation{}, err
	}
	world, neg := a.Ornt()
	var axis [3]int
	var flip [3]bool
	for b := 0; b < 3; b++ {
		for src := 0; src < 3; src++ {
			if world[src] == tWorld[b] {
				axis[b] = src
				flip[b] = neg[src] != tNeg[b]
			}
		}
	}
	return newReorientation(d, a, axis, flip), nil
}

// parseAxCodes reads axis codes such as "LPS" into a world axis and a sign
// per voxel axis.
func parseAxCodes(codes string) (world [3]int, neg [3]bool, err error) {
	if len(codes) != 3 {
		return world, neg, fmt.Errorf("axis codes %q: want three letters such as RAS or LPS", codes)
	}
	seen := [3]bool{}
	for i, ch := range strings.ToUpper(codes) {
		idx := strings.IndexRune("RASLPI", ch)
		if idx < 0 {
			return world, neg, fmt.Errorf("axis codes %q: %q is not one of R, L, A, P, S, I", codes, ch)
		}
		w := idx % 3
		if seen[w] {
			return world, neg, fmt.Errorf("axis codes %q: world axis %c/%c named twice", codes, "RAS"[w], "LPI"[w])
		}
		seen[w] = true
		world[i], neg[i] = w, idx >= 3
	}
	return world, neg, nil
}

// newReorientation fills in the destination grid of a permutation and flip.
func newReorientation(d Dims, a Affine, axis [3]int, flip [3]bool) Reorientation {
	r := Reorientation{SrcDims: d, SrcAffine: a, Axis: axis, Flip: flip}
	for b := 0; b < 3; b++ {
		r.DstDims[b] = d[axis[b]]
	}
	r.DstAffine = a.Mul(r.dstToSrc())
	return r
}

// dstToSrc is the matrix taking destination voxel indices to source voxel
// indices: nibabel's inv_ornt_aff.
func (r Reorientation) dstToSrc() Affine {
	var m Affine
	m[3][3] = 1
	for b := 0; b < 3; b++ {
		src := r.Axis[b]
		if r.Flip[b] {
			m[src][b] = -1
			m[src][3] = float64(r.SrcDims[src] - 1)
		} else {
			m[src][b] = 1
		}
	}
	return m
}

// IsIdentity reports whether the plan leaves the grid as it is.
func (r Reorientation) IsIdentity() bool {
	return r.Axis == [3]int{0, 1, 2} && r.Flip == [3]bool{}
}

// Inverse returns the plan that takes the destination grid back to the
// source grid; its DstAffine is exactly SrcAffine.
func (r Reorientation) Inverse() Reorientation {
	inv := Reorientation{SrcDims: r.DstDims, SrcAffine: r.DstAffine, DstDims: r.SrcDims, DstAffine: r.SrcAffine}
	for b := 0; b < 3; b++ {
		inv.Axis[r.Axis[b]] = b
		inv.Flip[r.Axis[b]] = r.Flip[b]
	}
	return inv
}

// Apply reorients a volume lying on the source grid (SrcDims, and an affine
// within 1e-6 of SrcAffine) onto the destination grid; the result's affine is
// exactly DstAffine.
func (r Reorientation) Apply(v *Volume) (*Volume, error) {
	if err := onGrid(v.Dims, v.Affine, len(v.Data), r.SrcDims, r.SrcAffine); err != nil {
		return nil, fmt.Errorf("reorient: %w", err)
	}
	return r.apply(v), nil
}

// apply is Apply without the grid check, for volumes whose own grid
// planned r (whatever their affine holds, NaN included).
func (r Reorientation) apply(v *Volume) *Volume {
	return &Volume{Dims: r.DstDims, Affine: r.DstAffine, Data: permute(v.Data, r)}
}

// Undo puts a volume lying on the destination grid back onto the source grid:
// the result has exactly SrcDims and SrcAffine, and Undo(Apply(v)) equals v
// bit for bit.
func (r Reorientation) Undo(v *Volume) (*Volume, error) {
	return r.Inverse().Apply(v)
}

// ApplyLabel is Apply for a label map.
func (r Reorientation) ApplyLabel(l *Label) (*Label, error) {
	if err := onGrid(l.Dims, l.Affine, len(l.Data), r.SrcDims, r.SrcAffine); err != nil {
		return nil, fmt.Errorf("reorient: %w", err)
	}
	return r.applyLabel(l), nil
}

// applyLabel is ApplyLabel without the grid check.
func (r Reorientation) applyLabel(l *Label) *Label {
	return &Label{Dims: r.DstDims, Affine: r.DstAffine, Data: permute(l.Data, r)}
}

// UndoLabel is Undo for a label map.
func (r Reorientation) UndoLabel(l *Label) (*Label, error) {
	return r.Inverse().ApplyLabel(l)
}

// onGrid checks that n voxels with dims d and affine a lie on the grid
// (want, wantA). The affine tolerance only forgives rounding.
func onGrid(d Dims, a Affine, n int, want Dims, wantA Affine) error {
	if d != want {
		return fmt.Errorf("dims %v, want %v", d, want)
	}
	if n != d.Len() {
		return fmt.Errorf("%d voxels for dims %v", n, d)
	}
	if !a.Equal(wantA, 1e-6) {
		return fmt.Errorf("affine %v differs from the planned grid's %v", a, wantA)
	}
	return nil
}

// permute copies data into the destination order of r. Each destination row
// is a strided walk through the source; rows run in parallel.
func permute[T any](src []T, r Reorientation) []T {
	sd, dd := r.SrcDims, r.DstDims
	srcStride := [3]int{1, sd[0], sd[0] * sd[1]}
	var step [3]int
	start := 0
	for b := 0; b < 3; b++ {
		a := r.Axis[b]
		step[b] = srcStride[a]
		if r.Flip[b] {
			step[b] = -step[b]
			start += (sd[a] - 1) * srcStride[a]
		}
	}
	dst := make([]T, len(src))
	nx := dd[0]
	parallelFor(dd[1]*dd[2], rowGrain(nx), simple(func(lo, hi int) {
		for row := lo; row < hi; row++ {
			j, k := row%dd[1], row/dd[1]
			s := start + j*step[1] + k*step[2]
			out := dst[row*nx : (row+1)*nx]
			if step[0] == 1 {
				copy(out, src[s:s+nx])
				continue
			}
			for i := range out {
				out[i] = src[s]
				s += step[0]
			}
		}
	}))
	return dst
}

// Canonical returns a copy of v reoriented to the closest canonical RAS+ by
// permuting and flipping axes only (nibabel's as_closest_canonical): the same
// voxel values, the affine times the permutation-and-flip matrix, so every
// voxel keeps its world position. It always returns a new volume. Keep
// PlanCanonical's plan to map results back onto v's grid exactly. v must be
// well formed (len(Data) == Dims.Len(), as every constructor and reader
// makes it); Canonical panics otherwise.
func (v *Volume) Canonical() *Volume {
	if len(v.Data) != v.Dims.Len() {
		panic(fmt.Sprintf("volume: Canonical of a malformed volume: %d voxels for dims %v", len(v.Data), v.Dims))
	}
	return PlanCanonical(v.Dims, v.Affine).apply(v)
}

// Canonical is Volume.Canonical for a label map.
func (l *Label) Canonical() *Label {
	if len(l.Data) != l.Dims.Len() {
		panic(fmt.Sprintf("volume: Canonical of a malformed label map: %d voxels for dims %v", len(l.Data), l.Dims))
	}
	return PlanCanonical(l.Dims, l.Affine).applyLabel(l)
}

// Reorient returns a copy of v whose axes point as the axis codes say (see
// PlanReorient), permuting and flipping axes only, with the affine updated so
// every voxel keeps its world position.
func (v *Volume) Reorient(codes string) (*Volume, error) {
	r, err := PlanReorient(v.Dims, v.Affine, codes)
	if err != nil {
		return nil, err
	}
	if err := checkVolume(v); err != nil {
		return nil, fmt.Errorf("reorient: %w", err)
	}
	return r.apply(v), nil
}

// Reorient is Volume.Reorient for a label map.
func (l *Label) Reorient(codes string) (*Label, error) {
	r, err := PlanReorient(l.Dims, l.Affine, codes)
	if err != nil {
		return nil, err
	}
	if err := checkLabel(l); err != nil {
		return nil, fmt.Errorf("reorient: %w", err)
	}
	return r.applyLabel(l), nil
}

// PlanFlip plans the reversal of voxel axis ax (0, 1 or 2): index x becomes
// dims[ax]-1-x, the affine's column ax is negated and its origin moves to the
// old last voxel along ax, so every voxel keeps its world position.
func PlanFlip(d Dims, a Affine, ax int) (Reorientation, error) {
	if ax < 0 || ax > 2 {
		return Reorientation{}, fmt.Errorf("flip: axis %d is not 0, 1 or 2", ax)
	}
	var flip [3]bool
	flip[ax] = true
	return newReorientation(d, a, [3]int{0, 1, 2}, flip), nil
}

// Flip returns a copy of v reversed along voxel axis ax (see PlanFlip).
func (v *Volume) Flip(ax int) (*Volume, error) {
	r, err := PlanFlip(v.Dims, v.Affine, ax)
	if err != nil {
		return nil, err
	}
	if err := checkVolume(v); err != nil {
		return nil, fmt.Errorf("flip: %w", err)
	}
	return r.apply(v), nil
}

// Flip is Volume.Flip for a label map.
func (l *Label) Flip(ax int) (*Label, error) {
	r, err := PlanFlip(l.Dims, l.Affine, ax)
	if err != nil {
		return nil, err
	}
	if err := checkLabel(l); err != nil {
		return nil, fmt.Errorf("flip: %w", err)
	}
	return r.applyLabel(l), nil
}
