package onnx

import (
	"encoding/json"
	"fmt"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/model"
)

// Export writes covseg's network as cfg describes it (model.UNet, the same
// definition the GoMLX engine runs), with the parameters held in ctx (such
// as model.Load or model.NewContext returns), to path as an ONNX model,
// atomically. The metadata records version (covseg's), cfg as the
// architecture, cfg.Preprocess and cfg.ClassNames.
//
// It is the one way covseg exports its network; Build and Write are for
// other graphs (tests, hand-made models).
func Export(path string, cfg model.Config, ctx *context.Context, version string, opts Options) error {
	m, err := buildUNet(cfg, ctx, version, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return Write(path, m)
}

// buildUNet returns the ONNX model of covseg's network with ctx's
// parameters.
func buildUNet(cfg model.Config, ctx *context.Context, version string, opts Options) (*onnxpb.ModelProto, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	vars, err := variables(ctx, cfg)
	if err != nil {
		return nil, err
	}
	arch, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("onnx: architecture: %w", err)
	}
	pre, err := json.Marshal(cfg.Preprocess)
	if err != nil {
		return nil, fmt.Errorf("onnx: preprocessing: %w", err)
	}
	meta := Metadata{Version: version, Architecture: arch, Preprocessing: pre, Classes: cfg.ClassNames}
	net := func(ops model.Ops[string], x string) string { return model.UNet(ops, x, cfg) }
	m, err := Build(net, cfg.InChannels, vars, meta, opts)
	if err != nil {
		return nil, err
	}
	if ch := outputChannels(m); ch != int64(cfg.Classes) {
		return nil, fmt.Errorf("onnx: the network gives %d channels for %d classes", ch, cfg.Classes)
	}
	return m, nil
}

func outputChannels(m *onnxpb.ModelProto) int64 {
	dims := m.GetGraph().GetOutput()[0].GetType().GetTensorType().GetShape().GetDim()
	return dims[1].GetDimValue()
}

// variables copies the network's parameters (every model.ParamSpecs name)
// out of a GoMLX context.
func variables(ctx *context.Context, cfg model.Config) (map[string]Tensor, error) {
	specs, err := model.ParamSpecs(cfg)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	vars := make(map[string]Tensor, len(specs))
	for _, s := range specs {
		data, shape, err := model.Float32Value(ctx, s.Name)
		if err != nil {
			return nil, fmt.Errorf("onnx: %w", err)
		}
		vars[s.Name] = Tensor{Shape: shape, Data: data}
	}
	return vars, nil
}
