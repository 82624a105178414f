package train

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/engine/covcpu"
	"github.com/covseg/covseg/model"
)

// Engine runs the compiled training and evaluation steps of one model on
// one backend. Which parameters train (and at which learning-rate
// multiplier and weight decay) is set per phase with SetPhase.
type Engine struct {
	backend backends.Backend
	ctx     *mlctx.Context
	mcfg    model.Config
	cfg     Config
	dtype   dtypes.DType
	adamw   AdamW

	phase     int
	params    []Param
	accExec   *mlctx.Exec // forward + backward, gradients summed into ScopeAccum
	stepExec  *mlctx.Exec // forward + backward + AdamW update
	evalExec  *mlctx.Exec // inference-mode loss and Dice counts
	bnExec    *mlctx.Exec // training-mode forward that leaves batch statistics (PreciseBN)
	firstRuns map[*mlctx.Exec]bool
}

// NewEngine prepares training of the model in ctx (variables under
// model.Scope, as model.NewContext or model.Load make them): it adds zero
// optimiser state (and gradient accumulators when cfg.Optimizer.Accumulate
// > 1) for every trainable parameter that has none, and selects phase 0.
func NewEngine(backend backends.Backend, ctx *mlctx.Context, mcfg model.Config, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := mcfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Loss.DiceClass >= mcfg.Classes {
		return nil, fmt.Errorf("train: loss.dice_class %d, but the model has %d classes", cfg.Loss.DiceClass, mcfg.Classes)
	}
	dtype := dtypes.Float32
	if cfg.Backend.DType == DTypeBFloat16 {
		dtype = dtypes.BFloat16
		if err := checkBFloat16(backend); err != nil {
			return nil, err
		}
	}
	groups, err := model.Groups(ctx, mcfg)
	if err != nil {
		return nil, err
	}
	all := allVars(groups)
	if err := InitState(ctx, all); err != nil {
		return nil, err
	}
	if cfg.Optimizer.Accumulate > 1 {
		for _, v := range all {
			if err := ensureZeros(ctx, ScopeAccum, v.Name(), v.Shape()); err != nil {
				return nil, err
			}
		}
	}
	e := &Engine{
		backend: backend, ctx: ctx, mcfg: mcfg, cfg: cfg, dtype: dtype,
		adamw: AdamW{Beta2: cfg.Optimizer.Beta2, Eps: cfg.Optimizer.Eps},
		phase: -1, firstRuns: map[*mlctx.Exec]bool{},
	}
	if err := e.SetPhase(0); err != nil {
		return nil, err
	}
	return e, nil
}

// checkBFloat16 refuses bfloat16 training on backends that cannot do it
// usefully. simplego (and covseg's CPU adapter over it) runs bfloat16
// graphs, but 6 times slower than float32 and with its convolution
// gradients accumulated in bfloat16: on an 8x32x32 test case the gradients
// of the deeper layers came out 40 to 60 % off their float32 values.
func checkBFloat16(b backends.Backend) error {
	switch b.String() {
	case covcpu.Name, simplego.BackendName:
		return fmt.Errorf("train: backend.dtype bfloat16 needs an XLA backend (GOMLX_BACKEND=xla:cuda or xla:/abs/path/pjrt_c_api_cuda_plugin.so): "+
			"the CPU backend %q computes bfloat16 slower than float32 and sums convolution gradients in bfloat16, which ruins them; use backend.dtype float32", b.Name())
	}
	if !b.Capabilities().DTypes[dtypes.BFloat16] {
		return fmt.Errorf("train: backend %s has no bfloat16: use backend.dtype float32", b.Name())
	}
	return nil
}

func allVars(g model.ParamGroups) []*mlctx.Variable {
	var out []*mlctx.Variable
	for _, vs := range [][]*mlctx.Variable{g.Encoder, g.EncoderNoDecay, g.Rest, g.RestNoDecay} {
		out = append(out, vs...)
	}
	return out
}

// PhaseParams lists the parameters phase i of cfg trains: every trainable
// model parameter except, with FreezeEncoder, the encoder's (but its
// BatchNorm γ and β with TrainFrozenBN), with the phase's encoder
// learning-rate multiplier and weight decay on convolution weights only
// (on all with DecayBNAndBias).
func PhaseParams(ctx *mlctx.Context, mcfg model.Config, cfg Config, i int) ([]Param, error) {
	if i < 0 || i >= len(cfg.Phases) {
		return nil, fmt.Errorf("train: phase %d of %d", i, len(cfg.Phases))
	}
	ph := cfg.Phases[i]
	g, err := model.Groups(ctx, mcfg)
	if err != nil {
		return nil, err
	}
	wd := cfg.Optimizer.WeightDecay
	noWD := 0.0
	if cfg.Optimizer.DecayBNAndBias {
		noWD = wd
	}
	var out []Param
	add := func(vs []*mlctx.Variable, mult, decay float64) {
		for _, v := range vs {
			out = append(out, Param{Var: v, LRMult: mult, WeightDecay: decay})
		}
	}
	if !ph.FreezeEncoder {
		add(g.Encoder, ph.EncoderLRMult, wd)
	}
	if !ph.FreezeEncoder || ph.TrainFrozenBN {
		add(g.EncoderNoDecay, ph.EncoderLRMult, noWD)
	}
	add(g.Rest, 1, wd)
	add(g.RestNoDecay, 1, noWD)
	return out, nil
}

// SetPhase selects the parameters phase i trains and compiles its steps
// (lazily, at their first use).
func (e *Engine) SetPhase(i int) error {
	if i == e.phase {
		return nil
	}
	params, err := PhaseParams(e.ctx, e.mcfg, e.cfg, i)
	if err != nil {
		return err
	}
	e.phase, e.params = i, params
	if e.cfg.Optimizer.Accumulate > 1 {
		if e.accExec, err = mlctx.NewExec(e.backend, e.ctx, e.accumulateGraph); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if e.stepExec, err = mlctx.NewExec(e.backend, e.ctx, e.stepGraph); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if e.evalExec == nil {
		if e.evalExec, err = mlctx.NewExec(e.backend, e.ctx, e.evalGraph); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	return nil
}

// Params returns the parameters the current phase trains.
func (e *Engine) Params() []Param { return e.params }

// ResetOptimizer zeroes the optimiser state (moments, step counts) and the
// gradient accumulators.
func (e *Engine) ResetOptimizer() error {
	for v := range e.ctx.IterVariables() {
		switch v.Scope() {
		case ScopeMoment1, ScopeMoment2, ScopeStep, ScopeAccum:
			if err := v.SetValue(tensors.FromShape(v.Shape())); err != nil {
				return fmt.Errorf("train: resetting %s: %w", v.ScopeAndName(), err)
			}
		}
	}
	return nil
}

// forward returns the training or inference logits of x [B, 1, D, H, W]
// (float32) in the compute dtype.
func (e *Engine) forward(ctx *mlctx.Context, x *graph.Node, training bool) *graph.Node {
	ctx.SetTraining(x.Graph(), training)
	opt := model.Options{}
	if e.dtype != dtypes.Float32 {
		x = graph.ConvertDType(x, e.dtype)
		opt.DType = e.dtype
	}
	return model.Forward(ctx, e.mcfg, x, opt)
}

// gradients builds the training loss of a batch and its gradients with
// respect to the phase's parameters, plus what the accumulators held.
func (e *Engine) gradients(ctx *mlctx.Context, x, y *graph.Node) (*graph.Node, []*graph.Node) {
	g := x.Graph()
	loss := Loss(e.forward(ctx, x, true), y, e.cfg.Loss).Total
	nodes := make([]*graph.Node, len(e.params))
	for i, p := range e.params {
		nodes[i] = p.Var.ValueGraph(g)
	}
	grads := graph.Gradient(loss, nodes...)
	if e.cfg.Optimizer.Accumulate > 1 {
		for i, p := range e.params {
			acc := stateVar(ctx, ScopeAccum, p.Var.Name())
			grads[i] = graph.Add(grads[i], acc.ValueGraph(g))
		}
	}
	return loss, grads
}

func (e *Engine) accumulateGraph(ctx *mlctx.Context, x, y *graph.Node) *graph.Node {
	loss, grads := e.gradients(ctx, x, y)
	for i, p := range e.params {
		stateVar(ctx, ScopeAccum, p.Var.Name()).SetValueGraph(grads[i])
	}
	return loss
}

func (e *Engine) stepGraph(ctx *mlctx.Context, x, y, lr, beta1 *graph.Node) []*graph.Node {
	loss, grads := e.gradients(ctx, x, y)
	if e.cfg.Optimizer.Accumulate > 1 {
		for _, p := range e.params {
			acc := stateVar(ctx, ScopeAccum, p.Var.Name())
			acc.SetValueGraph(graph.ZerosLike(acc.ValueGraph(x.Graph())))
		}
	}
	norm := GlobalNorm(grads)
	if c := e.cfg.Optimizer.ClipGradNorm; c > 0 {
		grads = ClipByGlobalNorm(grads, norm, c)
	}
	e.adamw.Update(ctx, e.params, grads, lr, beta1)
	return []*graph.Node{loss, norm}
}

func (e *Engine) evalGraph(ctx *mlctx.Context, x, y *graph.Node) []*graph.Node {
	logits := e.forward(ctx, x, false)
	loss := Loss(logits, y, e.cfg.Loss).Total
	inter, pred, truth := DiceCounts(logits, y, e.cfg.Loss.DiceClass)
	return []*graph.Node{loss, inter, pred, truth}
}

// exec runs one of the engine's executables, explaining a failure of its
// first run (compilation) in bfloat16.
func (e *Engine) exec(ex *mlctx.Exec, args ...any) ([]*tensors.Tensor, error) {
	out, err := ex.Exec(args...)
	if err != nil {
		if e.dtype == dtypes.BFloat16 && !e.firstRuns[ex] {
			return nil, fmt.Errorf("train: backend %s cannot train in bfloat16 (use backend.dtype float32, or an XLA backend such as GOMLX_BACKEND=xla:cuda): %w", e.backend.Name(), err)
		}
		return nil, fmt.Errorf("train: %w", err)
	}
	e.firstRuns[ex] = true
	return out, nil
}

// check checks a batch's shape (Batch.Check) and that every label is one
// of the model's classes: the loss would count any other as no class at
// all, silently (a mask of LabelsClasses with a label the configuration
// did not plan for).
func (e *Engine) check(b Batch) error {
	if err := b.Check(); err != nil {
		return err
	}
	for i, l := range b.Mask {
		if int(l) >= e.mcfg.Classes {
			c := ""
			if b.Cases != nil {
				c = " (case " + b.Cases[i/(len(b.Mask)/b.Shape[0])] + ")"
			}
			return fmt.Errorf("train: mask label %d%s, but the model has %d classes (0..%d): check the masks and data.preprocess.labels", l, c, e.mcfg.Classes, e.mcfg.Classes-1)
		}
	}
	return nil
}

// Accumulate runs forward and backward on a batch and adds its gradients
// to the accumulators, without updating; it returns the batch's loss.
// It needs cfg.Optimizer.Accumulate > 1.
func (e *Engine) Accumulate(b Batch) (float64, error) {
	if e.accExec == nil {
		return 0, fmt.Errorf("train: Accumulate without gradient accumulation (optimizer.accumulate is 1)")
	}
	if err := e.check(b); err != nil {
		return 0, err
	}
	x, y := b.tensors()
	out, err := e.exec(e.accExec, x, y)
	if err != nil {
		return 0, err
	}
	return scalar(out[0]), nil
}

// Step runs forward and backward on a batch, adds the accumulated
// gradients, clips and takes one AdamW step at the given learning rate and
// β1. It returns the batch's loss and the global gradient norm before
// clipping.
func (e *Engine) Step(b Batch, lr, beta1 float64) (loss, gradNorm float64, err error) {
	if err := e.check(b); err != nil {
		return 0, 0, err
	}
	x, y := b.tensors()
	out, err := e.exec(e.stepExec, x, y, float32(lr), float32(beta1))
	if err != nil {
		return 0, 0, err
	}
	return scalar(out[0]), scalar(out[1]), nil
}

// EvalResult is the inference-mode evaluation of a batch.
type EvalResult struct {
	Loss float64
	// Dice of the Loss.DiceClass per case of the batch (argmax prediction).
	Dice []float64
}

// Evaluate runs the model in inference mode (running BatchNorm statistics)
// on a batch.
func (e *Engine) Evaluate(b Batch) (EvalResult, error) {
	if err := e.check(b); err != nil {
		return EvalResult{}, err
	}
	x, y := b.tensors()
	out, err := e.exec(e.evalExec, x, y)
	if err != nil {
		return EvalResult{}, err
	}
	r := EvalResult{Loss: scalar(out[0])}
	inter, pred, truth := tensors.MustCopyFlatData[int32](out[1]), tensors.MustCopyFlatData[int32](out[2]), tensors.MustCopyFlatData[int32](out[3])
	for i := range inter {
		r.Dice = append(r.Dice, Dice(float64(inter[i]), float64(pred[i]), float64(truth[i])))
	}
	return r, nil
}

// scalar reads a float scalar tensor as float64.
func scalar(t *tensors.Tensor) float64 {
	switch v := t.Value().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}
