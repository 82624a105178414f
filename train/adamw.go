package train

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// Scopes of the trainer's variables in the GoMLX context, beside the
// model's (model.Scope). All are saved in checkpoints; each variable is
// named by the PyTorch name of the parameter it belongs to.
const (
	ScopeMoment1 = "/adamw/m1"   // AdamW's gradient average (fastai's grad_avg)
	ScopeMoment2 = "/adamw/m2"   // AdamW's squared-gradient average (sqr_avg)
	ScopeStep    = "/adamw/step" // AdamW's per-parameter update count (float32 scalar)
	ScopeAccum   = "/accum"      // gradients summed over an accumulation window
)

// Param is a variable the optimiser updates, with its learning-rate
// multiplier and its decoupled weight decay.
type Param struct {
	Var         *mlctx.Variable
	LRMult      float64
	WeightDecay float64
}

// AdamW is fastai's Adam with decoupled weight decay (true_wd), which is
// PyTorch's AdamW: for each parameter p with gradient g, at its own step t
// (counted from its first update, as fastai's per-parameter state does),
//
//	p ← p·(1 − lr·wd)
//	m ← β1·m + (1 − β1)·g
//	v ← β2·v + (1 − β2)·g²
//	p ← p − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + eps)
//
// with lr and β1 given per update (the schedule moves them) and lr scaled
// by the parameter's LRMult. The state lives in context variables under
// ScopeMoment1, ScopeMoment2 and ScopeStep, so it is saved with the model.
type AdamW struct {
	Beta2, Eps float64
}

// InitState creates zero optimiser state for every variable in params that
// has none yet (a loaded checkpoint's state is kept).
func InitState(ctx *mlctx.Context, vars []*mlctx.Variable) error {
	for _, v := range vars {
		if v.DType() != dtypes.Float32 {
			return fmt.Errorf("train: optimiser: %s is %s, want float32", v.ScopeAndName(), v.DType())
		}
		for _, scope := range []string{ScopeMoment1, ScopeMoment2} {
			if err := ensureZeros(ctx, scope, v.Name(), v.Shape()); err != nil {
				return err
			}
		}
		if err := ensureZeros(ctx, ScopeStep, v.Name(), shapes.Make(dtypes.Float32)); err != nil {
			return err
		}
	}
	return nil
}

// ensureZeros creates scope/name as a zero tensor of shape s (not
// trainable) unless it exists, in which case its shape must be s.
func ensureZeros(ctx *mlctx.Context, scope, name string, s shapes.Shape) error {
	if v := ctx.GetVariableByScopeAndName(scope, name); v != nil {
		if !v.Shape().Equal(s) {
			return fmt.Errorf("train: %s is %s, want %s", v.ScopeAndName(), v.Shape(), s)
		}
		return nil
	}
	ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, tensors.FromShape(s)).SetTrainable(false)
	return nil
}

// stateVar returns an optimiser state variable, panicking (GoMLX's way
// inside graph building) if InitState did not create it.
func stateVar(ctx *mlctx.Context, scope, name string) *mlctx.Variable {
	v := ctx.GetVariableByScopeAndName(scope, name)
	if v == nil {
		panic(fmt.Errorf("train: optimiser state %s/%s missing: InitState not called", scope, name))
	}
	return v
}

// Update builds one AdamW update of params with their gradients grads
// (float32, same order). lr and beta1 are float32 scalars of the graph.
func (a AdamW) Update(ctx *mlctx.Context, params []Param, grads []*graph.Node, lr, beta1 *graph.Node) {
	if len(params) != len(grads) {
		panic(fmt.Errorf("train: AdamW: %d parameters, %d gradients", len(params), len(grads)))
	}
	g := lr.Graph()
	beta2 := graph.Scalar(g, dtypes.Float32, a.Beta2)
	for i, p := range params {
		name := p.Var.Name()
		stepVar := stateVar(ctx, ScopeStep, name)
		m1Var := stateVar(ctx, ScopeMoment1, name)
		m2Var := stateVar(ctx, ScopeMoment2, name)

		grad := grads[i]
		step := graph.AddScalar(stepVar.ValueGraph(g), 1)
		stepVar.SetValueGraph(step)
		m1 := graph.Add(graph.Mul(beta1, m1Var.ValueGraph(g)), graph.Mul(graph.OneMinus(beta1), grad))
		m2 := graph.Add(graph.Mul(beta2, m2Var.ValueGraph(g)), graph.Mul(graph.OneMinus(beta2), graph.Square(grad)))
		m1Var.SetValueGraph(m1)
		m2Var.SetValueGraph(m2)
		debias1 := graph.OneMinus(graph.Pow(beta1, step))
		debias2 := graph.OneMinus(graph.Pow(beta2, step))

		lrp := lr
		if p.LRMult != 1 {
			lrp = graph.MulScalar(lr, p.LRMult)
		}
		value := p.Var.ValueGraph(g)
		if p.WeightDecay > 0 {
			value = graph.Mul(value, graph.OneMinus(graph.MulScalar(lrp, p.WeightDecay)))
		}
		denom := graph.AddScalar(graph.Sqrt(graph.Div(m2, debias2)), a.Eps)
		stepDir := graph.Div(graph.Mul(graph.Div(lrp, debias1), m1), denom)
		p.Var.SetValueGraph(graph.Sub(value, stepDir))
	}
}

// GlobalNorm is the L2 norm of all gradients together, in float32.
func GlobalNorm(grads []*graph.Node) *graph.Node {
	var sum *graph.Node
	for _, gr := range grads {
		s := graph.ReduceAllSum(graph.Square(gr))
		if sum == nil {
			sum = s
		} else {
			sum = graph.Add(sum, s)
		}
	}
	return graph.Sqrt(sum)
}

// ClipByGlobalNorm scales grads by min(1, maxNorm/(norm + 1e-6)), as
// PyTorch's clip_grad_norm_ does, given their global norm.
func ClipByGlobalNorm(grads []*graph.Node, norm *graph.Node, maxNorm float64) []*graph.Node {
	scale := graph.MinScalar(graph.Div(graph.Scalar(norm.Graph(), dtypes.Float32, maxNorm), graph.AddScalar(norm, 1e-6)), 1)
	out := make([]*graph.Node, len(grads))
	for i, gr := range grads {
		out[i] = graph.Mul(gr, scale)
	}
	return out
}
