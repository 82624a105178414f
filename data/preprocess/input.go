package preprocess

import (
	"fmt"

	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
)

// Input is a CT volume turned into the network's input: the one
// preprocessing that training (Prepare) and inference (package infer) both
// run, so that a network sees in inference exactly the numbers it was
// trained on.
type Input struct {
	// Image holds the network's input: the volume reoriented to the spec's
	// orientation, its intensities scaled, then resized to the spec's grid
	// (model.ModeResize) or resampled to its spacing (model.ModeSpacing,
	// before patches are cut). Its Data is the row-major D×H×W array the
	// network reads; its affine places it in the world.
	Image *volume.Volume
	// Plan is the reorientation that was applied; Plan.DstDims and
	// Plan.DstAffine are the reoriented grid, onto which predictions are
	// resized back before Plan.UndoLabel returns them to the input's grid.
	Plan volume.Reorientation
	// Pad is the value to pad the input with: where air (the window's lower
	// bound) ends up after scaling.
	Pad float32
}

// MakeInput turns v, a CT in HU with its RAS+ affine, into the network's
// input as spec (what the model file records) says, in this order:
//
//  1. reorientation to spec.Orientation (training records "RAS");
//  2. non-finite voxels become spec.WindowLow (air, for CT);
//  3. the HU window [WindowLow, WindowHigh] clips the intensities, then
//     maps onto [0, 1] (model.NormNone), or the clipped volume's own range
//     does (model.NormMinMax, the paper's per-volume scaling, computed over
//     every voxel before any resize);
//  4. trilinear resize to spec.Grid (D×H×W; model.ModeResize, the paper's
//     way) or resampling to spec.Spacing (model.ModeSpacing, nnU-Net's).
//
// v is not changed.
func MakeInput(v *volume.Volume, spec model.Preprocess) (*Input, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	if err := v.Dims.Valid(); err != nil || len(v.Data) != v.Dims.Len() {
		return nil, fmt.Errorf("preprocess: malformed volume: %d voxels for dims %v", len(v.Data), v.Dims)
	}
	plan, err := volume.PlanReorient(v.Dims, v.Affine, spec.Orientation)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	ov, err := plan.Apply(v) // a copy: the intensity steps below work in place
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	if err := scaleIntensities(ov, spec); err != nil {
		return nil, err
	}
	var x *volume.Volume
	if spec.Mode == model.ModeSpacing {
		x, err = ov.ResampleToSpacing(spacingIJK(spec.Spacing), volume.Linear)
	} else {
		x, err = ov.ResizeTo(Grid(spec.Grid).Dims(), volume.Linear)
	}
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	return &Input{Image: x, Plan: plan, Pad: 0}, nil
}

// InputLabel puts a label map on the grid of in, as MakeInput put its image
// there: the same reorientation, then nearest-neighbour resize or resample.
// m must lie on the image's grid (its affine is taken as the image's).
func InputLabel(m *volume.Label, in *Input, spec model.Preprocess) (*volume.Label, error) {
	if m.Dims != in.Plan.SrcDims {
		return nil, fmt.Errorf("preprocess: mask dims %v differ from image dims %v", m.Dims, in.Plan.SrcDims)
	}
	c := *m
	c.Affine = in.Plan.SrcAffine
	om, err := in.Plan.ApplyLabel(&c)
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	var out *volume.Label
	if spec.Mode == model.ModeSpacing {
		out, err = om.ResampleToSpacing(spacingIJK(spec.Spacing))
	} else {
		out, err = om.ResizeTo(Grid(spec.Grid).Dims())
	}
	if err != nil {
		return nil, fmt.Errorf("preprocess: %w", err)
	}
	return out, nil
}

// scaleIntensities runs steps 2 and 3 of MakeInput in place.
func scaleIntensities(v *volume.Volume, spec model.Preprocess) error {
	lo, hi := float32(spec.WindowLow), float32(spec.WindowHigh)
	v.ReplaceNonFinite(lo)
	if err := v.Clip(lo, hi); err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	if spec.Normalize == model.NormMinMax {
		v.ScaleMinMax()
		return nil
	}
	if err := v.Window(lo, hi); err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	return nil
}

// spacingIJK turns a spacing in network order (D, H, W) into volume order
// (i, j, k) = (W, H, D).
func spacingIJK(s [3]float64) [3]float64 { return [3]float64{s[2], s[1], s[0]} }

// Spec is what a model trained with c records at an epoch (for the model
// file, the last one): the HU window and its scaling, the canonical RAS+
// orientation, and the resize grid of that epoch, or the patch size and
// voxel spacing in ModePatch. Prepare runs MakeInput on it, so training and
// inference share one preprocessing.
func (c Config) Spec(epoch int) model.Preprocess {
	mp := model.Preprocess{
		WindowLow: c.WindowLo, WindowHigh: c.WindowHi,
		Normalize: model.NormNone, Orientation: "RAS",
		Mode: model.ModeResize, Grid: c.InputGrid(epoch),
	}
	if c.Scaling == ScaleMinMax {
		mp.Normalize = model.NormMinMax
	}
	if c.Mode == ModePatch {
		mp.Mode, mp.Spacing = model.ModeSpacing, c.Spacing
	}
	return mp
}
