package preprocess

import (
	"math"
	"slices"
	"testing"

	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
)

// TestMakeInputIntensities checks the intensity steps by hand: non-finite
// voxels become air, the window clips and maps onto [0, 1], min–max maps
// the clipped volume's own range, and an empty window is refused.
func TestMakeInputIntensities(t *testing.T) {
	v, _ := volume.New(volume.Dims{4, 1, 1}, volume.Identity())
	copy(v.Data, []float32{-2000, float32(math.NaN()), -212, 3000})
	spec := model.DefaultConfig().Preprocess // −1024..600, none
	spec.Orientation, spec.Grid = "RAS", [3]int{1, 1, 4}
	in, err := MakeInput(v, spec)
	if err != nil || in.Pad != 0 {
		t.Fatal(in, err)
	}
	if !slices.Equal(in.Image.Data, []float32{0, 0, 0.5, 1}) {
		t.Errorf("window: %v", in.Image.Data)
	}
	if !math.IsNaN(float64(v.Data[1])) {
		t.Error("the input volume was changed")
	}
	copy(v.Data, []float32{-500, float32(math.Inf(1)), -300, 100})
	spec.Normalize = model.NormMinMax
	if in, err = MakeInput(v, spec); err != nil {
		t.Fatal(err)
	}
	// +Inf becomes −1024 (air), the lowest value; 100 is the highest.
	want := []float32{524.0 / 1124, 0, 724.0 / 1124, 1}
	for i, x := range in.Image.Data {
		if math.Abs(float64(x-want[i])) > 1e-6 {
			t.Errorf("minmax: %v, want %v", in.Image.Data, want)
			break
		}
	}
	spec.WindowLow = spec.WindowHigh
	if _, err := MakeInput(v, spec); err == nil {
		t.Error("an empty window was accepted")
	}
}
