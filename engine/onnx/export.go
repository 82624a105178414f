package onnx

import (
	"encoding/json"
	"fmt"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/model"
)

// BuildModel returns covseg's network as cfg describes it (model.UNet, the
// same definition the GoMLX engine runs) with the parameters vars, keyed by
// PyTorch name. The metadata records version (covseg's), cfg as the
// architecture, cfg.Preprocess and cfg.ClassNames.
func BuildModel(cfg model.Config, vars map[string]Tensor, version string, opts Options) (*onnxpb.ModelProto, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
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

// ExportModel builds the model like BuildModel and writes it to path
// atomically.
func ExportModel(path string, cfg model.Config, vars map[string]Tensor, version string, opts Options) error {
	m, err := BuildModel(cfg, vars, version, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return Write(path, m)
}

// Variables copies the network's parameters (every model.ParamSpecs name)
// out of a GoMLX context such as model.Load returns.
func Variables(ctx *context.Context, cfg model.Config) (map[string]Tensor, error) {
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
