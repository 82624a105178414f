package volume

import (
	"errors"
	"fmt"
	"math"
)

// Interp selects how a value between voxel centres is computed.
type Interp int

const (
	// Linear is trilinear interpolation between the eight nearest voxel
	// centres, for images and probabilities.
	Linear Interp = iota
	// Nearest takes the voxel whose centre is nearest, for label maps: it
	// never invents a value.
	Nearest
)

// String returns "linear" or "nearest".
func (in Interp) String() string {
	switch in {
	case Linear:
		return "linear"
	case Nearest:
		return "nearest"
	}
	return fmt.Sprintf("Interp(%d)", int(in))
}

// Coordinates computed through world space carry rounding error of about
// 1e-13 voxels; within snapTol of a whole voxel a coordinate counts as
// exactly on it (so resampling onto the same grid is the identity, bit for
// bit) and within snapTol of the field of view's edge as inside.
const snapTol = 1e-7

// tap says how one output index along one axis reads its source axis:
// value = s[i0] + w·(s[i1] − s[i0]), or fill when !in.
type tap struct {
	i0, i1 int32
	w      float32
	in     bool
}

// axisLinear places continuous source coordinate c on an axis of n voxels
// for linear sampling: value = s[i0] + w·(s[i0+1] − s[i0]), just s[i0] when
// w is 0. Inside the field of view [−0.5, n−0.5] the coordinate is clamped
// to [0, n−1] (the border voxel's value extends to the edge, as PyTorch's
// align_corners=False does) and snapped to a whole voxel within snapTol;
// outside (or NaN), ok is false.
func axisLinear(c float64, n int) (i0 int, w float32, ok bool) {
	if !(c >= -0.5-snapTol && c <= float64(n)-0.5+snapTol) {
		return 0, 0, false
	}
	if c <= 0 {
		return 0, 0, true
	}
	if c >= float64(n-1) {
		return n - 1, 0, true
	}
	i0 = int(c) // c > 0: truncation is floor
	f := c - float64(i0)
	switch {
	case f <= snapTol:
		return i0, 0, true
	case f >= 1-snapTol:
		return i0 + 1, 0, true
	}
	return i0, float32(f), true
}

// axisNearest places c for nearest sampling: the voxel whose centre is
// nearest, ties going up (floor(c + 0.5)), clamped to [0, n−1] inside the
// field of view; outside (or NaN), ok is false.
func axisNearest(c float64, n int) (i int, ok bool) {
	if !(c >= -0.5-snapTol && c <= float64(n)-0.5+snapTol) {
		return 0, false
	}
	// c + 0.5 ≥ −snapTol here, where truncation and floor agree after the
	// clamp to 0.
	return min(max(int(c+0.5), 0), n-1), true
}

// linearTap is axisLinear as a tap.
func linearTap(c float64, n int) tap {
	i0, w, ok := axisLinear(c, n)
	i1 := i0
	if w != 0 {
		i1++
	}
	return tap{i0: int32(i0), i1: int32(i1), w: w, in: ok}
}

// nearestTap is axisNearest as a tap.
func nearestTap(c float64, n int) tap {
	i, ok := axisNearest(c, n)
	return tap{i0: int32(i), i1: int32(i), in: ok}
}

// resizeTaps returns the taps of a resize from in to out voxels with the
// voxel-centre convention src = (dst + 0.5)·in/out − 0.5. Linear taps equal
// PyTorch's trilinear align_corners=False, nearest taps its "nearest-exact"
// mode; the index arithmetic is exact integer arithmetic where it can be.
func resizeTaps(in, out int, interp Interp) []tap {
	t := make([]tap, out)
	for d := range t {
		if interp == Nearest {
			// floor((d + 0.5)·in/out) in integers; uint64 holds the product
			// for any axis a valid Dims allows (< 2^32 · 2^31).
			i := min(int(uint64(2*d+1)*uint64(in)/uint64(2*out)), in-1)
			t[d] = tap{i0: int32(i), i1: int32(i), in: true}
			continue
		}
		t[d] = linearTap((float64(2*d+1)*float64(in)-float64(out))/float64(2*out), in)
	}
	return t
}

// ResizeAffine returns the affine of a grid of dims d with affine a resized
// to dims to (what ResizeTo gives): along each axis the spacing becomes
// old·in/out and the origin moves to where the new first voxel centre lies,
// old index (in/out − 1)/2, so the field of view (the outer faces of the
// border voxels) stays where it was.
func ResizeAffine(d Dims, a Affine, to Dims) Affine {
	t := Identity()
	for ax := 0; ax < 3; ax++ {
		t[ax][ax] = float64(d[ax]) / float64(to[ax])
		t[ax][3] = float64(d[ax]-to[ax]) / float64(2*to[ax])
	}
	return a.Mul(t)
}

// ResizeTo returns v resized to dims d over the same field of view (the
// whole-volume resize of the paper: 20x224x224 and back). Voxel centres
// follow PyTorch's align_corners=False: output index x reads source
// coordinate (x + 0.5)·in/out − 0.5, clamped to the border voxels. Linear
// matches F.interpolate(mode="trilinear"), Nearest F.interpolate(
// mode="nearest-exact"). The affine becomes ResizeAffine(v.Dims, v.Affine, d):
// spacing old·in/out per axis and the origin shifted by the half-voxel terms,
// so every output voxel's world position is that of the source coordinate it
// was sampled at.
func (v *Volume) ResizeTo(d Dims, interp Interp) (*Volume, error) {
	out, err := ResizeChannels([]*Volume{v}, d, interp)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ResizeTo is Volume.ResizeTo for a label map, always nearest.
func (l *Label) ResizeTo(d Dims) (*Label, error) {
	if err := checkLabel(l); err != nil {
		return nil, fmt.Errorf("resize: %w", err)
	}
	if err := d.Valid(); err != nil {
		return nil, fmt.Errorf("resize to %v: %w", d, err)
	}
	out := &Label{Dims: d, Affine: ResizeAffine(l.Dims, l.Affine, d), Data: make([]uint8, d.Len())}
	tx, ty, tz := resizeTaps(l.Dims[0], d[0], Nearest), resizeTaps(l.Dims[1], d[1], Nearest), resizeTaps(l.Dims[2], d[2], Nearest)
	separableNearest([][]uint8{out.Data}, [][]uint8{l.Data}, l.Dims, d, tx, ty, tz, 0)
	return out, nil
}

// ResizeChannels resizes several channels that share one grid (the class
// probabilities of a prediction, say) as ResizeTo does, computing the
// sampling positions once for all of them. The result has one volume per
// channel, in order.
func ResizeChannels(chs []*Volume, d Dims, interp Interp) ([]*Volume, error) {
	if err := checkChannels(chs); err != nil {
		return nil, fmt.Errorf("resize: %w", err)
	}
	if err := d.Valid(); err != nil {
		return nil, fmt.Errorf("resize to %v: %w", d, err)
	}
	sd := chs[0].Dims
	out, dst, src := newChannels(chs, d, ResizeAffine(sd, chs[0].Affine, d))
	tx, ty, tz := resizeTaps(sd[0], d[0], interp), resizeTaps(sd[1], d[1], interp), resizeTaps(sd[2], d[2], interp)
	switch interp {
	case Linear:
		separableLinear(dst, src, sd, d, tx, ty, tz, 0)
	case Nearest:
		separableNearest(dst, src, sd, d, tx, ty, tz, 0)
	default:
		return nil, fmt.Errorf("resize: unknown interpolation %v", interp)
	}
	return out, nil
}

// SpacingDims returns the dims a grid takes when resampled to the given
// voxel spacing (mm, along i, j, k) over the same field of view: round(n ·
// old/new) per axis, at least 1, as nnU-Net computes them.
func SpacingDims(d Dims, a Affine, spacing [3]float64) (Dims, error) {
	old := a.Spacing()
	var out Dims
	for ax := 0; ax < 3; ax++ {
		if !(spacing[ax] > 0) || math.IsInf(spacing[ax], 0) {
			return out, fmt.Errorf("target spacing %v: each value must be positive and finite", spacing)
		}
		n := math.Round(float64(d[ax]) * old[ax] / spacing[ax])
		if !(n <= MaxVoxels) {
			return out, fmt.Errorf("target spacing %v from %v: axis %d would hold %g voxels", spacing, old, ax, n)
		}
		out[ax] = max(1, int(n))
	}
	if err := out.Valid(); err != nil {
		return out, fmt.Errorf("target spacing %v from %v: %w", spacing, old, err)
	}
	return out, nil
}

// ResampleToSpacing resizes v (see ResizeTo) to SpacingDims(v.Dims,
// v.Affine, spacing): the field of view is kept, so the actual spacing,
// old·in/out, is the target to within half a voxel over the whole extent
// (exactly the target where the extent divides evenly); the affine says the
// actual spacing.
func (v *Volume) ResampleToSpacing(spacing [3]float64, interp Interp) (*Volume, error) {
	d, err := SpacingDims(v.Dims, v.Affine, spacing)
	if err != nil {
		return nil, fmt.Errorf("resample: %w", err)
	}
	return v.ResizeTo(d, interp)
}

// ResampleToSpacing is Volume.ResampleToSpacing for a label map, always
// nearest.
func (l *Label) ResampleToSpacing(spacing [3]float64) (*Label, error) {
	d, err := SpacingDims(l.Dims, l.Affine, spacing)
	if err != nil {
		return nil, fmt.Errorf("resample: %w", err)
	}
	return l.ResizeTo(d)
}

// ResampleToGrid samples v on another grid, dims d and affine a, through
// world coordinates: output voxel p reads source coordinate
// v.Affine⁻¹·a·p. Points inside the source's field of view (within half a
// voxel of the border voxel centres) are interpolated, clamped to the border
// voxels there; points outside get fill. The result's affine is exactly a.
// Use it to put a prediction back onto the input's own grid, or to compare
// volumes on one grid. Resampling onto v's own grid is the identity, and the
// grid of ResizeTo gives ResizeTo's values. Grids whose axes are parallel to
// v's (the usual case) take a separable path as fast as ResizeTo; oblique
// ones a general trilinear path.
func (v *Volume) ResampleToGrid(d Dims, a Affine, interp Interp, fill float32) (*Volume, error) {
	out, err := ResampleChannels([]*Volume{v}, d, a, interp, fill)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ResampleToGrid is Volume.ResampleToGrid for a label map, always nearest.
func (l *Label) ResampleToGrid(d Dims, a Affine, fill uint8) (*Label, error) {
	if err := checkLabel(l); err != nil {
		return nil, fmt.Errorf("resample: %w", err)
	}
	m, err := gridMap(l.Dims, l.Affine, d, a)
	if err != nil {
		return nil, err
	}
	out := &Label{Dims: d, Affine: a, Data: make([]uint8, d.Len())}
	dst, src := [][]uint8{out.Data}, [][]uint8{l.Data}
	if tx, ty, tz, ok := axisTaps(m, l.Dims, d, Nearest); ok {
		separableNearest(dst, src, l.Dims, d, tx, ty, tz, fill)
	} else {
		generalNearest(dst, src, l.Dims, d, m, fill)
	}
	return out, nil
}

// ResampleChannels resamples several channels that share one grid (class
// probabilities, say) onto the grid (d, a) as ResampleToGrid does, computing
// every sampling position once for all channels. The result has one volume
// per channel, in order. To put probabilities back onto an input's grid and
// label them: ResampleChannels(probs, in.Dims, in.Affine, Linear, 0), then
// ArgMax.
func ResampleChannels(chs []*Volume, d Dims, a Affine, interp Interp, fill float32) ([]*Volume, error) {
	if err := checkChannels(chs); err != nil {
		return nil, fmt.Errorf("resample: %w", err)
	}
	if interp != Linear && interp != Nearest {
		return nil, fmt.Errorf("resample: unknown interpolation %v", interp)
	}
	sd := chs[0].Dims
	m, err := gridMap(sd, chs[0].Affine, d, a)
	if err != nil {
		return nil, err
	}
	out, dst, src := newChannels(chs, d, a)
	tx, ty, tz, separable := axisTaps(m, sd, d, interp)
	switch {
	case separable && interp == Linear:
		separableLinear(dst, src, sd, d, tx, ty, tz, fill)
	case separable:
		separableNearest(dst, src, sd, d, tx, ty, tz, fill)
	case interp == Linear:
		generalLinear(dst, src, sd, d, m, fill)
	default:
		generalNearest(dst, src, sd, d, m, fill)
	}
	return out, nil
}

// gridMap returns the matrix taking output voxel indices of grid (d, a) to
// source voxel indices of grid (sd, sa).
func gridMap(sd Dims, sa Affine, d Dims, a Affine) (Affine, error) {
	if err := d.Valid(); err != nil {
		return Affine{}, fmt.Errorf("resample to %v: %w", d, err)
	}
	for r := 0; r < 4; r++ {
		for c := 0; c < 4; c++ {
			if math.IsNaN(a[r][c]) || math.IsInf(a[r][c], 0) {
				return Affine{}, errors.New("resample: target affine has a non-finite entry")
			}
		}
	}
	inv, err := sa.Inverse()
	if err != nil {
		return Affine{}, fmt.Errorf("resample: source %w", err)
	}
	return inv.Mul(a), nil
}

// axisTaps returns per-axis taps when m maps each output axis to the same
// source axis alone (off-diagonal terms below snapTol over the whole grid).
func axisTaps(m Affine, sd, d Dims, interp Interp) (tx, ty, tz []tap, ok bool) {
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			if r != c && math.Abs(m[r][c])*float64(d[c]) > snapTol {
				return nil, nil, nil, false
			}
		}
	}
	var t [3][]tap
	for ax := 0; ax < 3; ax++ {
		t[ax] = make([]tap, d[ax])
		for x := range t[ax] {
			c := m[ax][ax]*float64(x) + m[ax][3]
			if interp == Nearest {
				t[ax][x] = nearestTap(c, sd[ax])
			} else {
				t[ax][x] = linearTap(c, sd[ax])
			}
		}
	}
	return t[0], t[1], t[2], true
}

// checkChannels checks that channels exist, are well formed and share a grid.
func checkChannels(chs []*Volume) error {
	if len(chs) == 0 {
		return errors.New("no channels")
	}
	for c, v := range chs {
		if v == nil {
			return fmt.Errorf("channel %d is nil", c)
		}
		if err := checkVolume(v); err != nil {
			return fmt.Errorf("channel %d: %w", c, err)
		}
		if c > 0 && (v.Dims != chs[0].Dims || !v.Affine.Equal(chs[0].Affine, 1e-6)) {
			return fmt.Errorf("channel %d lies on another grid (dims %v) than channel 0 (dims %v)", c, v.Dims, chs[0].Dims)
		}
	}
	return nil
}

// checkVolume checks a volume's dims and voxel count.
func checkVolume(v *Volume) error {
	if err := v.Dims.Valid(); err != nil {
		return err
	}
	if len(v.Data) != v.Dims.Len() {
		return fmt.Errorf("%d voxels for dims %v", len(v.Data), v.Dims)
	}
	return nil
}

// checkLabel checks a label map's dims and voxel count.
func checkLabel(l *Label) error {
	if err := l.Dims.Valid(); err != nil {
		return err
	}
	if len(l.Data) != l.Dims.Len() {
		return fmt.Errorf("%d voxels for dims %v", len(l.Data), l.Dims)
	}
	return nil
}

// newChannels allocates one output volume per input channel.
func newChannels(chs []*Volume, d Dims, a Affine) (out []*Volume, dst, src [][]float32) {
	out = make([]*Volume, len(chs))
	dst = make([][]float32, len(chs))
	src = make([][]float32, len(chs))
	for c, v := range chs {
		out[c] = &Volume{Dims: d, Affine: a, Data: make([]float32, d.Len())}
		dst[c], src[c] = out[c].Data, v.Data
	}
	return out, dst, src
}

// separableLinear fills each output row (j, k) of every channel: the four
// source rows around (ty[j], tz[k]) are blended into one scratch row, which
// is then interpolated along x. Rows run in parallel, one scratch row per
// goroutine.
func separableLinear(dst, src [][]float32, sd, dd Dims, tx, ty, tz []tap, fill float32) {
	nx, ny := sd[0], sd[1]
	// Only source x in [xlo, xhi] is ever read.
	xlo, xhi := nx, -1
	for _, t := range tx {
		if t.in {
			xlo, xhi = min(xlo, int(t.i0)), max(xhi, int(t.i1))
		}
	}
	parallelFor(dd[1]*dd[2], rowGrain(dd[0]), func() func(lo, hi int) {
		scratch := make([]float32, nx)
		return func(lo, hi int) {
			for row := lo; row < hi; row++ {
				y, z := ty[row%dd[1]], tz[row/dd[1]]
				for c := range dst {
					out := dst[c][row*dd[0] : (row+1)*dd[0]]
					if !y.in || !z.in || xhi < 0 {
						fillRow(out, fill)
						continue
					}
					s := src[c]
					r00 := s[(int(y.i0)+ny*int(z.i0))*nx:][:nx]
					line := r00
					switch {
					case y.w == 0 && z.w == 0:
					case z.w == 0:
						line = scratch
						blend(line[xlo:xhi+1], r00[xlo:xhi+1], s[(int(y.i1)+ny*int(z.i0))*nx:][xlo:xhi+1], y.w)
					case y.w == 0:
						line = scratch
						blend(line[xlo:xhi+1], r00[xlo:xhi+1], s[(int(y.i0)+ny*int(z.i1))*nx:][xlo:xhi+1], z.w)
					default:
						line = scratch
						r10 := s[(int(y.i1)+ny*int(z.i0))*nx:][:nx]
						r01 := s[(int(y.i0)+ny*int(z.i1))*nx:][:nx]
						r11 := s[(int(y.i1)+ny*int(z.i1))*nx:][:nx]
						for x := xlo; x <= xhi; x++ {
							a := r00[x] + y.w*(r10[x]-r00[x])
							b := r01[x] + y.w*(r11[x]-r01[x])
							line[x] = a + z.w*(b-a)
						}
					}
					for x, t := range tx {
						switch {
						case !t.in:
							out[x] = fill
						case t.w == 0:
							out[x] = line[t.i0]
						default:
							a := line[t.i0]
							out[x] = a + t.w*(line[t.i1]-a)
						}
					}
				}
			}
		}
	})
}

// blend sets out = a + w·(b − a) element by element.
func blend(out, a, b []float32, w float32) {
	b = b[:len(a)]
	out = out[:len(a)]
	for x := range a {
		out[x] = a[x] + w*(b[x]-a[x])
	}
}

// fillRow sets every element to v.
func fillRow[T any](row []T, v T) {
	for i := range row {
		row[i] = v
	}
}

// separableNearest fills each output row by gathering from one source row.
func separableNearest[T any](dst, src [][]T, sd, dd Dims, tx, ty, tz []tap, fill T) {
	nx, ny := sd[0], sd[1]
	parallelFor(dd[1]*dd[2], rowGrain(dd[0]), simple(func(lo, hi int) {
		for row := lo; row < hi; row++ {
			y, z := ty[row%dd[1]], tz[row/dd[1]]
			for c := range dst {
				out := dst[c][row*dd[0] : (row+1)*dd[0]]
				if !y.in || !z.in {
					fillRow(out, fill)
					continue
				}
				line := src[c][(int(y.i0)+ny*int(z.i0))*nx:][:nx]
				for x, t := range tx {
					if t.in {
						out[x] = line[t.i0]
					} else {
						out[x] = fill
					}
				}
			}
		}
	}))
}

// generalLinear samples every output voxel at m·p with trilinear weights,
// for grids oblique to the source.
func generalLinear(dst, src [][]float32, sd, dd Dims, m Affine, fill float32) {
	sx, sxy := sd[0], sd[0]*sd[1]
	parallelFor(dd[1]*dd[2], rowGrain(dd[0]), simple(func(lo, hi int) {
		for row := lo; row < hi; row++ {
			j, k := float64(row%dd[1]), float64(row/dd[1])
			bx := m[0][1]*j + m[0][2]*k + m[0][3]
			by := m[1][1]*j + m[1][2]*k + m[1][3]
			bz := m[2][1]*j + m[2][2]*k + m[2][3]
			o := row * dd[0]
			for i := 0; i < dd[0]; i, o = i+1, o+1 {
				fi := float64(i)
				x0, wx, okx := axisLinear(m[0][0]*fi+bx, sd[0])
				y0, wy, oky := axisLinear(m[1][0]*fi+by, sd[1])
				z0, wz, okz := axisLinear(m[2][0]*fi+bz, sd[2])
				if !okx || !oky || !okz {
					for c := range dst {
						dst[c][o] = fill
					}
					continue
				}
				// Offsets of the upper neighbours: 0 where the weight is 0,
				// so the border voxel never reads past the edge.
				dx, dy, dz := 0, 0, 0
				if wx != 0 {
					dx = 1
				}
				if wy != 0 {
					dy = sx
				}
				if wz != 0 {
					dz = sxy
				}
				p := x0 + y0*sx + z0*sxy
				for c := range dst {
					s := src[c]
					a := lerp(lerp(s[p], s[p+dx], wx), lerp(s[p+dy], s[p+dy+dx], wx), wy)
					b := lerp(lerp(s[p+dz], s[p+dz+dx], wx), lerp(s[p+dz+dy], s[p+dz+dy+dx], wx), wy)
					dst[c][o] = lerp(a, b, wz)
				}
			}
		}
	}))
}

// lerp returns a + w·(b − a), exactly a when w is 0.
func lerp(a, b, w float32) float32 {
	if w == 0 {
		return a
	}
	return a + w*(b-a)
}

// generalNearest samples every output voxel at the source voxel nearest to
// m·p, for grids oblique to the source.
func generalNearest[T any](dst, src [][]T, sd, dd Dims, m Affine, fill T) {
	sx, sxy := sd[0], sd[0]*sd[1]
	parallelFor(dd[1]*dd[2], rowGrain(dd[0]), simple(func(lo, hi int) {
		for row := lo; row < hi; row++ {
			j, k := float64(row%dd[1]), float64(row/dd[1])
			bx := m[0][1]*j + m[0][2]*k + m[0][3]
			by := m[1][1]*j + m[1][2]*k + m[1][3]
			bz := m[2][1]*j + m[2][2]*k + m[2][3]
			o := row * dd[0]
			for i := 0; i < dd[0]; i, o = i+1, o+1 {
				fi := float64(i)
				x, okx := axisNearest(m[0][0]*fi+bx, sd[0])
				y, oky := axisNearest(m[1][0]*fi+by, sd[1])
				z, okz := axisNearest(m[2][0]*fi+bz, sd[2])
				if !okx || !oky || !okz {
					for c := range dst {
						dst[c][o] = fill
					}
					continue
				}
				p := x + y*sx + z*sxy
				for c := range dst {
					dst[c][o] = src[c][p]
				}
			}
		}
	}))
}
