package quant

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/model"
	"google.golang.org/protobuf/proto"
)

// chestLike is a smooth pattern with noise in covseg's normalised
// intensity range, D×H×W: the random network sees varied activations.
func chestLike(d, h, w int, phase float64) Input {
	x := Input{Data: make([]float32, d*h*w), Shape: [5]int64{1, 1, int64(d), int64(h), int64(w)}}
	for k := range d {
		for j := range h {
			for i := range w {
				v := math.Sin(float64(i)/5+phase)*math.Cos(float64(j)/7) + 0.3*math.Sin(float64(k)/3+float64(i*j)/50)
				x.Data[(k*h+j)*w+i] = float32(v)
			}
		}
	}
	return x
}

// TestQuantizeCovsegNetwork quantises covseg's own network (the R3D-18
// U-Net at width 1/16, random weights) and checks that ONNX Runtime runs
// every convolution but the float output layer as QLinearConv, and that
// the int8 logits stay near the float32 ones on an input that was not
// used for calibration.
func TestQuantizeCovsegNetwork(t *testing.T) {
	cfg := model.DefaultConfig()
	cfg.Width = 1.0 / 16
	ctx, err := model.NewContext(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := onnx.Export(path, cfg, ctx, "test", onnx.Options{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	convs := 0
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() == "Conv" {
			convs++
		}
	}
	cal := []Input{chestLike(16, 64, 64, 0), chestLike(16, 64, 64, 1)}
	ranges, err := Calibrate(m, cal, Calibration{Method: MinMax})
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != len(Targets(m)) {
		t.Errorf("%d ranges for %d targets", len(ranges), len(Targets(m)))
	}
	q, err := Model(m, ranges, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, init := range q.GetGraph().GetInitializer() {
		if init.GetDataType() == int32(onnxpb.TensorProto_FLOAT) && len(init.GetDims()) == 5 && len(init.GetRawData()) > 4*64 {
			if init.GetDims()[0] != 2 { // only the output layer keeps float weights
				t.Errorf("float weight %s %v left in the int8 model", init.GetName(), init.GetDims())
			}
		}
	}
	fp, qp := write(t, m, "f.onnx"), write(t, q, "q.onnx")
	opt := t.TempDir() + "/opt.onnx"
	x := chestLike(16, 64, 64, 2.5)
	yq := runModel(t, qp, ort.Options{OptimizedModelPath: opt}, x)
	yf := runModel(t, fp, ort.Options{}, x)
	ops := opTypes(t, opt)
	t.Logf("float32 graph: %d Conv; optimised int8 graph: %v", convs, ops)
	if got := ops["com.microsoft:QLinearConv"] + ops[":QLinearConv"]; got != convs-1 || ops[":Conv"] != 1 {
		t.Errorf("%d of %d convolutions run as QLinearConv, %d as float Conv; want all but the output layer", got, convs, ops[":Conv"])
	}
	for _, op := range []string{"QLinearAdd", "QLinearConcat"} {
		if ops["com.microsoft:"+op] == 0 {
			t.Errorf("no %s in the optimised graph", op)
		}
	}
	var maxDiff, maxAbs float64
	agree := 0
	sp := len(yf) / 2
	for i := range yf {
		maxDiff = max(maxDiff, math.Abs(float64(yq[i]-yf[i])))
		maxAbs = max(maxAbs, math.Abs(float64(yf[i])))
	}
	for i := range sp {
		if (yf[i] > yf[sp+i]) == (yq[i] > yq[sp+i]) {
			agree++
		}
	}
	t.Logf("largest |int8 - float32| logit %.4g of %.4g; argmax agrees on %.2f%% of voxels", maxDiff, maxAbs, 100*float64(agree)/float64(sp))
	if maxDiff > 0.1*maxAbs {
		t.Errorf("int8 logits differ by %.4g (largest %.4g)", maxDiff, maxAbs)
	}
	if float64(agree) < 0.97*float64(sp) {
		t.Errorf("argmax agrees on %d of %d voxels", agree, sp)
	}
}

// TestModelRefusesMalformedConv checks that a Conv whose weight is not a
// 5D float initializer is an error, not a panic.
func TestModelRefusesMalformedConv(t *testing.T) {
	net, w := convNet(2)
	m, err := onnx.Build(net, 2, w, testMeta, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ranges := map[string]Range{}
	for _, v := range Targets(m) {
		ranges[v] = Range{-1, 1}
	}
	for _, init := range m.GetGraph().GetInitializer() {
		if len(init.GetDims()) == 5 {
			init.Dims = init.Dims[:4]
			break
		}
	}
	if _, err := Model(m, ranges, nil); err == nil {
		t.Error("a 4D convolution weight was accepted")
	}
	for _, init := range m.GetGraph().GetInitializer() {
		if len(init.GetDims()) == 4 {
			init.Dims = []int64{1 << 40, 1 << 40, 1, 1, 1}
		}
	}
	if _, err := Model(m, ranges, nil); err == nil {
		t.Error("absurd weight dims were accepted")
	}
}
