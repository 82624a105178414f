// Package volume holds 3D medical images together with their geometry.
//
// Orientation convention (the one NIfTI and nibabel use): every Affine maps
// voxel indices (i, j, k), i varying fastest in memory, to world coordinates
// in millimetres in RAS+: +x points to the patient's Right, +y Anterior,
// +z Superior. DICOM's patient coordinate system is LPS+ (+x Left,
// +y Posterior, +z Superior); readers of DICOM convert at the boundary by
// negating the first two rows of the affine (see LPSToRAS).
//
// Operations, each keeping every voxel's world position consistent with the
// affine: reorientation by permutations and flips (Canonical, Reorient,
// Flip, and Reorientation plans whose Undo restores the input grid bit for
// bit); resampling (ResizeTo a fixed grid, ResampleToSpacing, ResampleToGrid
// through world coordinates, and ResizeChannels/ResampleChannels for class
// probabilities held as one *Volume per channel); crops and pads on whole
// voxels (Crop, Pad, CropOrPadTo, Region); intensity in place (Clip, Window,
// ScaleMinMax, ZScore); and ArgMax/Threshold to labels. Label maps have the
// same operations with nearest-neighbour sampling.
package volume

import (
	"fmt"
	"math"
)

// MaxVoxels is the largest number of voxels a reader accepts before it
// allocates anything: 2^31 voxels (8 GiB of float32) is far beyond any CT.
const MaxVoxels = 1 << 31

// Dims are the sizes of the three spatial axes (i, j, k).
type Dims [3]int

// Len is the number of voxels.
func (d Dims) Len() int { return d[0] * d[1] * d[2] }

// Valid reports whether every size is positive and the product is sane.
func (d Dims) Valid() error {
	n := 1
	for a, s := range d {
		if s <= 0 {
			return fmt.Errorf("dimension %d has size %d", a, s)
		}
		if n > MaxVoxels/s {
			return fmt.Errorf("dims %v hold more than %d voxels", d, MaxVoxels)
		}
		n *= s
	}
	return nil
}

// Index returns the flat index of voxel (i, j, k), i fastest.
func (d Dims) Index(i, j, k int) int { return i + d[0]*(j+d[1]*k) }

// Volume is a scalar 3D image: float32 voxels, i fastest, and the affine that
// places them in RAS+ millimetres.
type Volume struct {
	Dims   Dims
	Data   []float32
	Affine Affine
}

// New returns a zero-filled volume.
func New(d Dims, a Affine) (*Volume, error) {
	if err := d.Valid(); err != nil {
		return nil, err
	}
	return &Volume{Dims: d, Data: make([]float32, d.Len()), Affine: a}, nil
}

// At returns voxel (i, j, k).
func (v *Volume) At(i, j, k int) float32 { return v.Data[v.Dims.Index(i, j, k)] }

// Set sets voxel (i, j, k).
func (v *Volume) Set(i, j, k int, x float32) { v.Data[v.Dims.Index(i, j, k)] = x }

// Spacing returns the voxel size in millimetres along i, j and k.
func (v *Volume) Spacing() [3]float64 { return v.Affine.Spacing() }

// Clone returns a deep copy.
func (v *Volume) Clone() *Volume {
	c := *v
	c.Data = append([]float32(nil), v.Data...)
	return &c
}

// Label is a 3D mask: uint8 class indices (0 = background), i fastest, with
// the same geometry conventions as Volume.
type Label struct {
	Dims   Dims
	Data   []uint8
	Affine Affine
}

// NewLabel returns an all-background label map.
func NewLabel(d Dims, a Affine) (*Label, error) {
	if err := d.Valid(); err != nil {
		return nil, err
	}
	return &Label{Dims: d, Data: make([]uint8, d.Len()), Affine: a}, nil
}

// At returns voxel (i, j, k).
func (l *Label) At(i, j, k int) uint8 { return l.Data[l.Dims.Index(i, j, k)] }

// Spacing returns the voxel size in millimetres along i, j and k.
func (l *Label) Spacing() [3]float64 { return l.Affine.Spacing() }

// Clone returns a deep copy.
func (l *Label) Clone() *Label {
	c := *l
	c.Data = append([]uint8(nil), l.Data...)
	return &c
}

// LabelFrom reads a volume as a mask: voxels > 0.5 after rounding become
// their rounded value (clamped to 255), the rest 0. Use Binarize for a
// strict "> 0" reading.
func LabelFrom(v *Volume) *Label {
	l := &Label{Dims: v.Dims, Data: make([]uint8, len(v.Data)), Affine: v.Affine}
	for i, x := range v.Data {
		r := math.Round(float64(x))
		switch {
		case !(r > 0): // also NaN
		case r > 255:
			l.Data[i] = 255
		default:
			l.Data[i] = uint8(r)
		}
	}
	return l
}

// Binarize reads a volume as a binary mask: 1 where the voxel is > 0.
func Binarize(v *Volume) *Label {
	l := &Label{Dims: v.Dims, Data: make([]uint8, len(v.Data)), Affine: v.Affine}
	for i, x := range v.Data {
		if x > 0 {
			l.Data[i] = 1
		}
	}
	return l
}

// ToVolume converts a label map to float32 voxels.
func (l *Label) ToVolume() *Volume {
	v := &Volume{Dims: l.Dims, Data: make([]float32, len(l.Data)), Affine: l.Affine}
	for i, x := range l.Data {
		v.Data[i] = float32(x)
	}
	return v
}
