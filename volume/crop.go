package volume

import "fmt"

// Crops and pads never resample: output voxel p is source voxel p + off for
// a whole-voxel offset off, so the affine's 3x3 part is kept and its origin
// moves to the world position of source voxel off (A·off). Voxels that fall
// outside the source get a fill value.

// RegionAffine returns the affine of the grid whose voxel 0 is voxel off of
// a grid with affine a: the same axes and spacing, origin at a·off.
func RegionAffine(a Affine, off [3]int) Affine {
	t := Identity()
	for ax := 0; ax < 3; ax++ {
		t[ax][3] = float64(off[ax])
	}
	return a.Mul(t)
}

// Region returns the block of dims d whose voxel (0, 0, 0) is v's voxel off
// (any integers: the block may reach past v's edges, where it gets fill).
// Its affine is RegionAffine(v.Affine, off). Crop, Pad and CropOrPadTo are
// special cases; patch-based inference can use it directly.
func (v *Volume) Region(off [3]int, d Dims, fill float32) (*Volume, error) {
	if err := checkVolume(v); err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	if err := checkRegion(off, d); err != nil {
		return nil, err
	}
	return &Volume{Dims: d, Affine: RegionAffine(v.Affine, off), Data: region(v.Data, v.Dims, off, d, fill)}, nil
}

// Region is Volume.Region for a label map.
func (l *Label) Region(off [3]int, d Dims, fill uint8) (*Label, error) {
	if err := checkLabel(l); err != nil {
		return nil, fmt.Errorf("region: %w", err)
	}
	if err := checkRegion(off, d); err != nil {
		return nil, err
	}
	return &Label{Dims: d, Affine: RegionAffine(l.Affine, off), Data: region(l.Data, l.Dims, off, d, fill)}, nil
}

// checkRegion checks a region's dims and keeps its offset in a sane range.
func checkRegion(off [3]int, d Dims) error {
	if err := d.Valid(); err != nil {
		return fmt.Errorf("region %v at %v: %w", d, off, err)
	}
	for _, o := range off {
		if o < -MaxVoxels || o > MaxVoxels {
			return fmt.Errorf("region %v at %v: offset out of range", d, off)
		}
	}
	return nil
}

// region copies the block of dims d at offset off out of src (dims sd),
// filling what lies outside.
func region[T any](src []T, sd Dims, off [3]int, d Dims, fill T) []T {
	dst := make([]T, d.Len())
	// Output x range that reads inside the source.
	xlo := min(max(-off[0], 0), d[0])
	xhi := max(min(sd[0]-off[0], d[0]), xlo)
	parallelFor(d[1]*d[2], rowGrain(d[0]), simple(func(lo, hi int) {
		for row := lo; row < hi; row++ {
			out := dst[row*d[0] : (row+1)*d[0]]
			sj, sk := row%d[1]+off[1], row/d[1]+off[2]
			if sj < 0 || sj >= sd[1] || sk < 0 || sk >= sd[2] || xlo == xhi {
				fillRow(out, fill)
				continue
			}
			fillRow(out[:xlo], fill)
			base := sd.Index(off[0], sj, sk)
			copy(out[xlo:xhi], src[base+xlo:base+xhi])
			fillRow(out[xhi:], fill)
		}
	}))
	return dst
}

// cropBox checks a crop box [lo, hi) against dims d.
func cropBox(d Dims, lo, hi [3]int) (Dims, error) {
	var out Dims
	for ax := 0; ax < 3; ax++ {
		if lo[ax] < 0 || hi[ax] > d[ax] || lo[ax] >= hi[ax] {
			return out, fmt.Errorf("crop [%v, %v) does not fit inside dims %v", lo, hi, d)
		}
		out[ax] = hi[ax] - lo[ax]
	}
	return out, nil
}

// padDims checks pad widths against dims d.
func padDims(d Dims, before, after [3]int) (Dims, error) {
	var out Dims
	for ax := 0; ax < 3; ax++ {
		if before[ax] < 0 || after[ax] < 0 || before[ax] > MaxVoxels || after[ax] > MaxVoxels {
			return out, fmt.Errorf("pad %v/%v: widths must be between 0 and %d", before, after, MaxVoxels)
		}
		out[ax] = d[ax] + before[ax] + after[ax]
	}
	if err := out.Valid(); err != nil {
		return out, fmt.Errorf("pad %v/%v: %w", before, after, err)
	}
	return out, nil
}

// centreOffset is the offset CropOrPadTo uses: along each axis, floor(|n −
// target|/2) voxels are removed (crop) or added (pad) before the start, the
// rest after the end. The same rule both ways means CropOrPadTo back to the
// original dims undoes it.
func centreOffset(d, to Dims) [3]int {
	var off [3]int
	for ax := 0; ax < 3; ax++ {
		off[ax] = (d[ax] - to[ax]) / 2 // Go truncates toward zero: ±floor(|x|/2)
	}
	return off
}

// Crop returns voxels lo (inclusive) to hi (exclusive) along each axis; the
// affine's origin moves to the world position of voxel lo.
func (v *Volume) Crop(lo, hi [3]int) (*Volume, error) {
	d, err := cropBox(v.Dims, lo, hi)
	if err != nil {
		return nil, err
	}
	return v.Region(lo, d, 0)
}

// Crop is Volume.Crop for a label map.
func (l *Label) Crop(lo, hi [3]int) (*Label, error) {
	d, err := cropBox(l.Dims, lo, hi)
	if err != nil {
		return nil, err
	}
	return l.Region(lo, d, 0)
}

// Pad adds before[ax] voxels of fill before the start of axis ax and
// after[ax] after its end; the affine's origin moves to the world position
// of the new first voxel, −before in old indices.
func (v *Volume) Pad(before, after [3]int, fill float32) (*Volume, error) {
	d, err := padDims(v.Dims, before, after)
	if err != nil {
		return nil, err
	}
	return v.Region([3]int{-before[0], -before[1], -before[2]}, d, fill)
}

// Pad is Volume.Pad for a label map.
func (l *Label) Pad(before, after [3]int, fill uint8) (*Label, error) {
	d, err := padDims(l.Dims, before, after)
	if err != nil {
		return nil, err
	}
	return l.Region([3]int{-before[0], -before[1], -before[2]}, d, fill)
}

// CropOrPadTo returns v cropped or padded (with fill) to dims d about its
// centre: along each axis floor(|n − target|/2) voxels are removed or added
// before the start and the rest after the end, so CropOrPadTo back to the
// original dims restores v. The affine's origin moves by whole voxels.
func (v *Volume) CropOrPadTo(d Dims, fill float32) (*Volume, error) {
	return v.Region(centreOffset(v.Dims, d), d, fill)
}

// CropOrPadTo is Volume.CropOrPadTo for a label map.
func (l *Label) CropOrPadTo(d Dims, fill uint8) (*Label, error) {
	return l.Region(centreOffset(l.Dims, d), d, fill)
}
