package infer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/model"
)

// ORTEngine runs an exported ONNX model with ONNX Runtime.
type ORTEngine struct {
	s    *ort.Session
	cfg  model.Config
	path string
	// precision is the model's arithmetic from its metadata: "float32", or
	// "int8" for a model from QuantizeModel.
	precision string
}

// OpenORT loads an ONNX model exported by covseg into ONNX Runtime. The
// network's configuration and preprocessing come from the model's metadata;
// a model without covseg's metadata is refused. When the library is missing
// the error wraps ort.ErrNoLibrary.
func OpenORT(path string, opts EngineOptions) (*ORTEngine, error) {
	s, err := ort.Open(path, ort.Options{LibraryPath: opts.LibraryPath, Threads: opts.Threads})
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	cfg, err := configFromMetadata(s.Metadata())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("infer: %s: %w", path, err)
	}
	precision := s.Metadata()[KeyPrecision]
	if precision == "" {
		precision = "float32"
	}
	return &ORTEngine{s: s, cfg: cfg, path: path, precision: precision}, nil
}

// openORTCheckpoint exports a model file to a temporary ONNX file and loads
// that; ONNX Runtime keeps the model in memory, so the file is removed at
// once.
func openORTCheckpoint(path string, opts EngineOptions) (*ORTEngine, error) {
	dir, err := os.MkdirTemp("", "covseg-onnx-")
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	defer os.RemoveAll(dir)
	version := opts.Version
	if version == "" {
		version = "unknown"
	}
	tmp := filepath.Join(dir, "model.onnx")
	if _, err := ExportCheckpoint(path, tmp, version, onnx.Options{}); err != nil {
		return nil, fmt.Errorf("infer: exporting for ONNX Runtime: %w", err)
	}
	e, err := OpenORT(tmp, opts)
	if err != nil {
		return nil, err
	}
	e.path = path
	return e, nil
}

// ExportCheckpoint exports the network of the model file ckpt, weights
// included, to out as ONNX (see onnx.Export), stamping version into its
// metadata, and returns the model's configuration. It is covseg's one
// checkpoint-to-ONNX step: covseg model export, the demo, reproduce and
// ONNX Runtime given a model file all go through it.
func ExportCheckpoint(ckpt, out, version string, opts onnx.Options) (model.Config, error) {
	cfg, ctx, err := model.Load(ckpt)
	if err != nil {
		return model.Config{}, err
	}
	if err := onnx.Export(out, cfg, ctx, version, opts); err != nil {
		return model.Config{}, fmt.Errorf("%s: %w", ckpt, err)
	}
	return cfg, nil
}

// configFromMetadata rebuilds the model's Config from covseg's
// metadata_props: the architecture entry, with the preprocessing entry as
// the authority on preprocessing.
func configFromMetadata(props map[string]string) (model.Config, error) {
	meta, err := onnx.ParseMetadata(props)
	if err != nil {
		return model.Config{}, err
	}
	var cfg model.Config
	if err := json.Unmarshal(meta.Architecture, &cfg); err != nil {
		return model.Config{}, fmt.Errorf("metadata %s: %w", onnx.KeyArchitecture, err)
	}
	var pre model.Preprocess
	if err := json.Unmarshal(meta.Preprocessing, &pre); err != nil {
		return model.Config{}, fmt.Errorf("metadata %s: %w", onnx.KeyPreprocessing, err)
	}
	cfg.Preprocess = pre
	if err := cfg.Validate(); err != nil {
		return model.Config{}, fmt.Errorf("metadata: %w", err)
	}
	if !slices.Equal(cfg.ClassNames, meta.Classes) {
		return model.Config{}, fmt.Errorf("metadata: class names %q disagree with the architecture's %q", meta.Classes, cfg.ClassNames)
	}
	return cfg, nil
}

// Run implements Engine.
func (e *ORTEngine) Run(x []float32, shape [5]int) ([]float32, [5]int, error) {
	var out [5]int
	if err := checkInput(e.cfg, x, shape); err != nil {
		return nil, out, err
	}
	var s64 [5]int64
	for i, d := range shape {
		s64[i] = int64(d)
	}
	y, ys, err := e.s.Run(x, s64)
	if err != nil {
		return nil, out, fmt.Errorf("infer: %w", err)
	}
	for i, d := range ys {
		out[i] = int(d)
	}
	if err := checkOutput(e.cfg, shape, y, out); err != nil {
		return nil, out, fmt.Errorf("%w (%s)", err, e.path)
	}
	return y, out, nil
}

// Config implements Engine.
func (e *ORTEngine) Config() model.Config { return e.cfg }

// Name implements Engine.
func (e *ORTEngine) Name() string {
	return fmt.Sprintf("onnxruntime %s, %d threads, %s", ort.LibraryVersion(), e.s.Threads(), e.precision)
}

// Precision returns the model's arithmetic: "float32" or "int8".
func (e *ORTEngine) Precision() string { return e.precision }

// Close implements Engine.
func (e *ORTEngine) Close() error { return e.s.Close() }
