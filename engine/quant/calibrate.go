package quant

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/engine/ort"
)

// Methods of range calibration.
const (
	// MinMax takes each activation's smallest and largest value over the
	// calibration inputs.
	MinMax = "minmax"
	// Percentile takes, per input, the values at Percentile and 100 -
	// Percentile per cent, then the widest over the inputs: it clips rare
	// outliers and gives the bulk of the values finer steps.
	Percentile = "percentile"
)

// Calibration says how activation ranges are measured.
type Calibration struct {
	Method     string  // MinMax or Percentile
	Percentile float64 // for Percentile, e.g. 99.99
	ORT        ort.Options
}

// Input is one calibration input: a float32 NCDHW tensor.
type Input struct {
	Data  []float32
	Shape [5]int64
}

// sampleCap bounds the values a percentile is estimated from per tensor
// and input: a stride through the tensor keeps the estimate cheap.
const sampleCap = 1 << 20

// Calibrate runs the float32 model m in ONNX Runtime on each input with
// every tensor of Targets(m) as an extra output and returns their ranges.
func Calibrate(m *onnxpb.ModelProto, inputs []Input, c Calibration) (map[string]Range, error) {
	if c.Method != MinMax && c.Method != Percentile {
		return nil, fmt.Errorf("quant: calibration method %q (want %s or %s)", c.Method, MinMax, Percentile)
	}
	if c.Method == Percentile && !(c.Percentile > 50 && c.Percentile <= 100) {
		return nil, fmt.Errorf("quant: percentile %v not in (50, 100]", c.Percentile)
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("quant: no calibration inputs")
	}
	if err := wellFormed(m.GetGraph()); err != nil {
		return nil, err
	}
	targets := Targets(m)
	probe := proto.Clone(m).(*onnxpb.ModelProto)
	g := probe.GetGraph()
	in := g.Input[0].GetName()
	var outs []string
	for _, t := range targets {
		if t == in {
			continue // the input's range is read from the input itself
		}
		outs = append(outs, t)
		elem := int32(onnxpb.TensorProto_FLOAT)
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(t),
			Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: &elem}}}})
	}
	ranges := map[string]Range{}
	merge := func(name string, v []float32) error {
		r, err := measure(v, c)
		if err != nil {
			return fmt.Errorf("quant: calibration: %s: %w", name, err)
		}
		if old, ok := ranges[name]; ok {
			r = Range{min(old.Lo, r.Lo), max(old.Hi, r.Hi)}
		}
		ranges[name] = r
		return nil
	}
	if slices.Contains(targets, in) {
		for _, x := range inputs {
			if err := merge(in, x.Data); err != nil {
				return nil, err
			}
		}
	}
	if len(outs) == 0 {
		return ranges, nil // nothing inside the network to measure
	}
	data, err := proto.Marshal(probe)
	if err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	s, err := ort.OpenMulti(data, in, outs, c.ORT)
	if err != nil {
		return nil, fmt.Errorf("quant: calibration: %w", err)
	}
	defer s.Close()
	for _, x := range inputs {
		if err := s.Run(x.Data, x.Shape[:], merge); err != nil {
			return nil, fmt.Errorf("quant: calibration: %w", err)
		}
	}
	return ranges, nil
}

// measure returns the range of v by c's method.
func measure(v []float32, c Calibration) (Range, error) {
	if len(v) == 0 {
		return Range{}, fmt.Errorf("empty tensor")
	}
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range v {
		if x != x || math.IsInf(float64(x), 0) {
			return Range{}, fmt.Errorf("non-finite value %v", x)
		}
		lo, hi = min(lo, x), max(hi, x)
	}
	if c.Method == MinMax || c.Percentile == 100 {
		return Range{lo, hi}, nil
	}
	step := max(1, len(v)/sampleCap)
	s := make([]float32, 0, len(v)/step+1)
	for i := 0; i < len(v); i += step {
		s = append(s, v[i])
	}
	slices.Sort(s)
	at := func(p float64) float32 {
		return s[min(len(s)-1, int(math.Round(p/100*float64(len(s)-1))))]
	}
	return Range{at(100 - c.Percentile), at(c.Percentile)}, nil
}
