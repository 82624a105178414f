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
// volume's own mean and standard deviation (NormZScore, over every voxel of
// v as given: call it before any resize or padding). It returns the value a
// voxel of WindowLow HU ends up with, the value to pad the network's input
// with.
func Normalize(v *volume.Volume, p model.Preprocess) (air float32, err error) {
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("infer: %w", err)
	}
	v.ReplaceNonFinite(float32(p.WindowLow))
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

// affine computes (x − mean)/std in place, in float64 as ZScore does.
func affine(d []float32, mean, std float64) {
	inv := 1 / std
	for i, x := range d {
		d[i] = float32((float64(x) - mean) * inv)
	}
}
