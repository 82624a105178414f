package train

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/model"
)

// snapshot copies every model variable.
func snapshot(t *testing.T, ctx *mlctx.Context) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if v.Scope() == model.Scope {
			out[v.Name()] = tensors.MustCopyFlatData[float32](v.MustValue())
		}
	}
	return out
}

// TestPhaseParams checks the parameter groups of the recipe's phases.
func TestPhaseParams(t *testing.T) {
	cfg := tinyConfig()
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := model.ParamSpecs(mcfg)
	kind := map[string]model.ParamSpec{}
	for _, s := range specs {
		kind[s.Name] = s
	}
	cfg.Phases[0].EncoderLRMult = 0.1
	for i, ph := range cfg.Phases {
		params, err := PhaseParams(ctx, mcfg, cfg, i)
		if err != nil {
			t.Fatal(err)
		}
		trained := map[string]Param{}
		for _, p := range params {
			trained[p.Var.Name()] = p
		}
		for _, s := range specs {
			p, ok := trained[s.Name]
			enc := s.Part == model.PartEncoder
			bn := s.Kind == model.KindBNWeight || s.Kind == model.KindBNBias
			want := s.Trainable() && (!enc || !ph.FreezeEncoder || bn)
			if ok != want {
				t.Errorf("phase %s: %s trained = %v, want %v", ph.Name, s.Name, ok, want)
				continue
			}
			if !ok {
				continue
			}
			if wantWD := map[bool]float64{true: cfg.Optimizer.WeightDecay, false: 0}[s.Kind == model.KindConvWeight]; p.WeightDecay != wantWD {
				t.Errorf("phase %s: %s weight decay %v, want %v", ph.Name, s.Name, p.WeightDecay, wantWD)
			}
			if wantMult := map[bool]float64{true: ph.EncoderLRMult, false: 1}[enc]; p.LRMult != wantMult {
				t.Errorf("phase %s: %s lr multiplier %v, want %v", ph.Name, s.Name, p.LRMult, wantMult)
			}
		}
	}
}

// TestFrozenEncoder runs phase-1 steps and checks that the encoder's
// convolutions are unchanged while its BatchNorm statistics move; with
// TrainFrozenBN (fastai's train_bn) its BatchNorm γ and β train, without it
// they stay too. Everything outside the encoder trains.
func TestFrozenEncoder(t *testing.T) {
	cases := tinyCases(2, 3)
	for _, trainBN := range []bool{true, false} {
		cfg := tinyConfig()
		cfg.Phases[0].TrainFrozenBN = trainBN
		mcfg, ctx, err := NewModel(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEngine(testBackend(), ctx, mcfg, cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, ctx)
		for _, c := range cases {
			b := Batch{Shape: [4]int{1, c.Grid[0], c.Grid[1], c.Grid[2]}, Image: c.Image, Mask: c.Mask}
			if _, _, err := e.Step(b, 1e-2, 0.9); err != nil {
				t.Fatal(err)
			}
		}
		after := snapshot(t, ctx)
		specs, _ := model.ParamSpecs(mcfg)
		for _, s := range specs {
			changed := !slices.Equal(before[s.Name], after[s.Name])
			enc := s.Part == model.PartEncoder
			bn := s.Kind == model.KindBNWeight || s.Kind == model.KindBNBias
			var want bool
			switch {
			case !s.Trainable():
				want = true // running statistics always move in training
			case enc && bn:
				want = trainBN
			case enc:
				want = false
			default:
				want = true
			}
			if changed != want {
				t.Errorf("train_frozen_bn %v: %s (%s) changed = %v, want %v", trainBN, s.Name, s.Kind, changed, want)
			}
		}
	}
}

// TestAccumulate: with accumulation the first batch of a window changes no
// parameter but stores its gradient, and the update of the window's last
// batch clears the accumulators.
func TestAccumulate(t *testing.T) {
	cfg := tinyConfig()
	cfg.Optimizer.Accumulate = 2
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The gradient of the first batch, computed on a copy of the model.
	ref, err := ctx.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c := tinyCases(2, 4)
	batch := func(i int) Batch {
		return Batch{Shape: [4]int{1, tinyGrid[0], tinyGrid[1], tinyGrid[2]}, Image: c[i].Image, Mask: c[i].Mask}
	}
	e, err := NewEngine(testBackend(), ctx, mcfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	name := e.Params()[len(e.Params())-1].Var.Name()
	x, y := batch(0).tensors()
	want, err := mlctx.ExecOnce(testBackend(), ref, func(ctx *mlctx.Context, x, y *graph.Node) *graph.Node {
		ctx.SetTraining(x.Graph(), true)
		loss := Loss(model.Forward(ctx, mcfg, x, model.Options{}), y, cfg.Loss).Total
		return graph.Gradient(loss, model.Variable(ctx, name).ValueGraph(x.Graph()))[0]
	}, x, y)
	if err != nil {
		t.Fatal(err)
	}

	before := snapshot(t, ctx)
	if _, err := e.Accumulate(batch(0)); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, ctx)
	for _, p := range e.Params() {
		if !slices.Equal(before[p.Var.Name()], after[p.Var.Name()]) {
			t.Errorf("%s changed without an update", p.Var.Name())
		}
	}
	acc := tensors.MustCopyFlatData[float32](ctx.GetVariableByScopeAndName(ScopeAccum, name).MustValue())
	wantG := tensors.MustCopyFlatData[float32](want)
	for i := range acc {
		if math.Abs(float64(acc[i]-wantG[i])) > 1e-6*math.Max(1, math.Abs(float64(wantG[i]))) {
			t.Fatalf("accumulated gradient of %s[%d] = %v, want %v", name, i, acc[i], wantG[i])
		}
	}
	if _, _, err := e.Step(batch(1), 1e-3, 0.9); err != nil {
		t.Fatal(err)
	}
	for _, v := range tensors.MustCopyFlatData[float32](ctx.GetVariableByScopeAndName(ScopeAccum, name).MustValue()) {
		if v != 0 {
			t.Fatal("accumulators not cleared by the update")
		}
	}
	if slices.Equal(after[name], snapshot(t, ctx)[name]) {
		t.Errorf("%s did not change at the update", name)
	}
}

// TestBFloat16Refused: the CPU backends refuse bfloat16 training with a
// message that says what to do.
func TestBFloat16Refused(t *testing.T) {
	cfg := tinyConfig()
	cfg.Backend.DType = DTypeBFloat16
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := simplego.New("")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []backends.Backend{testBackend(), sg} {
		_, err := NewEngine(b, ctx, mcfg, cfg)
		if err == nil || !strings.Contains(err.Error(), "bfloat16") || !strings.Contains(err.Error(), "xla") {
			t.Errorf("%s: bfloat16 not refused clearly: %v", b.Name(), err)
		}
	}
}

// TestComputeDType checks the mixed-precision plumbing of model.Options.DType
// with a compute dtype the CPU backend computes exactly: float64 from the
// float32 variables. Loss and gradients (reaching the float32 variables
// through the conversions, BatchNorm in float32) must match the float32
// network's.
func TestComputeDType(t *testing.T) {
	cfg := tinyConfig()
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := tinyCases(1, 5)[0]
	x, y := Batch{Shape: [4]int{1, tinyGrid[0], tinyGrid[1], tinyGrid[2]}, Image: c.Image, Mask: c.Mask}.tensors()
	names := []string{"out.1.weight", "head_up.bias", "b2.conv1.0.weight", "layer3.0.downsample.1.bias", "stem.0.weight"}
	run := func(dt dtypes.DType) [][]float32 {
		exec, err := mlctx.NewExec(testBackend(), ctx, func(ctx *mlctx.Context, x, y *graph.Node) []*graph.Node {
			ctx.SetTraining(x.Graph(), true)
			opt := model.Options{}
			if dt != dtypes.Float32 {
				x, opt.DType = graph.ConvertDType(x, dt), dt
			}
			loss := Loss(model.Forward(ctx, mcfg, x, opt), y, cfg.Loss).Total
			var vs []*graph.Node
			for _, n := range names {
				vs = append(vs, model.Variable(ctx, n).ValueGraph(x.Graph()))
			}
			return append([]*graph.Node{loss}, graph.Gradient(loss, vs...)...)
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(x, y)
		if err != nil {
			t.Fatal(err)
		}
		var r [][]float32
		for _, o := range out {
			if o.DType() != dtypes.Float32 {
				t.Fatalf("%s output, want float32 (loss and gradients of float32 variables)", o.DType())
			}
			r = append(r, tensors.MustCopyFlatData[float32](o))
		}
		return r
	}
	a, b := run(dtypes.Float32), run(dtypes.Float64)
	for i := range a {
		var num, den float64
		for j := range a[i] {
			d := float64(a[i][j]) - float64(b[i][j])
			num += d * d
			den += float64(a[i][j]) * float64(a[i][j])
		}
		label := "loss"
		if i > 0 {
			label = names[i-1]
		}
		if e := math.Sqrt(num / den); !(e < 1e-4) {
			t.Errorf("%s: float64 compute differs from float32 by %.2g (relative L2)", label, e)
		}
	}
}

// TestMaskClasses: a mask label outside the model's classes is refused
// with the case named (the loss would silently count it as no class); a
// three-class model named by model.class_names trains on labels 0..2; and
// class names that do not match the classes are refused.
func TestMaskClasses(t *testing.T) {
	c := tinyCases(1, 5)[0]
	mask := slices.Clone(c.Mask)
	mask[len(mask)/2] = 2
	b := Batch{Shape: [4]int{1, c.Grid[0], c.Grid[1], c.Grid[2]}, Image: c.Image, Mask: mask, Cases: []string{"case-a"}}
	_, two := tinyModel(t, 1)
	if _, _, err := two.Step(b, 1e-3, 0.9); err == nil || !strings.Contains(err.Error(), "mask label 2 (case case-a)") {
		t.Errorf("two classes, label 2: %v", err)
	}
	if _, err := two.Evaluate(b); err == nil {
		t.Error("Evaluate took label 2 on a two-class model")
	}

	cfg := tinyConfig()
	cfg.Model.Classes, cfg.Model.ClassNames = 3, []string{"background", "infiltrate", "lung"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mcfg.ClassNames, cfg.Model.ClassNames) {
		t.Errorf("class names %v", mcfg.ClassNames)
	}
	three, err := NewEngine(testBackend(), ctx, mcfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	loss, _, err := three.Step(b, 1e-3, 0.9)
	if err != nil || !(loss > 0) || math.IsInf(loss, 0) {
		t.Errorf("three classes: loss %v, %v", loss, err)
	}

	cfg.Model.ClassNames = []string{"background", "infiltrate"}
	if err := cfg.Validate(); err == nil {
		t.Error("two class names for three classes accepted")
	}
}
