package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
)

// Range is the calibrated value range of one activation tensor.
type Range struct{ Lo, Hi float32 }

// graphIndex maps value names to the nodes that make and read them.
type graphIndex struct {
	producer  map[string]*onnxpb.NodeProto
	consumers map[string][]*onnxpb.NodeProto
	outputs   map[string]bool
	inits     map[string]*onnxpb.TensorProto
}

func index(g *onnxpb.GraphProto) graphIndex {
	ix := graphIndex{
		producer:  map[string]*onnxpb.NodeProto{},
		consumers: map[string][]*onnxpb.NodeProto{},
		outputs:   map[string]bool{},
		inits:     map[string]*onnxpb.TensorProto{},
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			ix.producer[o] = n
		}
		for _, in := range n.Input {
			ix.consumers[in] = append(ix.consumers[in], n)
		}
	}
	for _, o := range g.Output {
		ix.outputs[o.GetName()] = true
	}
	for _, t := range g.Initializer {
		ix.inits[t.GetName()] = t
	}
	return ix
}

// feedsOutput reports whether value v reaches a graph output only through
// Identity nodes: the network's logits stay float32.
func (ix graphIndex) feedsOutput(v string) bool {
	return ix.reachesOutput(v, map[string]bool{})
}

func (ix graphIndex) reachesOutput(v string, seen map[string]bool) bool {
	if ix.outputs[v] {
		return true
	}
	if seen[v] { // a cycle: not a valid graph, and no way out
		return false
	}
	seen[v] = true
	for _, c := range ix.consumers[v] {
		if c.GetOpType() == "Identity" && len(c.Output) > 0 && ix.reachesOutput(c.Output[0], seen) {
			return true
		}
	}
	return false
}

// wellFormed reports whether every node has an input and an output, which
// the rewrite assumes.
func wellFormed(g *onnxpb.GraphProto) error {
	if g == nil || len(g.Input) == 0 {
		return fmt.Errorf("quant: the model has no graph input")
	}
	for _, n := range g.Node {
		if len(n.Input) == 0 || len(n.Output) == 0 || n.Input[0] == "" {
			return fmt.Errorf("quant: node %q (%s) has no input or no output", n.GetName(), n.GetOpType())
		}
	}
	return nil
}

// Targets returns the activation tensors of m that Model puts a
// QuantizeLinear/DequantizeLinear pair on with a calibrated range, in graph
// order: the data inputs of every Conv, Add and Concat, and the output of
// every one of those (or of the ReLU that alone reads it), except those
// that become the model's output. Quantising both sides of an operator is
// what lets ONNX Runtime replace it with one integer kernel (QLinearConv,
// QLinearAdd, QLinearConcat). Gather outputs (nearest-neighbour resizing)
// are left out: Model gives them their input's parameters, so that ONNX
// Runtime gathers the uint8 values themselves.
func Targets(m *onnxpb.ModelProto) []string {
	g := m.GetGraph()
	if wellFormed(g) != nil {
		return nil
	}
	ix := index(g)
	seen := map[string]bool{}
	var ts []string
	add := func(v string) {
		if p := ix.producer[v]; p != nil && passThrough(p) {
			return
		}
		if !seen[v] && !ix.feedsOutput(v) {
			seen[v] = true
			ts = append(ts, v)
		}
	}
	for _, n := range g.Node {
		switch n.GetOpType() {
		case "Conv":
			add(n.Input[0])
		case "Add", "Concat":
			for _, in := range n.Input {
				if ix.inits[in] == nil {
					add(in)
				}
			}
		default:
			continue
		}
		out := n.Output[0]
		if cs := ix.consumers[out]; len(cs) == 1 && cs[0].GetOpType() == "Relu" && !ix.outputs[out] {
			out = cs[0].Output[0]
		}
		add(out)
	}
	return ts
}

// passThrough reports whether node n only moves the values of its first
// input, so that its output can share the input's quantisation.
func passThrough(n *onnxpb.NodeProto) bool { return n.GetOpType() == "Gather" }

// Model returns a copy of m in QDQ form: each target activation (see
// Targets) that ranges holds gets QuantizeLinear → DequantizeLinear (uint8,
// per tensor), each Conv weight becomes an int8 initializer read through a
// per-channel DequantizeLinear, and each Conv bias an int32 one whose scale
// is input scale × weight scale. A Gather that reads a quantised tensor
// gets a pair with the same parameters on its output. A Conv whose data
// input has no range keeps float weights. props are added to the
// metadata_props; m is not changed.
func Model(m *onnxpb.ModelProto, ranges map[string]Range, props map[string]string) (*onnxpb.ModelProto, error) {
	if err := wellFormed(m.GetGraph()); err != nil {
		return nil, err
	}
	q := proto.Clone(m).(*onnxpb.ModelProto)
	g := q.GetGraph()
	ix := index(g)
	var nodes []*onnxpb.NodeProto
	var inits []*onnxpb.TensorProto
	params := map[string]Params{} // activation -> its quantisation
	dq := map[string]string{}     // activation -> its dequantised name

	orig := map[string]string{} // dequantised name -> activation
	addQDQ := func(v string, from *Params) {
		if dq[v] != "" {
			return
		}
		var p Params
		if from != nil {
			p = *from
		} else if r, ok := ranges[v]; ok {
			p = Uint8(r.Lo, r.Hi)
		} else {
			return
		}
		params[v] = p
		s, z, qv, dv := v+"_qscale", v+"_qzero", v+"_quantized", v+"_dequantized"
		inits = append(inits, floatInit(s, nil, []float32{p.Scale}), uint8Init(z, uint8(p.Zero)))
		nodes = append(nodes,
			node("QuantizeLinear", v+"_Q", []string{v, s, z}, qv),
			node("DequantizeLinear", v+"_DQ", []string{qv, s, z}, dv))
		dq[v] = dv
		orig[dv] = v
	}
	if len(g.Input) > 0 {
		addQDQ(g.Input[0].GetName(), nil)
	}
	for _, n := range g.Node {
		for i, in := range n.Input {
			if d := dq[in]; d != "" {
				n.Input[i] = d
				if n.GetOpType() == "Shape" {
					// A shape needs no values: reading the uint8
					// tensor spares a dequantisation.
					n.Input[i] = in + "_quantized"
				}
			}
		}
		if n.GetOpType() == "Conv" {
			if err := quantizeConv(n, ix, params, orig, &inits, &nodes); err != nil {
				return nil, err
			}
		}
		nodes = append(nodes, n)
		if v, ok := orig[n.Input[0]]; ok && passThrough(n) && !ix.feedsOutput(n.Output[0]) {
			p := params[v]
			addQDQ(n.Output[0], &p)
			continue
		}
		for _, o := range n.Output {
			addQDQ(o, nil)
		}
	}
	g.Node = nodes
	// Initializers the rewritten graph no longer reads (float weights and
	// biases) are dropped.
	used := map[string]bool{}
	for _, n := range nodes {
		for _, in := range n.Input {
			used[in] = true
		}
	}
	var keep []*onnxpb.TensorProto
	for _, t := range append(g.Initializer, inits...) {
		if used[t.GetName()] {
			keep = append(keep, t)
		}
	}
	g.Initializer = keep
	for k, v := range props {
		q.MetadataProps = append(q.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)})
	}
	return q, nil
}

// quantizeConv replaces the float weight and bias initializers of Conv n
// by int8/int32 ones read through DequantizeLinear nodes added to nodes.
// orig maps the dequantised activations to their original names.
func quantizeConv(n *onnxpb.NodeProto, ix graphIndex, params map[string]Params, orig map[string]string,
	inits *[]*onnxpb.TensorProto, nodes *[]*onnxpb.NodeProto) error {
	v, ok := orig[n.Input[0]]
	if !ok {
		return nil // the input stays float: so do the weights
	}
	px := params[v]
	if len(n.Input) < 2 {
		return fmt.Errorf("quant: Conv %q has no weight", n.GetName())
	}
	wt := ix.inits[n.Input[1]]
	if wt == nil {
		return fmt.Errorf("quant: Conv %q: weight %q is not an initializer", n.GetName(), n.Input[1])
	}
	w, err := floats(wt)
	if err != nil {
		return err
	}
	if len(wt.Dims) != 5 {
		return fmt.Errorf("quant: Conv %q: weight %q has dims %v, want 5", n.GetName(), wt.GetName(), wt.Dims)
	}
	out := int(wt.Dims[0])
	if out <= 0 || len(w)%out != 0 {
		return fmt.Errorf("quant: Conv %q: weight %q has dims %v", n.GetName(), wt.GetName(), wt.Dims)
	}
	wq, ws := Weights(w, out)
	base := n.GetName() + "_w"
	*inits = append(*inits,
		int8Init(base+"_quantized", wt.Dims, wq),
		floatInit(base+"_scale", []int64{int64(out)}, ws),
		int8Init(base+"_zero", []int64{int64(out)}, make([]int8, out)))
	*nodes = append(*nodes, node("DequantizeLinear", base+"_DQ",
		[]string{base + "_quantized", base + "_scale", base + "_zero"}, base+"_dequantized", axis0()))
	n.Input[1] = base + "_dequantized"
	if len(n.Input) < 3 || n.Input[2] == "" {
		return nil
	}
	bt := ix.inits[n.Input[2]]
	if bt == nil {
		return fmt.Errorf("quant: Conv %q: bias %q is not an initializer", n.GetName(), n.Input[2])
	}
	b, err := floats(bt)
	if err != nil {
		return err
	}
	if len(b) != out {
		return fmt.Errorf("quant: Conv %q: bias has %d values for %d channels", n.GetName(), len(b), out)
	}
	bq, bs := Bias(b, px.Scale, ws)
	bb := n.GetName() + "_b"
	*inits = append(*inits,
		int32Init(bb+"_quantized", []int64{int64(out)}, bq),
		floatInit(bb+"_scale", []int64{int64(out)}, bs),
		int32Init(bb+"_zero", []int64{int64(out)}, make([]int32, out)))
	*nodes = append(*nodes, node("DequantizeLinear", bb+"_DQ",
		[]string{bb + "_quantized", bb + "_scale", bb + "_zero"}, bb+"_dequantized", axis0()))
	n.Input[2] = bb + "_dequantized"
	return nil
}

func node(op, name string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: []string{out}, Attribute: attrs}
}

func axis0() *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INT
	return &onnxpb.AttributeProto{Name: proto.String("axis"), Type: &t, I: proto.Int64(0)}
}

// floats returns the values of a float32 initializer.
func floats(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("quant: initializer %q is not float32", t.GetName())
	}
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 || (d > 0 && n > (1<<31)/d) {
			return nil, fmt.Errorf("quant: initializer %q has dims %v", t.GetName(), t.Dims)
		}
		n *= d
	}
	if len(t.FloatData) > 0 {
		if int64(len(t.FloatData)) != n {
			return nil, fmt.Errorf("quant: initializer %q has %d values for dims %v", t.GetName(), len(t.FloatData), t.Dims)
		}
		return t.FloatData, nil
	}
	if int64(len(t.RawData)) != 4*n {
		return nil, fmt.Errorf("quant: initializer %q has %d bytes for dims %v", t.GetName(), len(t.RawData), t.Dims)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:]))
	}
	return v, nil
}

func tensor(name string, dims []int64, dt onnxpb.TensorProto_DataType, raw []byte) *onnxpb.TensorProto {
	d := int32(dt)
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: &d, RawData: raw}
}

func floatInit(name string, dims []int64, v []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return tensor(name, dims, onnxpb.TensorProto_FLOAT, raw)
}

func uint8Init(name string, v uint8) *onnxpb.TensorProto {
	return tensor(name, nil, onnxpb.TensorProto_UINT8, []byte{v})
}

func int8Init(name string, dims []int64, v []int8) *onnxpb.TensorProto {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return tensor(name, dims, onnxpb.TensorProto_INT8, raw)
}

func int32Init(name string, dims []int64, v []int32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
	}
	return tensor(name, dims, onnxpb.TensorProto_INT32, raw)
}
