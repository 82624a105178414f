package onnx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/model"
)

// Names of the graph input and output of exported networks.
const (
	InputName  = "image"
	OutputName = "logits"
)

// Options control how a graph becomes a model.
type Options struct {
	// KeepBatchNorm keeps every BatchNormalization node. By default one that
	// follows a convolution whose output feeds nothing else is folded into
	// that convolution's weight and bias (computed in float64), which leaves
	// a smaller file that every engine runs as fast as its fused kernels
	// allow. BatchNorms with no convolution before them (covseg's skip and
	// bridge BNs) always stay nodes.
	KeepBatchNorm bool
}

// Net is a network written against model.Ops: it maps the input tensor to
// the output tensor.
type Net func(ops model.Ops[string], x string) string

// Build runs net on a Builder over weights, with an input InputName of
// inChannels channels and the result as output OutputName, and returns the
// model.
func Build(net Net, inChannels int, weights map[string]Tensor, meta Metadata, opts Options) (*onnxpb.ModelProto, error) {
	b := NewBuilder(weights)
	x := b.Input(InputName, inChannels)
	if b.err != nil {
		return nil, b.err
	}
	b.Output(net(b, x), OutputName)
	return b.Model(meta, opts)
}

// Write marshals m and stores it at path through a temporary file and a
// rename, so path is never left half-written.
func Write(path string, m *onnxpb.ModelProto) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("onnx: %s: %w", path, err)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	return nil
}

// Model returns the recorded graph as an ONNX model with meta in its
// metadata_props. The Builder is not changed and may be used further.
func (b *Builder) Model(meta Metadata, opts Options) (*onnxpb.ModelProto, error) {
	if b.err != nil {
		return nil, b.err
	}
	if len(b.outputs) == 0 {
		return nil, errNoOutput
	}
	props, err := meta.props()
	if err != nil {
		return nil, err
	}
	nodes, params := b.nodes, make([]namedTensor, len(b.params))
	for i, name := range b.params {
		params[i] = namedTensor{name, b.weights[name]}
	}
	if !opts.KeepBatchNorm {
		var folded []namedTensor
		nodes, folded = b.foldBatchNorms()
		params = append(params, folded...)
	}
	inits := initializers(nodes, b.consts, params)
	graphName, producer, doc := "covseg", "covseg", "covseg 3D U-Net, NCDHW float32 input "+InputName+", logits output "+OutputName
	ir, version := int64(IRVersion), int64(Opset)
	domain := ""
	return &onnxpb.ModelProto{
		IrVersion:       &ir,
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: &domain, Version: &version}},
		ProducerName:    &producer,
		ProducerVersion: &meta.Version,
		DocString:       &doc,
		Graph: &onnxpb.GraphProto{
			Name:        &graphName,
			Node:        nodes,
			Initializer: inits,
			Input:       b.inputs,
			Output:      b.outputs,
		},
		MetadataProps: props,
	}, nil
}

// initializers returns the constants and parameters that nodes read, the
// parameters converted to TensorProtos.
func initializers(nodes []*onnxpb.NodeProto, consts []*onnxpb.TensorProto, params []namedTensor) []*onnxpb.TensorProto {
	used := map[string]bool{}
	for _, n := range nodes {
		for _, in := range n.Input {
			used[in] = true
		}
	}
	var inits []*onnxpb.TensorProto
	for _, c := range consts {
		if used[c.GetName()] {
			inits = append(inits, c)
		}
	}
	for _, p := range params {
		if used[p.name] {
			inits = append(inits, floatTensor(p.name, p.t.Shape, p.t.Data))
		}
	}
	return inits
}

// floatTensor makes an initializer holding data as little-endian raw bytes.
func floatTensor(name string, shape []int, data []float32) *onnxpb.TensorProto {
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	dt := int32(onnxpb.TensorProto_FLOAT)
	return &onnxpb.TensorProto{Name: &name, Dims: dims, DataType: &dt, RawData: raw}
}
