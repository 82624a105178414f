package preprocess

import (
	"fmt"
	"math/rand/v2"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/volio"
)

// Sample is a preprocessed case.
type Sample struct {
	Case  string
	Image *volume.Volume // scaled intensities on the prepared grid (RAS+)
	Mask  *volume.Label  // 1 = lesion, 0 elsewhere (or class indices: LabelsClasses); nil for an unlabelled case
	// Lesion holds flat indices of lesion voxels (all of them, or an even
	// subsample of MaxLesionSamples), for ModePatch's oversampling.
	Lesion []int32
}

// MaxLesionSamples bounds Sample.Lesion (nnU-Net keeps 10 000 too).
const MaxLesionSamples = 10000

// gridTol is how far (mm, per affine entry) a mask's affine may be from its
// image's: NIfTI-1 stores affines as float32, so copies differ by rounding.
const gridTol = 1e-2

// Read reads a manifest entry's image (NIfTI or DICOM folder) and mask
// (NIfTI; binarised — every label > 0 is lesion — unless labels is
// LabelsClasses). The mask must lie on the image's grid.
func Read(e dataset.Entry, labels Labels) (*volume.Volume, *volume.Label, error) {
	img, _, err := volio.Read(e.Image, volio.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("preprocess: case %s: %w", e.Case, err)
	}
	if e.Mask == "" {
		return img, nil, nil
	}
	mask, _, err := volio.ReadLabel(e.Mask)
	if err != nil {
		return nil, nil, fmt.Errorf("preprocess: case %s: %w", e.Case, err)
	}
	if mask.Dims != img.Dims || !mask.Affine.Equal(img.Affine, gridTol) {
		return nil, nil, fmt.Errorf("preprocess: case %s: mask %s (%v, %s) is not on the grid of image %s (%v, %s)",
			e.Case, e.Mask, mask.Dims, mask.Affine.AxCodes(), e.Image, img.Dims, img.Affine.AxCodes())
	}
	mask.Affine = img.Affine
	if labels == LabelsClasses {
		return img, mask, nil
	}
	for i, x := range mask.Data {
		if x > 0 {
			mask.Data[i] = 1
		}
	}
	return img, mask, nil
}

// Prepare runs the pipeline on a CT (HU) and its mask (may be nil) for an
// epoch: MakeInput with the epoch's Spec (canonical RAS+ reorientation,
// window and scaling, then the resize to the epoch's grid in ModeResize or
// the resample to the target spacing in ModePatch), the mask following the
// image with nearest-neighbour interpolation. img and mask are not changed.
func Prepare(name string, img *volume.Volume, mask *volume.Label, cfg Config, epoch int) (*Sample, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if mask != nil && mask.Dims != img.Dims {
		return nil, fmt.Errorf("preprocess: case %s: mask dims %v differ from image dims %v", name, mask.Dims, img.Dims)
	}
	spec := cfg.Spec(epoch)
	in, err := MakeInput(img, spec)
	if err != nil {
		return nil, fmt.Errorf("preprocess: case %s: %w", name, err)
	}
	s := &Sample{Case: name, Image: in.Image}
	if mask != nil {
		if s.Mask, err = InputLabel(mask, in, spec); err != nil {
			return nil, fmt.Errorf("preprocess: case %s: %w", name, err)
		}
	}
	if s.Mask != nil && cfg.Mode == ModePatch {
		s.Lesion = lesionIndices(s.Mask)
	}
	return s, nil
}

// lesionIndices lists lesion voxels (class 1), evenly subsampled to
// MaxLesionSamples.
func lesionIndices(m *volume.Label) []int32 {
	n := 0
	for _, x := range m.Data {
		if x == 1 {
			n++
		}
	}
	step := max(1, (n+MaxLesionSamples-1)/MaxLesionSamples)
	out := make([]int32, 0, min(n, MaxLesionSamples))
	seen := 0
	for i, x := range m.Data {
		if x == 1 {
			if seen%step == 0 {
				out = append(out, int32(i))
			}
			seen++
		}
	}
	return out
}

// RandomPatch cuts a patch of size p (D×H×W) from s: with probability
// lesionFraction (when s has lesions) around a random lesion voxel
// (centred on it, shifted to stay inside the volume), otherwise at a
// uniformly random place where it fits (centred on the volume along axes
// where the volume is smaller than the patch). Parts outside the volume
// are 0 in both image and mask. The patch's affine places it in the world.
func RandomPatch(s *Sample, p Grid, lesionFraction float64, rng *rand.Rand) (*Sample, error) {
	d, pd := s.Image.Dims, p.Dims()
	var off [3]int
	if len(s.Lesion) > 0 && rng.Float64() < lesionFraction {
		idx := int(s.Lesion[rng.IntN(len(s.Lesion))])
		c := [3]int{idx % d[0], idx / d[0] % d[1], idx / (d[0] * d[1])}
		for a := range 3 {
			off[a] = c[a] - pd[a]/2
			if d[a] >= pd[a] { // stay inside; the voxel stays in the patch
				off[a] = max(0, min(off[a], d[a]-pd[a]))
			}
		}
	} else {
		for a := range 3 {
			if d[a] >= pd[a] {
				off[a] = rng.IntN(d[a] - pd[a] + 1)
			} else {
				off[a] = -(pd[a] - d[a]) / 2
			}
		}
	}
	out := &Sample{Case: s.Case}
	var err error
	if out.Image, err = s.Image.Region(off, pd, 0); err != nil {
		return nil, fmt.Errorf("preprocess: case %s: %w", s.Case, err)
	}
	if s.Mask != nil {
		if out.Mask, err = s.Mask.Region(off, pd, 0); err != nil {
			return nil, fmt.Errorf("preprocess: case %s: %w", s.Case, err)
		}
	}
	return out, nil
}
