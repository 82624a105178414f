package model

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// float64Context copies the model variables of ctx to a new context as
// float64, for finite differences that are not drowned by rounding.
func float64Context(t *testing.T, ctx *context.Context) *context.Context {
	out := context.New()
	for v := range ctx.IterVariables() {
		data := flat(t, v.MustValue())
		d64 := make([]float64, len(data))
		for i, x := range data {
			d64[i] = float64(x)
		}
		out.InAbsPath(v.Scope()).VariableWithValue(v.Name(), tensors.FromFlatDataAndDimensions(d64, v.Shape().Dimensions...)).
			SetTrainable(v.Trainable)
	}
	return out
}

func toFloat64(t *testing.T, x *tensors.Tensor) *tensors.Tensor {
	data := flat(t, x)
	d64 := make([]float64, len(data))
	for i, v := range data {
		d64[i] = float64(v)
	}
	return tensors.FromFlatDataAndDimensions(d64, x.Shape().Dimensions...)
}

// TestGradientCheck compares the gradients GoMLX derives through the whole
// network in training mode (batch statistics included) with central finite
// differences, in float64, at a tiny width, for parameters of every part
// of the decoder and of the encoder.
func TestGradientCheck(t *testing.T) {
	cfg := narrow(2)
	ctx32, err := NewContext(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	// Random BN affine parameters and a non-zero ResBlock γ, so that every
	// path carries gradient.
	for _, name := range []string{"res.c2.1.weight", "b2.skip_bn.weight", "out.1.weight"} {
		v := Variable(ctx32, name)
		n := v.Shape().Size()
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = 0.5 + float32(i%5)*0.2
		}
		v.MustSetValue(tensors.FromFlatDataAndDimensions(vals, n))
	}
	ctx := float64Context(t, ctx32)
	x := toFloat64(t, randomInput(4, 2, 1, 5, 12, 14))
	r := toFloat64(t, randomInput(9, 2, cfg.Classes, 5, 12, 14))
	checked := []string{"b1.up.0.weight", "b2.conv1.1.weight", "b3.skip_bn.bias", "head_up.bias",
		"res.c2.1.weight", "out.0.weight", "bridge.2.0.weight", "layer3.0.downsample.0.weight", "stem.0.weight"}

	lossOf := func(ctx *context.Context, x, r *graph.Node) *graph.Node {
		ops := NewGraphOps(ctx, x.Graph(), true, Options{})
		return graph.ReduceAllSum(graph.Mul(UNet[*graph.Node](ops, x, cfg), r))
	}
	gradExec, err := context.NewExec(testBackend(), ctx, func(ctx *context.Context, x, r *graph.Node) []*graph.Node {
		loss := lossOf(ctx, x, r)
		var params []*graph.Node
		for _, n := range checked {
			params = append(params, Variable(ctx, n).ValueGraph(x.Graph()))
		}
		return append([]*graph.Node{loss}, graph.Gradient(loss, params...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	lossExec, err := context.NewExec(testBackend(), ctx, func(ctx *context.Context, x, r *graph.Node) *graph.Node {
		return lossOf(ctx, x, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := gradExec.Exec(x, r)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range checked {
		grad := tensors.MustCopyFlatData[float64](outs[1+i])
		v := Variable(ctx, name)
		orig := tensors.MustCopyFlatData[float64](v.MustValue())
		// The element with the largest gradient, and one more.
		big := 0
		for j, g := range grad {
			if math.Abs(g) > math.Abs(grad[big]) {
				big = j
			}
		}
		for _, j := range []int{big, len(grad) / 3} {
			// A small step: with thousands of ReLUs, a larger one moves
			// some across their kink and the difference quotient with them
			// (at 1e-5 a few encoder entries were off by 1e-2). float64
			// keeps the quotient's rounding near 1e-6 of the loss's scale.
			const h = 1e-7
			at := func(delta float64) float64 {
				p := slices.Clone(orig)
				p[j] += delta
				v.MustSetValue(tensors.FromFlatDataAndDimensions(p, v.Shape().Dimensions...))
				l, err := lossExec.Exec(x, r)
				if err != nil {
					t.Fatal(err)
				}
				return l[0].Value().(float64)
			}
			num := (at(h) - at(-h)) / (2 * h)
			v.MustSetValue(tensors.FromFlatDataAndDimensions(orig, v.Shape().Dimensions...))
			scale := math.Max(math.Abs(num), math.Abs(grad[big])*1e-3)
			if e := math.Abs(grad[j]-num) / scale; !(e < 1e-4) {
				t.Errorf("%s[%d]: gradient %.8g, finite difference %.8g (relative error %.1e)", name, j, grad[j], num, e)
			} else {
				t.Logf("%-30s [%5d] gradient %+.6e  finite difference %+.6e", name, j, grad[j], num)
			}
		}
	}
}

// trainStep compiles one training step: forward in training mode, softmax
// cross-entropy against labels, Adam.
func trainStep(t *testing.T, ctx *context.Context, cfg Config, opt Options, lr float64) *context.Exec {
	adam := optimizers.Adam().LearningRate(lr).Done()
	e, err := context.NewExec(testBackend(), ctx, func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
		g := x.Graph()
		ctx.SetTraining(g, true)
		loss := crossEntropy(Forward(ctx, cfg, x, opt), labels, cfg.Classes)
		adam.UpdateGraph(ctx, g, loss)
		return loss
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// crossEntropy is the softmax cross-entropy of logits [N, C, D, H, W]
// against integer labels [N, D, H, W], averaged over voxels.
func crossEntropy(logits, labels *graph.Node, classes int) *graph.Node {
	logp := graph.LogSoftmax(logits, 1)
	onehot := graph.OneHot(labels, classes, logits.DType()) // [N, D, H, W, C]
	onehot = graph.TransposeAllDims(onehot, 0, 4, 1, 2, 3)
	return graph.Neg(graph.ReduceAllMean(graph.ReduceSum(graph.Mul(logp, onehot), 1)))
}

// tinyProblem is an input and labels: class 1 where a smoothed input is high.
func tinyProblem(dims ...int) (*tensors.Tensor, *tensors.Tensor) {
	x := randomInput(21, dims...)
	xs := tensors.MustCopyFlatData[float32](x)
	labels := make([]int32, len(xs))
	for i, v := range xs {
		if v > 0.3 {
			labels[i] = 1
		}
	}
	return x, tensors.FromFlatDataAndDimensions(labels, dims[0], dims[2], dims[3], dims[4])
}

// TestTrainingLowersLoss runs a few Adam steps on a tiny problem.
func TestTrainingLowersLoss(t *testing.T) {
	cfg := narrow(2)
	ctx, err := NewContext(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	step := trainStep(t, ctx, cfg, Options{}, 3e-2)
	x, labels := tinyProblem(2, 1, 6, 16, 16)
	var losses []float64
	for range 8 {
		out, err := step.Exec(x, labels)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, float64(out[0].Value().(float32)))
	}
	t.Logf("losses %.4f", losses)
	if !(losses[len(losses)-1] < 0.8*losses[0]) {
		t.Errorf("loss went from %.4f to %.4f", losses[0], losses[len(losses)-1])
	}
}

// TestFreezeEncoder: with the encoder frozen, training leaves its weights
// alone but updates its BatchNorm statistics, and trains the rest.
func TestFreezeEncoder(t *testing.T) {
	cfg := narrow(2)
	ctx, err := NewContext(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := ParamSpecs(cfg)
	before := map[string][]float32{}
	for _, s := range specs {
		before[s.Name], _, _ = Float32Value(ctx, s.Name)
	}
	step := trainStep(t, ctx, cfg, Options{FreezeEncoder: true}, 1e-2)
	x, labels := tinyProblem(2, 1, 6, 16, 16)
	for range 2 {
		if _, err := step.Exec(x, labels); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range specs {
		after, _, _ := Float32Value(ctx, s.Name)
		changed := !slices.Equal(before[s.Name], after)
		switch {
		case s.Part == PartEncoder && s.Trainable() && changed:
			t.Errorf("frozen %s changed", s.Name)
		case !s.Trainable() && !changed:
			t.Errorf("BatchNorm statistic %s did not update", s.Name)
		case s.Part != PartEncoder && s.Trainable() && !changed && !s.ZeroInit:
			t.Errorf("%s did not train", s.Name)
		}
	}
}

// TestTrainEvalModes: a training-mode forward updates the running
// statistics and depends on the batch; inference changes nothing and is
// per-example.
func TestTrainEvalModes(t *testing.T) {
	cfg := narrow(2)
	ctx, err := NewContext(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	x := randomInput(8, 2, 1, 4, 9, 11)
	run := func(training bool, x *tensors.Tensor) []float32 {
		y, err := context.ExecOnce(testBackend(), ctx, func(ctx *context.Context, x *graph.Node) *graph.Node {
			ctx.SetTraining(x.Graph(), training)
			return Forward(ctx, cfg, x, Options{})
		}, x)
		if err != nil {
			t.Fatal(err)
		}
		return flat(t, y)
	}
	rm0, _, _ := Float32Value(ctx, "b1.conv1.1.running_mean")
	e1 := run(false, x)
	if rm, _, _ := Float32Value(ctx, "b1.conv1.1.running_mean"); !slices.Equal(rm, rm0) {
		t.Fatal("inference changed a running mean")
	}
	// Inference on the first example alone gives its slice of the batch.
	first := tensors.FromFlatDataAndDimensions(flat(t, x)[:4*9*11], 1, 1, 4, 9, 11)
	if e0 := run(false, first); relL2(e0, e1[:len(e0)]) > 1e-6 {
		t.Error("inference output of an example depends on the batch")
	}
	tr := run(true, x)
	if rm, _, _ := Float32Value(ctx, "b1.conv1.1.running_mean"); slices.Equal(rm, rm0) {
		t.Error("training did not update a running mean")
	}
	if relL2(tr, e1) < 1e-3 {
		t.Error("training mode gives the inference output: batch statistics unused")
	}
	if dt := dtypes.Float32; Variable(ctx, "out.1.running_var").DType() != dt {
		t.Error("running statistics changed dtype")
	}
}
