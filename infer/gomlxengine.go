package infer

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/engine/covcpu"
	"github.com/covseg/covseg/model"
)

// GoMLXEngine runs a model file with GoMLX on covseg's default backend
// (package backend: pure Go unless GOMLX_BACKEND names another): no library
// needed, but many times slower than ONNX Runtime.
type GoMLXEngine struct {
	cfg     model.Config
	backend backends.Backend
	runner  *model.Runner
}

// OpenGoMLX loads a covseg model file (.ckpt) for inference with GoMLX.
func OpenGoMLX(path string) (*GoMLXEngine, error) {
	cfg, ctx, err := model.Load(path)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	return NewGoMLX(cfg, ctx)
}

// NewGoMLX prepares inference with the model variables of ctx (as
// model.Load or model.NewContext return them).
func NewGoMLX(cfg model.Config, ctx *context.Context) (*GoMLXEngine, error) {
	b, err := covcpu.New()
	if err != nil {
		return nil, fmt.Errorf("infer: GoMLX backend: %w", err)
	}
	r, err := model.NewRunner(b, ctx, cfg)
	if err != nil {
		b.Finalize()
		return nil, fmt.Errorf("infer: %w", err)
	}
	return &GoMLXEngine{cfg: cfg, backend: b, runner: r}, nil
}

// Run implements Engine.
func (e *GoMLXEngine) Run(x []float32, shape [5]int) ([]float32, [5]int, error) {
	var out [5]int
	if err := checkInput(e.cfg, x, shape); err != nil {
		return nil, out, err
	}
	in := tensors.FromFlatDataAndDimensions(x, shape[:]...)
	defer in.FinalizeAll()
	y, err := e.runner.Run(in)
	if err != nil {
		return nil, out, fmt.Errorf("infer: %w", err)
	}
	defer y.FinalizeAll()
	data, err := tensors.CopyFlatData[float32](y)
	if err != nil {
		return nil, out, fmt.Errorf("infer: GoMLX output: %w", err)
	}
	dims := y.Shape().Dimensions
	if len(dims) != 5 {
		return nil, out, fmt.Errorf("infer: GoMLX returned shape %v, want rank 5", dims)
	}
	copy(out[:], dims)
	if err := checkOutput(e.cfg, shape, data, out); err != nil {
		return nil, out, err
	}
	return data, out, nil
}

// Config implements Engine.
func (e *GoMLXEngine) Config() model.Config { return e.cfg }

// Name implements Engine.
func (e *GoMLXEngine) Name() string { return "GoMLX, backend " + e.backend.Name() }

// Close implements Engine.
func (e *GoMLXEngine) Close() error {
	e.backend.Finalize()
	return nil
}
