package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// NewContext returns a GoMLX context holding freshly initialised model
// variables under Scope, one per ParamSpec (running statistics not
// trainable). With parts given, only those parts are created (an encoder-only
// context for the conformance test, say).
//
// Initialisation follows the sources: the encoder as torchvision's r3d_18
// (Kaiming normal, fan-out, ReLU gain), the rest as fastai's ConvLayer
// (Kaiming normal, fan-in), biases 0, BatchNorm γ 1 (0 where ZeroInit), β 0,
// running mean 0, running variance 1. seed makes it reproducible and is
// recorded in cfg.Encoder.Seed by callers.
func NewContext(cfg Config, seed uint64, parts ...Part) (*context.Context, error) {
	specs, err := ParamSpecs(cfg)
	if err != nil {
		return nil, err
	}
	ctx := context.New()
	mctx := ctx.InAbsPath(Scope)
	rng := rand.New(rand.NewPCG(seed, 0x636f76736567)) // "covseg"
	for _, s := range specs {
		if len(parts) > 0 && !slices.Contains(parts, s.Part) {
			continue
		}
		data := initValue(s, rng)
		v := mctx.VariableWithValue(s.Name, tensors.FromFlatDataAndDimensions(data, s.Shape...))
		v.SetTrainable(s.Trainable())
	}
	return ctx, nil
}

// initValue draws the initial value of one tensor.
func initValue(s ParamSpec, rng *rand.Rand) []float32 {
	data := make([]float32, s.Size())
	fill := func(v float32) {
		for i := range data {
			data[i] = v
		}
	}
	switch s.Kind {
	case KindConvWeight:
		fan := s.FanIn
		if s.Part == PartEncoder {
			fan = s.FanOut
		}
		std := math.Sqrt(2 / float64(fan))
		for i := range data {
			data[i] = float32(rng.NormFloat64() * std)
		}
	case KindBNWeight:
		if !s.ZeroInit {
			fill(1)
		}
	case KindRunningVar:
		fill(1)
	}
	return data
}

// Float32Value returns a copy of the named model variable's values (row
// major) and its shape, for engines (the ONNX exporter) that take the
// weights out of the context.
func Float32Value(ctx *context.Context, name string) ([]float32, []int, error) {
	v := Variable(ctx, name)
	if v == nil {
		return nil, nil, fmt.Errorf("model: variable %q is missing from the context", name)
	}
	t, err := v.Value()
	if err != nil {
		return nil, nil, fmt.Errorf("model: variable %q: %w", name, err)
	}
	if t.DType() != dtypes.Float32 {
		return nil, nil, fmt.Errorf("model: variable %q is %s, want float32", name, t.DType())
	}
	data, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, nil, fmt.Errorf("model: variable %q: %w", name, err)
	}
	return data, slices.Clone(t.Shape().Dimensions), nil
}

// SetFloat32Value replaces the named model variable's value; the shape must
// match.
func SetFloat32Value(ctx *context.Context, name string, data []float32, shape []int) error {
	v := Variable(ctx, name)
	if v == nil {
		return fmt.Errorf("model: variable %q is missing from the context", name)
	}
	if !slices.Equal(v.Shape().Dimensions, shape) || v.DType() != dtypes.Float32 {
		return fmt.Errorf("model: variable %q is %s, cannot set float32%v", name, v.Shape(), shape)
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if len(data) != n {
		return fmt.Errorf("model: variable %q: %d values for shape %v", name, len(data), shape)
	}
	return v.SetValue(tensors.FromFlatDataAndDimensions(slices.Clone(data), shape...))
}

// ParamGroups splits the model's trainable variables for an optimiser:
// the encoder (stem.*, layer1..4.*) and the rest, each further split into
// those that take weight decay (convolution weights) and those that don't
// (BatchNorm γ and β, biases). Running statistics are in no group.
type ParamGroups struct {
	Encoder, EncoderNoDecay []*context.Variable
	Rest, RestNoDecay       []*context.Variable
}

// Groups returns the parameter groups of the model in ctx.
func Groups(ctx *context.Context, cfg Config) (ParamGroups, error) {
	specs, err := ParamSpecs(cfg)
	if err != nil {
		return ParamGroups{}, err
	}
	var g ParamGroups
	for _, s := range specs {
		if !s.Trainable() {
			continue
		}
		v := Variable(ctx, s.Name)
		if v == nil {
			return ParamGroups{}, fmt.Errorf("model: variable %q is missing from the context", s.Name)
		}
		switch {
		case s.Part == PartEncoder && s.WeightDecay():
			g.Encoder = append(g.Encoder, v)
		case s.Part == PartEncoder:
			g.EncoderNoDecay = append(g.EncoderNoDecay, v)
		case s.WeightDecay():
			g.Rest = append(g.Rest, v)
		default:
			g.RestNoDecay = append(g.RestNoDecay, v)
		}
	}
	return g, nil
}
