package quant

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/model"
)

var testMeta = onnx.Metadata{
	Version:       "test",
	Architecture:  json.RawMessage(`{}`),
	Preprocessing: json.RawMessage(`{}`),
	Classes:       []string{"background", "a"},
}

// convNet is conv(3x3x3) → ReLU → conv(3x3x3) → ReLU → conv(1x1x1, 2
// channels): one convolution with a quantised input and output, and the
// output layer that stays float.
func convNet(ch int) (onnx.Net, map[string]onnx.Tensor) {
	r := rand.New(rand.NewPCG(1, 2))
	w := map[string]onnx.Tensor{}
	param := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		fan := float64(n / shape[0])
		t := onnx.Tensor{Shape: shape, Data: make([]float32, n)}
		for i := range t.Data {
			t.Data[i] = float32(r.NormFloat64() * math.Sqrt(2/fan))
		}
		w[name] = t
	}
	k3 := model.ConvSpec{In: ch, Out: ch, Kernel: [3]int{3, 3, 3}, Stride: [3]int{1, 1, 1}, Padding: [3]int{1, 1, 1}, Bias: true}
	k1 := model.ConvSpec{In: ch, Out: 2, Kernel: [3]int{1, 1, 1}, Stride: [3]int{1, 1, 1}, Bias: true}
	param("a.weight", ch, ch, 3, 3, 3)
	param("a.bias", ch)
	param("b.weight", ch, ch, 3, 3, 3)
	param("b.bias", ch)
	param("c.weight", 2, ch, 1, 1, 1)
	param("c.bias", 2)
	net := func(o model.Ops[string], x string) string {
		x = o.ReLU(o.Conv3d("a", x, k3))
		x = o.ReLU(o.Conv3d("b", x, k3))
		return o.Conv3d("c", x, k1)
	}
	return net, w
}

func randomInput(ch int, shape [5]int64, seed uint64) Input {
	r := rand.New(rand.NewPCG(seed, 7))
	n := shape[0] * shape[1] * shape[2] * shape[3] * shape[4]
	x := Input{Data: make([]float32, n), Shape: shape}
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

// buildPair returns the float32 model and its int8 version calibrated on
// two random inputs.
func buildPair(t testing.TB, ch int, shape [5]int64) (*onnxpb.ModelProto, *onnxpb.ModelProto) {
	net, w := convNet(ch)
	m, err := onnx.Build(net, ch, w, testMeta, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cal := []Input{randomInput(ch, shape, 1), randomInput(ch, shape, 2)}
	ranges, err := Calibrate(m, cal, Calibration{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	q, err := Model(m, ranges, map[string]string{"covseg.precision": "int8"})
	if err != nil {
		t.Fatal(err)
	}
	return m, q
}

func write(t testing.TB, m *onnxpb.ModelProto, name string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := onnx.Write(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}

// opTypes returns the node types of the model ONNX Runtime saved after its
// graph optimisations, with their counts.
func opTypes(t testing.TB, path string) map[string]int {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range m.GetGraph().GetNode() {
		ops[n.GetDomain()+":"+n.GetOpType()]++
	}
	return ops
}

func runModel(t testing.TB, path string, opts ort.Options, x Input) []float32 {
	s, err := ort.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	y, _, err := s.Run(x.Data, x.Shape)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// TestORTFusesQDQConv3d checks that ONNX Runtime's CPU provider turns the
// 3D QDQ convolutions into integer kernels (QLinearConv) instead of running
// them as float Conv between DequantizeLinear nodes, and that the int8
// model agrees with the float32 one.
func TestORTFusesQDQConv3d(t *testing.T) {
	const ch = 8
	shape := [5]int64{1, ch, 6, 10, 10}
	m, q := buildPair(t, ch, shape)
	fp, qp := write(t, m, "f.onnx"), write(t, q, "q.onnx")
	opt := filepath.Join(t.TempDir(), "q.opt.onnx")
	x := randomInput(ch, shape, 3)
	yq := runModel(t, qp, ort.Options{OptimizedModelPath: opt}, x)
	yf := runModel(t, fp, ort.Options{}, x)
	ops := opTypes(t, opt)
	var names []string
	for k, v := range ops {
		names = append(names, k+"×"+itoa(v))
	}
	sort.Strings(names)
	t.Logf("ONNX Runtime's optimised int8 graph: %v", names)
	// ONNX Runtime 1.30 runs them as the channels-last contrib kernel
	// com.microsoft:QLinearConv, between two Transposes.
	if ops[":QLinearConv"]+ops["com.microsoft:QLinearConv"] != 2 {
		t.Errorf("want the two 3x3x3 convolutions fused into QLinearConv, got %v", names)
	}
	if ops[":Relu"] != 0 {
		t.Errorf("ReLUs before a QuantizeLinear with zero point 0 should be removed, got %v", names)
	}
	var maxDiff, maxAbs float64
	for i := range yf {
		maxDiff = max(maxDiff, math.Abs(float64(yq[i]-yf[i])))
		maxAbs = max(maxAbs, math.Abs(float64(yf[i])))
	}
	t.Logf("largest |int8 - float32| %.4g of largest |float32| %.4g", maxDiff, maxAbs)
	if maxDiff > 0.05*maxAbs {
		t.Errorf("int8 output differs from float32 by %.4g (largest value %.4g)", maxDiff, maxAbs)
	}
}

func itoa(v int) string { b, _ := json.Marshal(v); return string(b) }
