package infer

import (
	"fmt"

	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
)

// Normalize applies the intensity steps of p to a CT volume in HU, in
// place: voxels that are not finite become p.WindowLow (air, for CT), the
// HU window maps [WindowLow, WindowHigh] onto [0, 1] with clipping, and then
// p.Normalize: nothing (NormNone), (x − Mean)/Std (NormFixed), or the
// volume's own mean and standard deviation (NormZScore); NormMinMax instead
// maps the volume's own lowest and highest clipped HU onto 0 and 1. The
// volume's own statistics are over every voxel of v as given: call it
// before any resize or padding. It returns the value to pad the network's
// input with: where a voxel of WindowLow HU ends up (with NormMinMax, 0:
// the volume's own minimum).
//
// With NormNone and NormMinMax the steps and their order are
// preprocess.Prepare's, so that a network sees the same numbers in
// inference as in training.
func Normalize(v *volume.Volume, p model.Preprocess) (air float32, err error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("infer: %w", err)
	}
	v.ReplaceNonFinite(float32(p.WindowLow))
	if p.Normalize == model.NormMinMax {
		return minMax(v, p)
	}
	if err := v.Window(float32(p.WindowLow), float32(p.WindowHigh)); err != nil {
		return 0, fmt.Errorf("infer: %w", err)
	}
	switch p.Normalize {
	case model.NormNone:
		return 0, nil
	case model.NormFixed:
		affine(v.Data, p.Mean, p.Std)
		return float32((0 - p.Mean) / p.Std), nil
	case model.NormZScore:
		mean, std := v.ZScore()
		if std == 0 {
			std = 1 // ZScore only subtracts the mean then
		}
		return float32((0 - mean) / std), nil
	}
	return 0, fmt.Errorf("infer: normalisation %q", p.Normalize)
}

// minMax clips v to p's window and maps its own range onto [0, 1], as
// preprocess.Prepare does for preprocess.ScaleMinMax. It returns 0 as the
// padding value: the volume's own minimum (in a CT, its air), which is also
// what training's patches are padded with.
func minMax(v *volume.Volume, p model.Preprocess) (air float32, err error) {
	if err := v.Clip(float32(p.WindowLow), float32(p.WindowHigh)); err != nil {
		return 0, fmt.Errorf("infer: %w", err)
	}
	v.ScaleMinMax()
	return 0, nil
}

// affine computes (x − mean)/std in place, in float64 as ZScore does.
func affine(d []float32, mean, std float64) {
	inv := 1 / std
	for i, x := range d {
		d[i] = float32((float64(x) - mean) * inv)
	}
}
