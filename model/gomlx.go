package model

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/images"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Scope is the GoMLX context scope of the model's variables. Each variable
// is named by its PyTorch name ("layer1.0.conv1.0.weight", "out.1.running_var",
// ...), so Variable(ctx, name) and ParamSpecs map one to one. Other scopes
// (an optimiser's moments and step, say) are the trainer's; Save keeps them.
const Scope = "/model"

// BatchNorm constants, PyTorch's defaults.
const (
	BNEps      = 1e-5
	BNMomentum = 0.1
)

// Options change how Forward builds the graph.
type Options struct {
	// FreezeEncoder stops gradients at the encoder's parameters (stem.*,
	// layer1..4.*), so an optimiser leaves them unchanged (given no weight
	// decay on them: a trainer should also exclude them, see ParamGroups).
	// Their BatchNorm running statistics still update in training, as with
	// fastai's train_bn.
	FreezeEncoder bool
	// DType is the dtype the network computes in (mixed precision, e.g.
	// bfloat16): x must have it, the float32 variables are converted as
	// they are read (gradients flow back to them in float32), BatchNorm
	// computes its statistics and running averages in float32, and the
	// logits come out in DType. The zero value (dtypes.InvalidDType)
	// computes in the variables' dtype.
	DType dtypes.DType
	// BNMomentum, when above 0, replaces BNMomentum in training mode: 1
	// makes every running statistic the batch's own, which is how
	// train.Engine.PreciseBN reads each layer's batch statistics.
	BNMomentum float64
}

// Forward builds the network on x ([N, InChannels, D, H, W], float32) with
// the variables of ctx under Scope, in training mode if ctx.IsTraining says
// so for x's graph (GoMLX's trainers set it): batch statistics and running
// average updates in training, running statistics otherwise. It returns the
// logits [N, Classes, D, H, W]. It panics (GoMLX's way inside graph building;
// context.Exec returns it as an error) on a missing or misshapen variable.
func Forward(ctx *context.Context, cfg Config, x *graph.Node, opt Options) *graph.Node {
	ops := NewGraphOps(ctx, x.Graph(), ctx.IsTraining(x.Graph()), opt)
	return UNet[*graph.Node](ops, x, cfg)
}

// GraphOps implements Ops for GoMLX: tensors are *graph.Node, parameters are
// the context variables under Scope.
type GraphOps struct {
	ctx      *context.Context
	g        *graph.Graph
	training bool
	opt      Options
}

// NewGraphOps returns the GoMLX Ops building into g with the variables of
// ctx, in training mode if training.
func NewGraphOps(ctx *context.Context, g *graph.Graph, training bool, opt Options) *GraphOps {
	return &GraphOps{ctx: ctx, g: g, training: training, opt: opt}
}

var _ Ops[*graph.Node] = (*GraphOps)(nil)

// Variable returns the model variable of the given PyTorch name, or nil.
func Variable(ctx *context.Context, name string) *context.Variable {
	return ctx.GetVariableByScopeAndName(Scope, name)
}

// variable returns the named variable, checking its shape.
func (o *GraphOps) variable(name string, dims ...int) *context.Variable {
	v := Variable(o.ctx, name)
	if v == nil {
		panic(fmt.Errorf("model: variable %q is missing from the context (scope %s)", name, Scope))
	}
	// Float32 is the model's dtype; Float64 serves gradient checks.
	if (v.DType() != dtypes.Float32 && v.DType() != dtypes.Float64) || !slices.Equal(v.Shape().Dimensions, dims) {
		panic(fmt.Errorf("model: variable %q is %s, want float32%v", name, v.Shape(), dims))
	}
	return v
}

// param returns the graph value of a trained parameter in the compute dtype.
func (o *GraphOps) param(name string, dims ...int) *graph.Node {
	return o.toCompute(o.paramStored(name, dims...))
}

// paramStored returns the graph value of a trained parameter in the
// variable's own dtype.
func (o *GraphOps) paramStored(name string, dims ...int) *graph.Node {
	n := o.variable(name, dims...).ValueGraph(o.g)
	if o.opt.FreezeEncoder && IsEncoderParam(name) {
		n = graph.StopGradient(n)
	}
	return n
}

// toCompute converts n to the compute dtype, if one is set.
func (o *GraphOps) toCompute(n *graph.Node) *graph.Node {
	if o.opt.DType != dtypes.InvalidDType && n.DType() != o.opt.DType {
		return graph.ConvertDType(n, o.opt.DType)
	}
	return n
}

// perChannel reshapes a [C] vector to broadcast over NCDHW.
func perChannel(v *graph.Node) *graph.Node {
	return graph.Reshape(v, 1, v.Shape().Dimensions[0], 1, 1, 1)
}

// Conv3d implements Ops with graph.Convolve: channels first, OIDHW kernel,
// explicit strides, dilations (1) and padding.
func (o *GraphOps) Conv3d(name string, x *graph.Node, spec ConvSpec) *graph.Node {
	k := spec.Kernel
	w := o.param(name+".weight", spec.Out, spec.In, k[0], k[1], k[2])
	p := spec.Padding
	y := graph.Convolve(x, w).
		ChannelsAxis(images.ChannelsFirst).
		StridePerAxis(spec.Stride[:]...).
		DilationPerAxis(1, 1, 1).
		PaddingPerDim([][2]int{{p[0], p[0]}, {p[1], p[1]}, {p[2], p[2]}}).
		Done()
	if spec.Bias {
		// The bias' gradient sums over every voxel: add it in the
		// variable's dtype so that sum is not taken in a narrower one.
		b := o.paramStored(name+".bias", spec.Out)
		if y.DType() != b.DType() {
			y = o.toCompute(graph.Add(graph.ConvertDType(y, b.DType()), perChannel(b)))
		} else {
			y = graph.Add(y, perChannel(b))
		}
	}
	return y
}

// BatchNorm3d implements Ops with PyTorch's semantics: in training, batch
// mean and (biased) variance over N, D, H, W normalise, gradients flow
// through them, and the running averages move by BNMomentum towards the
// batch mean and the unbiased variance; otherwise the running statistics
// normalise. 1/√(var+ε) is written as a division (no Rsqrt, whose gradient
// GoMLX lacks). In training it computes in the variables' dtype (float32)
// even when the network computes in a narrower one.
func (o *GraphOps) BatchNorm3d(name string, x *graph.Node, spec BNSpec) *graph.Node {
	c := spec.Channels
	gamma := o.paramStored(name+".weight", c)
	beta := o.paramStored(name+".bias", c)
	rmVar := o.variable(name+".running_mean", c)
	rvVar := o.variable(name+".running_var", c)
	if !o.training {
		rm, rv := rmVar.ValueGraph(o.g), rvVar.ValueGraph(o.g)
		scale := graph.Div(gamma, graph.Sqrt(graph.AddScalar(rv, BNEps)))
		shift := graph.Sub(beta, graph.Mul(rm, scale))
		return graph.Add(graph.Mul(x, perChannel(o.toCompute(scale))), perChannel(o.toCompute(shift)))
	}
	d := x.Shape().Dimensions
	n := d[0] * d[2] * d[3] * d[4]
	if n < 2 {
		panic(fmt.Errorf("model: %s: batch statistics need more than one value per channel in training, input is %v", name, d))
	}
	// In a narrower compute dtype the whole normalisation runs in the
	// variables' dtype: the reductions of the backward pass (through the
	// batch mean and variance, and for γ and β) cancel each other closely
	// and would be lost in bfloat16 sums.
	xs := x
	if x.DType() != gamma.DType() {
		xs = graph.ConvertDType(x, gamma.DType())
	}
	mean := graph.ReduceMean(xs, 0, 2, 3, 4)
	xc := graph.Sub(xs, perChannel(mean))
	variance := graph.ReduceMean(graph.Square(xc), 0, 2, 3, 4)
	inv := graph.Div(graph.ScalarOne(o.g, gamma.DType()), graph.Sqrt(graph.AddScalar(variance, BNEps)))
	y := o.toCompute(graph.Add(graph.Mul(xc, perChannel(graph.Mul(inv, gamma))), perChannel(beta)))

	unbiased := graph.MulScalar(graph.StopGradient(variance), float64(n)/float64(n-1))
	m := BNMomentum
	if o.opt.BNMomentum > 0 {
		m = o.opt.BNMomentum
	}
	rmVar.SetValueGraph(graph.Add(
		graph.MulScalar(rmVar.ValueGraph(o.g), 1-m),
		graph.MulScalar(graph.StopGradient(mean), m)))
	rvVar.SetValueGraph(graph.Add(
		graph.MulScalar(rvVar.ValueGraph(o.g), 1-m),
		graph.MulScalar(unbiased, m)))
	return y
}

// ReLU implements Ops.
func (o *GraphOps) ReLU(x *graph.Node) *graph.Node { return graph.MaxScalar(x, 0) }

// Add implements Ops.
func (o *GraphOps) Add(a, b *graph.Node) *graph.Node { return graph.Add(a, b) }

// Concat implements Ops.
func (o *GraphOps) Concat(xs ...*graph.Node) *graph.Node { return graph.Concatenate(xs, 1) }

// ResizeNearestLike implements Ops with one Gather over the spatial axes
// moved in front (its gradient is a ScatterSum), at the indices of
// NearestIndices. graph.Interpolate is not used: its gradient is wrong in
// GoMLX v0.26.0.
func (o *GraphOps) ResizeNearestLike(x, ref *graph.Node) *graph.Node {
	xd, rd := x.Shape().Dimensions, ref.Shape().Dimensions
	if slices.Equal(xd[2:], rd[2:]) {
		return x
	}
	out := [3]int{rd[2], rd[3], rd[4]}
	var idx [3][]int
	for a := range 3 {
		idx[a] = NearestIndices(xd[2+a], out[a])
	}
	flat := make([]int32, 0, out[0]*out[1]*out[2]*3)
	for _, i := range idx[0] {
		for _, j := range idx[1] {
			for _, k := range idx[2] {
				flat = append(flat, int32(i), int32(j), int32(k))
			}
		}
	}
	indices := graph.Const(o.g, tensors.FromFlatDataAndDimensions(flat, out[0], out[1], out[2], 3))
	t := graph.TransposeAllDims(x, 2, 3, 4, 0, 1) // [D, H, W, N, C]
	y := graph.Gather(t, indices)                 // [D', H', W', N, C]
	return graph.TransposeAllDims(y, 3, 4, 0, 1, 2)
}

// Runner evaluates a model in inference mode (running BatchNorm statistics)
// on one backend, compiling once per input shape.
type Runner struct {
	cfg  Config
	exec *context.Exec
}

// NewRunner prepares inference with the model variables of ctx.
func NewRunner(backend backends.Backend, ctx *context.Context, cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e, err := context.NewExec(backend, ctx, func(ctx *context.Context, x *graph.Node) *graph.Node {
		return Forward(ctx, cfg, x, Options{})
	})
	if err != nil {
		return nil, fmt.Errorf("model: preparing inference: %w", err)
	}
	return &Runner{cfg: cfg, exec: e}, nil
}

// Run returns the logits [N, Classes, D, H, W] of x [N, InChannels, D, H, W]
// (float32).
func (r *Runner) Run(x *tensors.Tensor) (*tensors.Tensor, error) {
	s := x.Shape()
	if s.DType != dtypes.Float32 || s.Rank() != 5 || s.Dimensions[1] != r.cfg.InChannels {
		return nil, fmt.Errorf("model: input is %s, want float32 [N, %d, D, H, W]", s, r.cfg.InChannels)
	}
	for _, d := range s.Dimensions {
		if d < 1 {
			return nil, fmt.Errorf("model: input is %s, an empty tensor", s)
		}
	}
	out, err := r.exec.Exec(x)
	if err != nil {
		return nil, fmt.Errorf("model: inference: %w", err)
	}
	return out[0], nil
}
