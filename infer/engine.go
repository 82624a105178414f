// Package infer turns CT volumes into segmentation masks with a trained
// covseg network: it reorients and preprocesses the volume as the model's
// configuration says, runs the network through an Engine (ONNX Runtime or
// GoMLX) on the whole volume resized to the model's grid or on overlapping
// patches at a target spacing, and maps the class probabilities back onto the
// volume's own grid.
//
// The network's axes D, H and W are the reoriented volume's k, j and i axes:
// a volume's voxels are stored i fastest, so its data is already a D×H×W
// array in row-major order.
package infer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/covseg/covseg/model"
)

// Engine runs a segmentation network on a preprocessed input.
type Engine interface {
	// Run returns the logits [N, Classes, D, H, W] of x, a float32 tensor of
	// shape [N, InChannels, D, H, W] in row-major order.
	Run(x []float32, shape [5]int) ([]float32, [5]int, error)
	// Config is the network's configuration: classes and preprocessing.
	Config() model.Config
	// Name says which engine this is, for logs: "onnxruntime 1.30.0, 2 threads".
	Name() string
	// Close releases the engine.
	Close() error
}

// Engine kinds for EngineOptions.Kind.
const (
	EngineORT   = "ort"
	EngineGoMLX = "gomlx"
)

// EngineOptions choose and configure an engine.
type EngineOptions struct {
	// Kind is EngineORT (the default when empty) or EngineGoMLX.
	Kind string
	// Threads is ONNX Runtime's intra-op thread count; 0 means one per core.
	Threads int
	// LibraryPath is the ONNX Runtime library; empty means package ort's
	// search (COVSEG_ORT_LIB, then third_party/onnxruntime/).
	LibraryPath string
	// Version is stamped into a model exported on the fly (ORT given a
	// .ckpt file).
	Version string
}

// OpenEngine loads the model at path into the engine opts name.
//
// ONNX Runtime takes an ONNX file written by `covseg model export` or a
// model file (.ckpt, from `covseg model init` or training), which is exported
// to a temporary ONNX file first (a few seconds at full width; export once
// with `covseg model export` to skip that). GoMLX takes model files only,
// and is much slower than ONNX Runtime on the CPU.
func OpenEngine(path string, opts EngineOptions) (Engine, error) {
	ckpt, err := isCheckpoint(path)
	if err != nil {
		return nil, err
	}
	switch opts.Kind {
	case "", EngineORT:
		if ckpt {
			return openORTCheckpoint(path, opts)
		}
		return OpenORT(path, opts)
	case EngineGoMLX:
		if !ckpt {
			return nil, fmt.Errorf("infer: %s: the GoMLX engine runs covseg model files (.ckpt), not ONNX; give the model file it was exported from, or use ONNX Runtime", path)
		}
		return OpenGoMLX(path)
	}
	return nil, fmt.Errorf("infer: unknown engine %q, want %q or %q", opts.Kind, EngineORT, EngineGoMLX)
}

// isCheckpoint reports whether path is a covseg model file (a zip archive)
// rather than an ONNX protobuf.
func isCheckpoint(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("infer: model: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, fmt.Errorf("infer: model %s: empty or truncated file", path)
		}
		return false, fmt.Errorf("infer: model: %w", err)
	}
	return bytes.Equal(magic[:], []byte("PK\x03\x04")), nil
}

// checkInput validates an NCDHW input against the model.
func checkInput(cfg model.Config, x []float32, shape [5]int) error {
	n := 1
	for _, d := range shape {
		if d < 1 {
			return fmt.Errorf("infer: input shape %v has an empty axis", shape)
		}
		n *= d
	}
	if shape[1] != cfg.InChannels {
		return fmt.Errorf("infer: input has %d channels, the model takes %d", shape[1], cfg.InChannels)
	}
	if n != len(x) {
		return fmt.Errorf("infer: input shape %v needs %d values, got %d", shape, n, len(x))
	}
	return nil
}

// checkOutput validates the logits an engine returned for an input shape.
func checkOutput(cfg model.Config, in [5]int, y []float32, shape [5]int) error {
	want := [5]int{in[0], cfg.Classes, in[2], in[3], in[4]}
	if shape != want {
		return fmt.Errorf("infer: the network returned shape %v for input %v, want %v", shape, in, want)
	}
	if len(y) != want[0]*want[1]*want[2]*want[3]*want[4] {
		return fmt.Errorf("infer: the network returned %d values for shape %v", len(y), shape)
	}
	return nil
}
