package volume_test

import (
	"fmt"

	"github.com/covseg/covseg/volume"
)

// The paper's inference geometry: orient the CT to RAS+, resize it to the
// network's 20x224x224 grid, predict class probabilities there, resample
// them back onto the canonical grid, take the argmax, and undo the
// orientation so the mask has exactly the input's dims and affine.
func ExamplePlanCanonical() {
	// An LPS-stored CT, as DICOM readers give it after converting to RAS+.
	in, _ := volume.New(volume.Dims{64, 48, 30}, volume.Affine{
		{-0.7, 0, 0, 180}, {0, -0.7, 0, 170}, {0, 0, 2.5, -300}, {0, 0, 0, 1}})
	for i := range in.Data {
		in.Data[i] = float32(i%3000) - 1024
	}

	plan := volume.PlanCanonical(in.Dims, in.Affine)
	ras, _ := plan.Apply(in)
	x, _ := ras.ResizeTo(volume.Dims{224, 224, 20}, volume.Linear)
	_ = x.Window(volume.DefaultWindowLo, volume.DefaultWindowHi)

	// Stand-in for the network: background and lesion probabilities.
	lesion := x.Clone()
	background := x.Clone()
	for i, p := range lesion.Data {
		background.Data[i] = 1 - p
	}

	probs, _ := volume.ResampleChannels([]*volume.Volume{background, lesion}, ras.Dims, ras.Affine, volume.Linear, 0)
	mask, _ := volume.ArgMax(probs)
	out, _ := plan.UndoLabel(mask)

	fmt.Println(in.Affine.AxCodes(), "→", ras.Affine.AxCodes(), x.Dims)
	fmt.Println("mask dims", out.Dims, "same affine:", out.Affine == in.Affine)
	// Output:
	// LPS → RAS [224 224 20]
	// mask dims [64 48 30] same affine: true
}
