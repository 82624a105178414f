package model

import "testing"

// TestConvFLOPs checks the count against conv_flops of
// ../shared/bench/torch_unet3d.py (forward hooks on every nn.Conv3d of the
// PyTorch network), run with Debian's torch 1.13 at these shapes.
func TestConvFLOPs(t *testing.T) {
	for _, c := range []struct {
		d, h, w int
		want    int64
	}{
		{8, 64, 64, 136032157696},
		{7, 50, 61, 96647733792},
		{20, 224, 224, 3983379333120},
	} {
		got, err := ConvFLOPs(DefaultConfig(), 1, c.d, c.h, c.w)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%dx%dx%d: %d FLOPs, PyTorch's hooks count %d", c.d, c.h, c.w, got, c.want)
		}
	}
	two, err := ConvFLOPs(DefaultConfig(), 2, 8, 64, 64)
	if err != nil || two != 2*136032157696 {
		t.Errorf("batch 2: %d, %v; want twice batch 1", two, err)
	}
	if _, err := ConvFLOPs(DefaultConfig(), 1, 0, 64, 64); err == nil {
		t.Error("an empty input was counted")
	}
}
