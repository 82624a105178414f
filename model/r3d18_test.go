package model

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/model/torchpth"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// TestR3D18Torchvision is the encoder's conformance test: torchvision's own
// r3d_18 (weights in the real state_dict format, 3-channel stem) and its
// eval-mode activations, made by ../shared/tools/make_r3d18_fixture.py, must
// be reproduced to a relative L2 error of 1e-5 at the stem, layer1..4 and
// the logits (avgpool + fc, computed here outside Ops). The fixture directory
// is $COVSEG_R3D18_FIXTURE or fixtures/r3d18 in the shared folder; a missing
// or wrong fixture fails the test.
func TestR3D18Torchvision(t *testing.T) {
	testutil.Long(t)
	dir := fixtureDir(t, "COVSEG_R3D18_FIXTURE", "fixtures", "r3d18")
	var meta struct {
		Input       []int            `json:"input"`
		Mode        string           `json:"mode"`
		Layout      string           `json:"layout"`
		Activations map[string][]int `json:"activations"`
	}
	if err := readMeta(filepath.Join(dir, "meta.json"), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Mode != "eval" || meta.Layout != "NCDHW" || len(meta.Input) != 5 {
		t.Fatalf("meta.json: mode %q, layout %q, input %v: want eval, NCDHW, 5 dims", meta.Mode, meta.Layout, meta.Input)
	}
	sd, err := torchpth.ReadStateDict(filepath.Join(dir, "r3d_18.pth"))
	if err != nil {
		t.Fatal(err)
	}
	in, inShape, err := readNpy(filepath.Join(dir, "input.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inShape, meta.Input) {
		t.Fatalf("input.npy is %v, meta.json says %v", inShape, meta.Input)
	}

	cfg := DefaultConfig()
	cfg.InChannels = inShape[1] // 3: torchvision's RGB stem, loaded as it is
	ctx, err := NewContext(cfg, 0, PartEncoder)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadStateDict(ctx, cfg, sd, PartEncoder); err != nil {
		t.Fatal(err)
	}
	fcW, fcB := sd.Tensors["fc.weight"], sd.Tensors["fc.bias"]
	if fcW == nil || fcB == nil || len(fcW.Shape) != 2 || fcW.Shape[1] != 8*64 || !slices.Equal(fcB.Shape, fcW.Shape[:1]) {
		t.Fatalf("r3d_18.pth: fc.weight / fc.bias missing or misshapen")
	}

	exec, err := context.NewExec(testBackend(), ctx, func(ctx *context.Context, x *graph.Node) []*graph.Node {
		f := Encoder[*graph.Node](NewGraphOps(ctx, x.Graph(), false, Options{}), x, cfg)
		return []*graph.Node{f.Stem, f.Layer1, f.Layer2, f.Layer3, f.Layer4}
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(in, inShape...))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	for i, name := range []string{"stem", "layer1", "layer2", "layer3", "layer4"} {
		got[name] = flat(t, outs[i])
		if want := meta.Activations[name]; !slices.Equal(outs[i].Shape().Dimensions, want) {
			t.Errorf("%s: shape %v, meta.json says %v", name, outs[i].Shape().Dimensions, want)
		}
	}
	got["logits"] = avgpoolFC(got["layer4"], outs[4].Shape().Dimensions, fcW, fcB)

	for _, name := range []string{"stem", "layer1", "layer2", "layer3", "layer4", "logits"} {
		want, shape, err := readNpy(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Error(err)
			continue
		}
		if len(want) != len(got[name]) {
			t.Errorf("%s: %d values, reference %v has %d", name, len(got[name]), shape, len(want))
			continue
		}
		e := relL2(got[name], want)
		t.Logf("%-6s %v relative L2 error %.2e", name, shape, e)
		if !(e <= 1e-5) {
			t.Errorf("%s: relative L2 error %.3e > 1e-5", name, e)
		}
	}
}

// avgpoolFC is r3d_18's classifier: the mean over D, H, W, then fc.
func avgpoolFC(x []float32, dims []int, w, b *torchpth.Tensor) []float32 {
	n, c, vol := dims[0], dims[1], dims[2]*dims[3]*dims[4]
	classes := w.Shape[0]
	out := make([]float32, n*classes)
	for i := range n {
		pooled := make([]float64, c)
		for ch := range c {
			var s float64
			for _, v := range x[(i*c+ch)*vol : (i*c+ch+1)*vol] {
				s += float64(v)
			}
			pooled[ch] = s / float64(vol)
		}
		for k := range classes {
			s := float64(b.F32[k])
			for ch, p := range pooled {
				s += float64(w.F32[k*c+ch]) * p
			}
			out[i*classes+k] = float32(s)
		}
	}
	return out
}
