package model

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/model/torchpth"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// narrow returns a valid config of the given stem width (64·Width).
func narrow(stem int) Config {
	cfg := DefaultConfig()
	cfg.Width = float64(stem) / 64
	return cfg
}

// TestParamCounts checks the full-width network against torch_unet3d.py's
// sum(p.numel() for p in m.parameters()) = 95,325,440 and the names and
// groups the trainer relies on.
func TestParamCounts(t *testing.T) {
	specs, err := ParamSpecs(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := CountParams(specs)
	want := [numParts]int{33147456, 28315648, 32520448, 1341888}
	if c.Total != 95325440 || c.Part != want {
		t.Errorf("parameters %d by part %v, want 95325440 by part %v", c.Total, c.Part, want)
	}
	names := map[string]bool{}
	for _, s := range specs {
		if names[s.Name] {
			t.Errorf("%s twice", s.Name)
		}
		names[s.Name] = true
		if s.Trainable() && NoWeightDecay(s.Name) == s.WeightDecay() {
			t.Errorf("%s: NoWeightDecay %v but kind %v", s.Name, NoWeightDecay(s.Name), s.Kind)
		}
		if IsEncoderParam(s.Name) != (s.Part == PartEncoder) {
			t.Errorf("%s: IsEncoderParam disagrees with part %v", s.Name, s.Part)
		}
	}
	for _, n := range []string{"stem.0.weight", "layer1.0.conv1.0.weight", "layer2.0.downsample.1.running_mean",
		"layer4.1.conv2.1.bias", "bridge.0.weight", "bridge.2.0.weight", "bridge.3.1.running_var", "b1.up.0.weight",
		"b1.skip_bn.bias", "b3.conv2.1.weight", "head_up.bias", "res.c1.0.weight", "res.c2.1.weight", "out.0.weight",
		"out.1.running_var"} {
		if !names[n] {
			t.Errorf("%s missing", n)
		}
	}
	if len(specs) != 226-38 { // torch's state_dict: 226 entries, 38 of them num_batches_tracked
		t.Errorf("%d tensors, want %d", len(specs), 226-38)
	}
	for _, s := range specs {
		if s.Name == "res.c2.1.weight" && !s.ZeroInit {
			t.Error("res.c2.1.weight (the ResBlock's last BN γ) must start at 0")
		}
	}
	if _, err := PartOf("fc.weight"); err == nil {
		t.Error("fc.weight is not a U-Net parameter")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Config){
		"arch":        func(c *Config) { c.Arch = "resnet" },
		"classes":     func(c *Config) { c.Classes = 0 },
		"names":       func(c *Config) { c.ClassNames = c.ClassNames[:1] },
		"width":       func(c *Config) { c.Width = 0.3 },
		"zero width":  func(c *Config) { c.Width = 0 },
		"huge width":  func(c *Config) { c.Width = 1e6 },
		"channels":    func(c *Config) { c.InChannels = 0 },
		"window":      func(c *Config) { c.Preprocess.WindowHigh = -2000 },
		"norm":        func(c *Config) { c.Preprocess.Normalize = "maxmin" },
		"zscore":      func(c *Config) { c.Preprocess.Normalize = "zscore" },
		"orientation": func(c *Config) { c.Preprocess.Orientation = "LLS" },
		"grid":        func(c *Config) { c.Preprocess.Grid[1] = 0 },
		"mode":        func(c *Config) { c.Preprocess.Mode = "crop" },
		"spacing":     func(c *Config) { c.Preprocess.Mode = ModeSpacing },
	}
	for name, f := range bad {
		c := DefaultConfig()
		c.ClassNames = slices.Clone(c.ClassNames)
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
}

// TestNearestIndices pins PyTorch's float32 index arithmetic, including a
// case where it differs from exact ⌊dst·in/out⌋.
func TestNearestIndices(t *testing.T) {
	cases := []struct {
		in, out int
		want    []int
	}{
		{3, 3, []int{0, 1, 2}},
		{3, 6, []int{0, 0, 1, 1, 2, 2}},
		{3, 2, []int{0, 1}},
		{5, 3, []int{0, 1, 3}},
		{2, 5, []int{0, 0, 0, 1, 1}},
	}
	for _, c := range cases {
		if got := NearestIndices(c.in, c.out); !slices.Equal(got, c.want) {
			t.Errorf("NearestIndices(%d, %d) = %v, want %v", c.in, c.out, got, c.want)
		}
	}
	if got := NearestIndices(2, 82)[41]; got != 0 { // exact arithmetic gives 1
		t.Errorf("NearestIndices(2, 82)[41] = %d, PyTorch gives 0", got)
	}
}

// TestShapes runs narrow networks on odd inputs: the logits always have
// the input's D, H, W.
func TestShapes(t *testing.T) {
	testutil.Long(t)
	cases := []struct {
		stem int
		dims []int
	}{
		{2, []int{1, 1, 1, 1, 1}},
		{2, []int{2, 1, 2, 3, 5}},
		{2, []int{1, 1, 7, 45, 53}},
		{1, []int{1, 1, 20, 224, 224}},
	}
	for _, c := range cases {
		cfg := narrow(c.stem)
		cfg.Classes, cfg.ClassNames = 3, DefaultClassNames(3)
		ctx, err := NewContext(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewRunner(testBackend(), ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		y, err := r.Run(randomInput(1, c.dims...))
		if err != nil {
			t.Fatal(err)
		}
		want := []int{c.dims[0], 3, c.dims[2], c.dims[3], c.dims[4]}
		if !slices.Equal(y.Shape().Dimensions, want) {
			t.Errorf("input %v: logits %v, want %v", c.dims, y.Shape().Dimensions, want)
		}
		for _, v := range flat(t, y) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("input %v: non-finite logits", c.dims)
			}
		}
	}
}

// TestRunnerErrors: wrong inputs and missing variables are errors, not panics.
func TestRunnerErrors(t *testing.T) {
	cfg := narrow(1)
	ctx, err := NewContext(cfg, 1, PartEncoder) // no decoder variables
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(testBackend(), ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(randomInput(1, 1, 2, 3, 3, 3)); err == nil || !strings.Contains(err.Error(), "want float32 [N, 1") {
		t.Errorf("2-channel input: %v", err)
	}
	if _, err := r.Run(randomInput(1, 1, 1, 3, 3, 3)); err == nil || !strings.Contains(err.Error(), "bridge.0.weight") {
		t.Errorf("missing decoder: %v", err)
	}
}

// TestResizeNearest compares the Gather resize with a direct loop.
func TestResizeNearest(t *testing.T) {
	in := randomInput(3, 2, 3, 3, 5, 4)
	ref := tensors.FromShape(randomInput(0, 1, 1, 5, 4, 9).Shape())
	ctx := context.New()
	got, err := context.ExecOnce(testBackend(), ctx, func(ctx *context.Context, x, r *graph.Node) *graph.Node {
		return NewGraphOps(ctx, x.Graph(), false, Options{}).ResizeNearestLike(x, r)
	}, in, ref)
	if err != nil {
		t.Fatal(err)
	}
	x := flat(t, in)
	y := flat(t, got)
	id, ih, iw := NearestIndices(3, 5), NearestIndices(5, 4), NearestIndices(4, 9)
	i := 0
	for n := range 2 {
		for c := range 3 {
			for d := range 5 {
				for h := range 4 {
					for w := range 9 {
						want := x[(((n*3+c)*3+id[d])*5+ih[h])*4+iw[w]]
						if y[i] != want {
							t.Fatalf("y[%d,%d,%d,%d,%d] = %v, want %v", n, c, d, h, w, y[i], want)
						}
						i++
					}
				}
			}
		}
	}
}

// TestBatchNormModes checks BatchNorm3d against PyTorch's formulas: batch
// statistics and the running-average update (momentum 0.1, unbiased
// variance) in training, running statistics at inference.
func TestBatchNormModes(t *testing.T) {
	const c = 3
	dims := []int{2, c, 2, 3, 4}
	x := randomInput(5, dims...)
	ctx := context.New()
	mctx := ctx.InAbsPath(Scope)
	gamma := []float32{1.5, 0.5, 2}
	beta := []float32{0.1, -0.2, 0.3}
	rm0 := []float32{0.3, -0.1, 0.2}
	rv0 := []float32{1.2, 0.8, 2.5}
	for name, v := range map[string][]float32{"bn.weight": gamma, "bn.bias": beta, "bn.running_mean": rm0, "bn.running_var": rv0} {
		mctx.VariableWithValue(name, tensors.FromFlatDataAndDimensions(slices.Clone(v), c))
	}
	run := func(training bool) []float32 {
		y, err := context.ExecOnce(testBackend(), ctx, func(ctx *context.Context, x *graph.Node) *graph.Node {
			return NewGraphOps(ctx, x.Graph(), training, Options{}).BatchNorm3d("bn", x, BNSpec{Channels: c})
		}, x)
		if err != nil {
			t.Fatal(err)
		}
		return flat(t, y)
	}
	xs := flat(t, x)
	per := dims[2] * dims[3] * dims[4]
	chanValues := func(ch int) []float64 {
		var v []float64
		for n := range dims[0] {
			for _, e := range xs[(n*c+ch)*per : (n*c+ch+1)*per] {
				v = append(v, float64(e))
			}
		}
		return v
	}
	// Inference: running statistics, nothing updated.
	y := run(false)
	for ch := range c {
		for i, v := range xs[ch*per : (ch+1)*per] { // batch 0
			want := (float64(v)-float64(rm0[ch]))/math.Sqrt(float64(rv0[ch])+1e-5)*float64(gamma[ch]) + float64(beta[ch])
			if math.Abs(float64(y[ch*per+i])-want) > 1e-5 {
				t.Fatalf("eval: channel %d: %v, want %v", ch, y[ch*per+i], want)
			}
		}
	}
	// Training: batch statistics, then the running averages move.
	y = run(true)
	rm, _, _ := Float32Value(ctx, "bn.running_mean")
	rv, _, _ := Float32Value(ctx, "bn.running_var")
	for ch := range c {
		v := chanValues(ch)
		var mean, vr float64
		for _, e := range v {
			mean += e
		}
		mean /= float64(len(v))
		for _, e := range v {
			vr += (e - mean) * (e - mean)
		}
		biased, unbiased := vr/float64(len(v)), vr/float64(len(v)-1)
		want := (float64(xs[ch*per]) - mean) / math.Sqrt(biased+1e-5) * float64(gamma[ch])
		want += float64(beta[ch])
		if math.Abs(float64(y[ch*per])-want) > 1e-5 {
			t.Errorf("train: channel %d: %v, want %v", ch, y[ch*per], want)
		}
		if w := 0.9*float64(rm0[ch]) + 0.1*mean; math.Abs(float64(rm[ch])-w) > 1e-6 {
			t.Errorf("running_mean[%d] = %v, want %v", ch, rm[ch], w)
		}
		if w := 0.9*float64(rv0[ch]) + 0.1*unbiased; math.Abs(float64(rv[ch])-w) > 1e-6 {
			t.Errorf("running_var[%d] = %v, want %v", ch, rv[ch], w)
		}
	}
}

// TestLoadStateDictErrors: missing tensors are listed, shape mismatches name
// the tensor and both shapes, and nothing changes on failure.
func TestLoadStateDictErrors(t *testing.T) {
	cfg := narrow(2)
	ctx, err := NewContext(cfg, 1, PartEncoder)
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := ParamSpecs(cfg)
	sd := &torchpth.StateDict{Tensors: map[string]*torchpth.Tensor{}}
	for _, s := range specs {
		if s.Part == PartEncoder {
			sd.Tensors[s.Name] = &torchpth.Tensor{DType: "float32", Shape: s.Shape, F32: make([]float32, s.Size())}
		}
	}
	before, _, _ := Float32Value(ctx, "layer1.0.conv1.0.weight")
	delete(sd.Tensors, "layer3.1.conv2.1.running_var")
	delete(sd.Tensors, "stem.1.bias")
	sd.Tensors["layer1.0.conv1.0.weight"].Shape = []int{2, 2, 3, 3, 4}
	err = LoadStateDict(ctx, cfg, sd, PartEncoder)
	for _, want := range []string{"2 tensors missing", "stem.1.bias", "layer3.1.conv2.1.running_var",
		"layer1.0.conv1.0.weight has shape [2 2 3 3 4] in the file, the model needs [2 2 3 3 3]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	after, _, _ := Float32Value(ctx, "layer1.0.conv1.0.weight")
	if !slices.Equal(before, after) {
		t.Error("a failed load changed the variables")
	}
}

// TestSumRGB: a 1-channel stem from a 3-channel kernel gives the same
// output as the 3-channel stem on the CT repeated three times.
func TestSumRGB(t *testing.T) {
	w := []float32{1, 2, 3, 4, 5, 6} // [1, 3, 1, 1, 2]
	if got := sumRGB(w, []int{1, 3, 1, 1, 2}); !slices.Equal(got, []float32{9, 12}) {
		t.Errorf("sumRGB = %v, want [9 12]", got)
	}
}
