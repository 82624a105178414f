// Package onnx exports covseg's network as an ONNX model (opset 17, IR
// version 8) for ONNX Runtime and other ONNX engines.
//
// Builder implements model.Ops[string]: the architecture, written once
// against Ops, is run with value names as tensors and leaves behind an ONNX
// graph whose weights are initializers. Model turns the graph into a
// ModelProto, folding each BatchNormalization that follows a convolution
// into that convolution; Write stores it atomically.
package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/model"
)

// Opset is the ai.onnx operator set version of exported models.
const Opset = 17

// IRVersion is the ONNX IR version that goes with Opset 17 (ONNX 1.12).
const IRVersion = 8

// bnEpsilon is PyTorch's BatchNorm3d default, the one model.BNSpec fixes.
const bnEpsilon = 1e-5

// Symbolic names of the dynamic axes of the graph's inputs and outputs.
const (
	DimBatch  = "batch"
	DimDepth  = "depth"
	DimHeight = "height"
	DimWidth  = "width"
)

// Tensor is a dense float32 array in row-major (C) order, as PyTorch stores
// a parameter.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Builder records an ONNX graph through model.Ops[string]. Tensors are value
// names. Ops methods cannot return errors, so the first error is kept and
// reported by Err and Model; after an error the methods still return names
// but add nothing.
//
// A Builder is not safe for concurrent use.
type Builder struct {
	weights map[string]Tensor

	nodes   []*onnxpb.NodeProto
	params  []string              // weight names used, in order of first use
	consts  []*onnxpb.TensorProto // the builder's own constants
	inputs  []*onnxpb.ValueInfoProto
	outputs []*onnxpb.ValueInfoProto

	initDone map[string]bool  // weight names already added as initializers
	int64s   map[int64]string // names of the int64 scalar constants
	values   map[string]int   // value name -> channel count (axis 1), -1 if unknown
	err      error
}

var _ model.Ops[string] = (*Builder)(nil)

// NewBuilder returns a Builder that takes parameters from weights, keyed by
// their PyTorch names ("stem.0.weight", "out.1.running_var", ...). The
// tensors are not copied until Model; the caller must not change them
// before then.
func NewBuilder(weights map[string]Tensor) *Builder {
	return &Builder{
		weights:  weights,
		initDone: map[string]bool{},
		int64s:   map[int64]string{},
		values:   map[string]int{},
	}
}

// Err returns the first error met while building, or nil.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("onnx: "+format, args...)
	}
}

// Input adds a float32 graph input of shape [batch, channels, depth, height,
// width] where every axis except channels is symbolic, and returns its name.
// Inputs share the symbolic axes, so several inputs must have one size.
func (b *Builder) Input(name string, channels int) string {
	if channels <= 0 {
		b.fail("input %q: %d channels", name, channels)
		return name
	}
	if _, dup := b.values[name]; dup || name == "" {
		b.fail("input name %q is empty or already used", name)
		return name
	}
	b.values[name] = channels
	b.inputs = append(b.inputs, valueInfo(name, channels))
	return name
}

// Output marks x as a graph output named name, declared as [batch, channels,
// depth, height, width] with the input's symbolic axes: the network must keep
// the spatial size of its input, as covseg's does. An Identity node gives x
// its output name.
func (b *Builder) Output(x, name string) {
	if b.err != nil {
		return
	}
	if _, dup := b.values[name]; dup || name == "" {
		b.fail("output name %q is empty or already used", name)
		return
	}
	ch, ok := b.values[x]
	if !ok || ch <= 0 {
		b.fail("output %q: %q is not a feature map of this Builder", name, x)
		return
	}
	b.addNode("Identity", []string{x}, name, nil)
	b.values[name] = ch
	b.outputs = append(b.outputs, valueInfo(name, ch))
}

func valueInfo(name string, channels int) *onnxpb.ValueInfoProto {
	dim := func(p string) *onnxpb.TensorShapeProto_Dimension {
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: p}}
	}
	shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
		dim(DimBatch),
		{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(channels)}},
		dim(DimDepth), dim(DimHeight), dim(DimWidth),
	}}
	elem := int32(onnxpb.TensorProto_FLOAT)
	return &onnxpb.ValueInfoProto{
		Name: &name,
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: &elem,
			Shape:    shape,
		}}},
	}
}

// newValue returns a fresh value name based on base.
func (b *Builder) newValue(base string, channels int) string {
	name := base
	for i := 1; ; i++ {
		_, used := b.values[name]
		_, weight := b.weights[name]
		if !used && !weight {
			break
		}
		name = base + "_" + strconv.Itoa(i)
	}
	b.values[name] = channels
	return name
}

// channels returns the channel count of value x, failing if x is unknown.
func (b *Builder) channels(op, x string) (int, bool) {
	ch, ok := b.values[x]
	if !ok {
		b.fail("%s: unknown value %q (not made by this Builder)", op, x)
	}
	return ch, ok
}

func (b *Builder) addNode(op string, in []string, out string, attrs []*onnxpb.AttributeProto) {
	name := out
	b.nodes = append(b.nodes, &onnxpb.NodeProto{
		OpType:    &op,
		Name:      &name,
		Input:     in,
		Output:    []string{out},
		Attribute: attrs,
	})
}

// param adds the weight name as an initializer (once) after checking its
// shape and values, and returns name.
func (b *Builder) param(name string, shape ...int) string {
	w, ok := b.weights[name]
	if !ok {
		b.fail("parameter %q is missing", name)
		return name
	}
	if !slices.Equal(w.Shape, shape) {
		b.fail("parameter %q has shape %v, the layer needs %v", name, w.Shape, shape)
		return name
	}
	if b.initDone[name] {
		return name
	}
	n, err := numel(w.Shape)
	if err != nil || n != len(w.Data) {
		b.fail("parameter %q: shape %v but %d values", name, w.Shape, len(w.Data))
		return name
	}
	for _, v := range w.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			b.fail("parameter %q has non-finite values", name)
			return name
		}
	}
	if _, clash := b.values[name]; clash {
		b.fail("parameter %q has the name of a graph value", name)
		return name
	}
	b.initDone[name] = true
	b.params = append(b.params, name)
	return name
}

// numel is the element count of shape, refusing negative or overflowing dims.
func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return 0, fmt.Errorf("bad shape %v", shape)
		}
		n *= d
	}
	return n, nil
}

// Conv3d implements model.Ops: an ONNX Conv with explicit strides, pads,
// dilations (1) and group (1).
func (b *Builder) Conv3d(name string, x string, spec model.ConvSpec) string {
	if b.err != nil {
		return x
	}
	if err := checkConv(spec); err != nil {
		b.fail("conv %q: %v", name, err)
		return x
	}
	if ch, ok := b.channels("conv "+name, x); !ok {
		return x
	} else if ch != spec.In {
		b.fail("conv %q expects %d input channels, got %d", name, spec.In, ch)
		return x
	}
	k := spec.Kernel
	in := []string{x, b.param(name+".weight", spec.Out, spec.In, k[0], k[1], k[2])}
	if spec.Bias {
		in = append(in, b.param(name+".bias", spec.Out))
	}
	p, s := spec.Padding, spec.Stride
	attrs := []*onnxpb.AttributeProto{
		intsAttr("kernel_shape", k[0], k[1], k[2]),
		intsAttr("strides", s[0], s[1], s[2]),
		intsAttr("pads", p[0], p[1], p[2], p[0], p[1], p[2]),
		intsAttr("dilations", 1, 1, 1),
		intAttr("group", 1),
	}
	out := b.newValue(name, spec.Out)
	b.addNode("Conv", in, out, attrs)
	return out
}

func checkConv(s model.ConvSpec) error {
	if s.In <= 0 || s.Out <= 0 {
		return fmt.Errorf("channels %d -> %d", s.In, s.Out)
	}
	for i := range 3 {
		if s.Kernel[i] <= 0 || s.Stride[i] <= 0 || s.Padding[i] < 0 {
			return fmt.Errorf("kernel %v, stride %v, padding %v", s.Kernel, s.Stride, s.Padding)
		}
	}
	return nil
}

// BatchNorm3d implements model.Ops: an inference-mode BatchNormalization
// (opset 15 semantics, running statistics, epsilon 1e-5). Model folds it into
// the convolution before it where it may.
func (b *Builder) BatchNorm3d(name string, x string, spec model.BNSpec) string {
	if b.err != nil {
		return x
	}
	c := spec.Channels
	if ch, ok := b.channels("batchnorm "+name, x); !ok {
		return x
	} else if ch != c {
		b.fail("batchnorm %q has %d channels, its input %d", name, c, ch)
		return x
	}
	in := []string{x,
		b.param(name+".weight", c), b.param(name+".bias", c),
		b.param(name+".running_mean", c), b.param(name+".running_var", c)}
	if b.err != nil {
		return x
	}
	for _, v := range b.weights[name+".running_var"].Data {
		if v < 0 {
			b.fail("parameter %q has negative variances", name+".running_var")
			return x
		}
	}
	out := b.newValue(name, c)
	b.addNode("BatchNormalization", in, out, []*onnxpb.AttributeProto{floatAttr("epsilon", bnEpsilon)})
	return out
}

// ReLU implements model.Ops.
func (b *Builder) ReLU(x string) string {
	if b.err != nil {
		return x
	}
	ch, ok := b.channels("relu", x)
	if !ok {
		return x
	}
	out := b.newValue(x+".relu", ch)
	b.addNode("Relu", []string{x}, out, nil)
	return out
}

// Add implements model.Ops.
func (b *Builder) Add(x, y string) string {
	if b.err != nil {
		return x
	}
	cx, ok1 := b.channels("add", x)
	cy, ok2 := b.channels("add", y)
	if !ok1 || !ok2 {
		return x
	}
	if cx != cy {
		b.fail("add: %q has %d channels, %q has %d", x, cx, y, cy)
		return x
	}
	out := b.newValue(x+".add", cx)
	b.addNode("Add", []string{x, y}, out, nil)
	return out
}

// Concat implements model.Ops: concatenation along the channel axis.
func (b *Builder) Concat(xs ...string) string {
	if b.err != nil {
		return ""
	}
	if len(xs) == 0 {
		b.fail("concat of nothing")
		return ""
	}
	total := 0
	for _, x := range xs {
		ch, ok := b.channels("concat", x)
		if !ok {
			return xs[0]
		}
		total += ch
	}
	if len(xs) == 1 {
		return xs[0]
	}
	out := b.newValue(xs[0]+".cat", total)
	b.addNode("Concat", xs, out, []*onnxpb.AttributeProto{intAttr("axis", 1)})
	return out
}

// ResizeNearestLike implements model.Ops. For each spatial axis k it computes
// the source indices the way PyTorch's CPU "nearest" does (and
// model.NearestIndices, which the GoMLX engine uses):
//
//	scale = float32(in_k) / float32(out_k)
//	idx   = min(floor(float32(Range(0, out_k)) * scale), in_k - 1)
//
// with each step a separate float32 ONNX op (Cast, Div, Mul, Floor, so no
// fused multiply-add), then x = Gather(x, idx, axis k). That is floor(dst *
// in / out) except where float32 rounding moves an exact integer down
// (in 2, out 82, dst 41 gives 0).
//
// ONNX's Resize (nearest, asymmetric, floor) is not used: ONNX Runtime
// evaluates it as dst / float32(out/in), which lands one voxel short of both
// rules in other cases (in 14, out 16, dst 8 gives 6). Shapes are dynamic,
// so the gathers are always emitted; with equal sizes they copy x.
func (b *Builder) ResizeNearestLike(x, ref string) string {
	if b.err != nil || x == ref {
		return x
	}
	ch, ok := b.channels("resize", x)
	if _, ok2 := b.channels("resize", ref); !ok || !ok2 {
		return x
	}
	zero, one := b.int64Const(0), b.int64Const(1)
	toFloat := intAttr("to", int(onnxpb.TensorProto_FLOAT))
	toInt64 := intAttr("to", int(onnxpb.TensorProto_INT64))
	src := x
	for k := 2; k < 5; k++ {
		ax := strconv.Itoa(k)
		in := b.op("Shape", x+".in"+ax, []string{x}, intAttr("start", k), intAttr("end", k+1))
		out := b.op("Shape", ref+".out"+ax, []string{ref}, intAttr("start", k), intAttr("end", k+1))
		scale := b.op("Div", x+".scale"+ax, []string{
			b.op("Cast", in+".f", []string{in}, toFloat),
			b.op("Cast", out+".f", []string{out}, toFloat)})
		r := b.op("Range", x+".range"+ax, []string{zero, b.op("Squeeze", out+".n", []string{out}), one})
		p := b.op("Mul", x+".pos"+ax, []string{b.op("Cast", r+".f", []string{r}, toFloat), scale})
		fl := b.op("Cast", p+".floor", []string{b.op("Floor", p+".f", []string{p})}, toInt64)
		idx := b.op("Min", x+".idx"+ax, []string{fl, b.op("Sub", in+".last", []string{in, one})})
		src = b.op("Gather", x+".resized"+ax, []string{src, idx}, intAttr("axis", k))
	}
	b.values[src] = ch
	return src
}

// op adds a node with one output named after base and returns the output.
// The value's channel count is unknown (-1).
func (b *Builder) op(opType, base string, in []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.newValue(base, -1)
	b.addNode(opType, in, out, attrs)
	return out
}

// int64Const returns an initializer holding the int64 scalar v, made once.
func (b *Builder) int64Const(v int64) string {
	if name, ok := b.int64s[v]; ok {
		return name
	}
	name := b.newValue("covseg.const.int64."+strconv.FormatInt(v, 10), -1)
	b.int64s[v] = name
	dt := int32(onnxpb.TensorProto_INT64)
	b.consts = append(b.consts, &onnxpb.TensorProto{Name: &name, DataType: &dt, Int64Data: []int64{v}})
	return name
}

func intAttr(name string, v int) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INT
	i := int64(v)
	return &onnxpb.AttributeProto{Name: &name, Type: &t, I: &i}
}

func intsAttr(name string, vs ...int) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INTS
	is := make([]int64, len(vs))
	for i, v := range vs {
		is[i] = int64(v)
	}
	return &onnxpb.AttributeProto{Name: &name, Type: &t, Ints: is}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_FLOAT
	return &onnxpb.AttributeProto{Name: &name, Type: &t, F: &v}
}

func stringAttr(name, v string) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_STRING
	return &onnxpb.AttributeProto{Name: &name, Type: &t, S: []byte(v)}
}

// errNoOutput is returned by Model for a graph without outputs.
var errNoOutput = errors.New("onnx: the graph has no output")
