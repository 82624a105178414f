package model

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/covseg/covseg/model/torchpth"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestUNetTorch cross-checks the whole network against the PyTorch rendering
// in ../shared/bench/torch_unet3d.py: the fixture (tools/make_unet_fixture.py)
// holds its state_dict with random weights and BatchNorm statistics, an input
// and the eval-mode logits. It runs when COVSEG_UNET_FIXTURE names such a
// directory (and fails if that directory is missing or wrong); full width
// on the pure-Go backend takes a while, so it is not part of the default run.
func TestUNetTorch(t *testing.T) {
	if os.Getenv("COVSEG_UNET_FIXTURE") == "" {
		t.Skip("set COVSEG_UNET_FIXTURE to a directory made by tools/make_unet_fixture.py")
	}
	dir := fixtureDir(t, "COVSEG_UNET_FIXTURE")
	var meta struct {
		Classes int   `json:"classes"`
		Input   []int `json:"input"`
		Output  []int `json:"output"`
	}
	if err := readMeta(filepath.Join(dir, "meta.json"), &meta); err != nil {
		t.Fatal(err)
	}
	sd, err := torchpth.ReadStateDict(filepath.Join(dir, "unet.pth"))
	if err != nil {
		t.Fatal(err)
	}
	in, inShape, err := readNpy(filepath.Join(dir, "input.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, outShape, err := readNpy(filepath.Join(dir, "output.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inShape, meta.Input) || !slices.Equal(outShape, meta.Output) {
		t.Fatalf("input %v / output %v disagree with meta.json %v / %v", inShape, outShape, meta.Input, meta.Output)
	}
	cfg := DefaultConfig()
	cfg.Classes = meta.Classes
	cfg.ClassNames = DefaultClassNames(meta.Classes)
	ctx, err := NewContext(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadStateDict(ctx, cfg, sd); err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(testBackend(), ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	y, err := r.Run(tensors.FromFlatDataAndDimensions(in, inShape...))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(y.Shape().Dimensions, outShape) {
		t.Fatalf("output %v, want %v", y.Shape().Dimensions, outShape)
	}
	e := relL2(flat(t, y), want)
	t.Logf("U-Net %v → %v: relative L2 error %.2e against PyTorch", inShape, outShape, e)
	if !(e <= 1e-5) {
		t.Errorf("relative L2 error %.3e > 1e-5", e)
	}
}
