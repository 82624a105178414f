package ort

import (
	"fmt"
	"runtime"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Multi is a model loaded into ONNX Runtime with one float32 input and
// several float32 outputs of any rank: it serves calibration, which reads
// intermediate feature maps that a model's graph lists as extra outputs.
// Run must not overlap Close.
type Multi struct {
	s       *ortgo.DynamicAdvancedSession
	outputs []string
}

// OpenMulti loads the serialised model data, whose graph has the float32
// input in and the float32 outputs outs.
func OpenMulti(data []byte, in string, outs []string, opts Options) (*Multi, error) {
	if len(outs) == 0 {
		return nil, fmt.Errorf("ort: a session needs at least one output")
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if err := acquire(opts.LibraryPath); err != nil {
		return nil, err
	}
	s, err := newSession(data, []string{in}, outs, threads, opts.OptimizedModelPath)
	if err != nil {
		release()
		return nil, fmt.Errorf("ort: %w", err)
	}
	return &Multi{s: s, outputs: append([]string(nil), outs...)}, nil
}

// Run runs the model on input of the given shape and calls fn with each
// output's name and values, in the order OpenMulti was given. The values
// are valid only during the call.
func (m *Multi) Run(input []float32, shape []int64, fn func(name string, values []float32) error) error {
	if m.s == nil {
		return fmt.Errorf("ort: session is closed")
	}
	x, err := ortgo.NewTensor(ortgo.NewShape(shape...), input)
	if err != nil {
		return fmt.Errorf("ort: input: %w", err)
	}
	defer x.Destroy()
	outs := make([]ortgo.Value, len(m.outputs))
	if err := m.s.Run([]ortgo.Value{x}, outs); err != nil {
		return fmt.Errorf("ort: %w", err)
	}
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	for i, o := range outs {
		y, ok := o.(*ortgo.Tensor[float32])
		if !ok {
			return fmt.Errorf("ort: output %q is not a float32 tensor", m.outputs[i])
		}
		if err := fn(m.outputs[i], y.GetData()); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the session.
func (m *Multi) Close() error {
	if m.s == nil {
		return nil
	}
	err := m.s.Destroy()
	m.s = nil
	release()
	if err != nil {
		return fmt.Errorf("ort: close: %w", err)
	}
	return nil
}
