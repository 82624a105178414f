package onnx_test

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/onnx/onnxpb"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/model"
)

// keep names a folder where the tests leave copies of the models they
// export, for scripts/check-onnx: go test ./onnx -args -keep DIR
var keep = flag.String("keep", "", "copy exported test models into this folder")

var testMeta = onnx.Metadata{
	Version:       "test",
	Architecture:  json.RawMessage(`{"width": 8, "classes": 2}`),
	Preprocessing: json.RawMessage(`{"hu_window": [-1024, 600], "grid": [20, 224, 224]}`),
	Classes:       []string{"background", "infiltrate"},
}

// writeModel writes m to a temporary file (and a copy into -keep).
func writeModel(t *testing.T, m *onnxpb.ModelProto) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	if *keep != "" {
		base := filepath.Join(*keep, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		name := base + ".onnx"
		for i := 2; ; i++ {
			if _, err := os.Stat(name); os.IsNotExist(err) {
				break
			}
			name = base + "-" + strconv.Itoa(i) + ".onnx"
		}
		if err := onnx.Write(name, m); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func openModel(t *testing.T, m *onnxpb.ModelProto) *ort.Session {
	t.Helper()
	s, err := ort.Open(writeModel(t, m), ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func run(t *testing.T, s *ort.Session, x *vol) *vol {
	t.Helper()
	in := make([]float32, len(x.data))
	for i, v := range x.data {
		in[i] = float32(v)
	}
	var shape [5]int64
	for i, d := range x.shape {
		shape[i] = int64(d)
	}
	out, os, err := s.Run(in, shape)
	if err != nil {
		t.Fatal(err)
	}
	y := &vol{data: make([]float64, len(out))}
	for i, d := range os {
		y.shape[i] = int(d)
	}
	for i, v := range out {
		y.data[i] = float64(v)
	}
	return y
}

// relL2 is ||got - want|| / ||want||.
func relL2(t *testing.T, got, want *vol) float64 {
	t.Helper()
	if got.shape != want.shape {
		t.Fatalf("shape %v, want %v", got.shape, want.shape)
	}
	var num, den float64
	for i := range got.data {
		d := got.data[i] - want.data[i]
		num += d * d
		den += want.data[i] * want.data[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func countOps(m *onnxpb.ModelProto, op string) int {
	n := 0
	for _, node := range m.GetGraph().GetNode() {
		if node.GetOpType() == op {
			n++
		}
	}
	return n
}

// check builds net through the Builder and the reference, runs the model in
// ONNX Runtime on each input and requires a relative L2 error within tol.
func check(t *testing.T, w map[string]onnx.Tensor, opts onnx.Options, tol float64,
	netS func(model.Ops[string], string) string, netR func(model.Ops[*vol], *vol) *vol, xs ...*vol) *onnxpb.ModelProto {
	t.Helper()
	m, err := onnx.Build(netS, xs[0].shape[1], w, testMeta, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := openModel(t, m)
	for _, x := range xs {
		want := netR(refOps{w}, x)
		got := run(t, s, x)
		if e := relL2(t, got, want); e > tol || math.IsNaN(e) {
			t.Errorf("input %v: rel L2 error %.3g > %.3g", x.shape, e, tol)
		}
	}
	return m
}

func TestConv(t *testing.T) {
	specs := []model.ConvSpec{
		{In: 3, Out: 4, Kernel: [3]int{3, 3, 3}, Stride: [3]int{1, 1, 1}, Padding: [3]int{1, 1, 1}},
		{In: 2, Out: 5, Kernel: [3]int{3, 7, 7}, Stride: [3]int{1, 2, 2}, Padding: [3]int{1, 3, 3}, Bias: true},
		{In: 3, Out: 2, Kernel: [3]int{2, 3, 4}, Stride: [3]int{2, 3, 1}, Padding: [3]int{0, 2, 1}, Bias: true},
		{In: 4, Out: 3, Kernel: [3]int{1, 1, 1}, Stride: [3]int{2, 2, 2}, Padding: [3]int{0, 0, 0}},
		{In: 2, Out: 2, Kernel: [3]int{3, 3, 3}, Stride: [3]int{1, 1, 1}, Padding: [3]int{2, 2, 2}, Bias: true},
	}
	for i, spec := range specs {
		r := newRandWeights(uint64(i))
		r.conv("c", spec)
		xs := []*vol{r.input([5]int{2, spec.In, 5, 9, 11}), r.input([5]int{1, spec.In, 4, 7, 6})}
		check(t, r.w, onnx.Options{}, 1e-6,
			func(o model.Ops[string], x string) string { return o.Conv3d("c", x, spec) },
			func(o model.Ops[*vol], x *vol) *vol { return o.Conv3d("c", x, spec) }, xs...)
	}
}

func TestBatchNorm(t *testing.T) {
	r := newRandWeights(10)
	r.bn("bn", 3)
	bn := model.BNSpec{Channels: 3}
	m := check(t, r.w, onnx.Options{}, 1e-6,
		func(o model.Ops[string], x string) string { return o.BatchNorm3d("bn", x, bn) },
		func(o model.Ops[*vol], x *vol) *vol { return o.BatchNorm3d("bn", x, bn) },
		r.input([5]int{2, 3, 3, 5, 7}))
	if n := countOps(m, "BatchNormalization"); n != 1 {
		t.Errorf("%d BatchNormalization nodes, want 1: a BN with no conv before it stays", n)
	}
}

func convBN[T any](o model.Ops[T], x T, s model.ConvSpec) T {
	return o.ReLU(o.BatchNorm3d("bn", o.Conv3d("c", x, s), model.BNSpec{Channels: s.Out}))
}

func TestConvBNFolding(t *testing.T) {
	for _, bias := range []bool{false, true} {
		for _, keepBN := range []bool{false, true} {
			spec := model.ConvSpec{In: 3, Out: 5, Kernel: [3]int{3, 3, 3}, Stride: [3]int{1, 2, 1}, Padding: [3]int{1, 1, 1}, Bias: bias}
			r := newRandWeights(20)
			r.conv("c", spec)
			r.bn("bn", 5)
			m := check(t, r.w, onnx.Options{KeepBatchNorm: keepBN}, 1e-6,
				func(o model.Ops[string], x string) string { return convBN(o, x, spec) },
				func(o model.Ops[*vol], x *vol) *vol { return convBN(o, x, spec) },
				r.input([5]int{2, 3, 5, 6, 7}))
			want := 0
			if keepBN {
				want = 1
			}
			if n := countOps(m, "BatchNormalization"); n != want {
				t.Errorf("bias %v, keep %v: %d BatchNormalization nodes, want %d", bias, keepBN, n, want)
			}
			if n := len(m.GetGraph().GetInitializer()); keepBN && n != 5+b2i(bias) || !keepBN && n != 2 {
				t.Errorf("bias %v, keep %v: %d initializers", bias, keepBN, n)
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sharedConvOutput[T any](o model.Ops[T], x T, s model.ConvSpec) T {
	c := o.Conv3d("c", x, s)
	return o.Add(c, o.BatchNorm3d("bn", c, model.BNSpec{Channels: s.Out}))
}

// A conv whose output feeds more than the BN must not be folded.
func TestNoFoldWhenConvOutputShared(t *testing.T) {
	spec := model.ConvSpec{In: 2, Out: 3, Kernel: [3]int{1, 3, 3}, Stride: [3]int{1, 1, 1}, Padding: [3]int{0, 1, 1}}
	r := newRandWeights(30)
	r.conv("c", spec)
	r.bn("bn", 3)
	m := check(t, r.w, onnx.Options{}, 1e-6,
		func(o model.Ops[string], x string) string { return sharedConvOutput(o, x, spec) },
		func(o model.Ops[*vol], x *vol) *vol { return sharedConvOutput(o, x, spec) },
		r.input([5]int{1, 2, 3, 4, 5}))
	if n := countOps(m, "BatchNormalization"); n != 1 {
		t.Errorf("%d BatchNormalization nodes, want 1", n)
	}
}

func concatAddReLU[T any](o model.Ops[T], x T) T {
	a := o.ReLU(x)
	b := o.Add(x, a)
	return o.Concat(a, x, b)
}

func TestConcatAddReLU(t *testing.T) {
	r := newRandWeights(40)
	m := check(t, r.w, onnx.Options{}, 0,
		concatAddReLU[string], concatAddReLU[*vol],
		r.input([5]int{2, 3, 3, 4, 5}), r.input([5]int{1, 3, 1, 1, 7}))
	if n := countOps(m, "Concat"); n != 1 {
		t.Errorf("%d Concat nodes", n)
	}
}

func downUp[T any](o model.Ops[T], x T, s model.ConvSpec) T {
	a := o.Conv3d("c", x, s)
	return o.ResizeNearestLike(o.ResizeNearestLike(x, a), x)
}

// TestResizeNearest checks Resize (nearest, asymmetric, floor) against the
// exact floor(dst*in/out) over many odd ratios up and down, on the same
// session for every size (dynamic shapes). The values pass through, so the
// result must be exact.
func TestResizeNearest(t *testing.T) {
	for _, sp := range [][2][3]int{
		{{1, 3, 2}, {2, 0, 1}}, // D up-first, H down by 3, W down by 2
		{{2, 1, 5}, {3, 4, 0}},
		{{4, 3, 1}, {1, 0, 3}},
	} {
		spec := model.ConvSpec{In: 1, Out: 1, Kernel: [3]int{1, 1, 1}, Stride: sp[0], Padding: sp[1]}
		w := map[string]onnx.Tensor{"c.weight": {Shape: []int{1, 1, 1, 1, 1}, Data: []float32{1}}}
		m, err := onnx.Build(func(o model.Ops[string], x string) string { return downUp(o, x, spec) }, 1, w, testMeta, onnx.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := openModel(t, m)
		for n := 1; n <= 24; n++ {
			x := newVol([5]int{1, 1, n, n + 5, 2*n + 1})
			for i := range x.data {
				x.data[i] = float64(i + 1)
			}
			want := downUp[*vol](refOps{w}, x, spec)
			got := run(t, s, x)
			if e := relL2(t, got, want); e != 0 {
				t.Fatalf("stride %v pad %v, input %v: rel L2 error %.3g, want exact", sp[0], sp[1], x.shape, e)
			}
		}
	}
}

// TestResizeNearestRatios resizes along W between every pair of sizes the
// specs make from 1..45, in both directions, and requires exactly PyTorch's
// indices. The pairs include in 14, out 16 (where ONNX Runtime's own Resize
// is a voxel short) and in 2, out 82 (where PyTorch's float32 rule is not
// floor(dst*in/out)).
func TestResizeNearestRatios(t *testing.T) {
	w := map[string]onnx.Tensor{"c.weight": {Shape: []int{1, 1, 1, 1, 1}, Data: []float32{1}}}
	for s := 1; s <= 4; s++ {
		for _, p := range []int{0, 1, 2, 3, 40} {
			spec := model.ConvSpec{In: 1, Out: 1, Kernel: [3]int{1, 1, 1}, Stride: [3]int{1, 1, s}, Padding: [3]int{0, 0, p}}
			for _, up := range []bool{false, true} {
				net := func(o model.Ops[string], x string) string {
					a := o.Conv3d("c", x, spec)
					if up {
						return o.ResizeNearestLike(a, x)
					}
					return o.ResizeNearestLike(x, a)
				}
				m, err := onnx.Build(net, 1, w, testMeta, onnx.Options{})
				if err != nil {
					t.Fatal(err)
				}
				sess := openModel(t, m)
				for n := 1; n <= 45; n++ {
					x := newVol([5]int{1, 1, 1, 2, n})
					for i := range x.data {
						x.data[i] = float64(i + 1)
					}
					a := refOps{w}.Conv3d("c", x, spec)
					want := refOps{w}.ResizeNearestLike(x, a)
					if up {
						want = refOps{w}.ResizeNearestLike(a, x)
					}
					if e := relL2(t, run(t, sess, x), want); e != 0 {
						t.Errorf("stride %d pad %d up %v, input width %d: rel L2 error %.3g, want exact", s, p, up, n, e)
					}
				}
			}
		}
	}
}

// tinyNet uses every op the way covseg's U-Net does: a strided stem with a
// folded BN, a residual block, a downsampling conv, a skip BN without a conv
// before it, a padding-2 "up" conv resized to the skip, a concat, a conv with
// bias resized to the input and a 1x1 output conv with BN.
func tinyNet[T any](o model.Ops[T], x T) T {
	c := func(name string, x T, in, out, k, s, p int, bias bool) T {
		return o.Conv3d(name, x, model.ConvSpec{In: in, Out: out, Kernel: [3]int{k, k, k}, Stride: [3]int{1, s, s}, Padding: [3]int{p, p, p}, Bias: bias})
	}
	bn := func(name string, x T, ch int) T { return o.BatchNorm3d(name, x, model.BNSpec{Channels: ch}) }
	stem := o.ReLU(bn("stem.1", o.Conv3d("stem.0", x, model.ConvSpec{In: 1, Out: 4, Kernel: [3]int{3, 7, 7}, Stride: [3]int{1, 2, 2}, Padding: [3]int{1, 3, 3}}), 4))
	r := o.ReLU(bn("l1.bn1", c("l1.conv1", stem, 4, 4, 3, 1, 1, false), 4))
	r = bn("l1.bn2", c("l1.conv2", r, 4, 4, 3, 1, 1, false), 4)
	e1 := o.ReLU(o.Add(stem, r))
	e2 := o.ReLU(bn("l2.bn", c("l2.conv", e1, 4, 6, 3, 2, 1, false), 6))
	up := o.ReLU(bn("up.1", c("up.0", e2, 6, 3, 3, 1, 2, false), 3))
	up = o.ResizeNearestLike(up, e1)
	y := o.ReLU(o.Concat(up, bn("skip_bn", e1, 4)))
	y = c("head", y, 7, 3, 3, 1, 2, true)
	y = o.Concat(o.ResizeNearestLike(y, x), x)
	return bn("out.1", c("out.0", y, 4, 2, 1, 1, 0, false), 2)
}

func tinyWeights(seed uint64) map[string]onnx.Tensor {
	r := newRandWeights(seed)
	conv := func(name string, in, out int, k [3]int, bias bool) {
		r.conv(name, model.ConvSpec{In: in, Out: out, Kernel: k, Bias: bias})
	}
	k3 := [3]int{3, 3, 3}
	conv("stem.0", 1, 4, [3]int{3, 7, 7}, false)
	r.bn("stem.1", 4)
	conv("l1.conv1", 4, 4, k3, false)
	r.bn("l1.bn1", 4)
	conv("l1.conv2", 4, 4, k3, false)
	r.bn("l1.bn2", 4)
	conv("l2.conv", 4, 6, k3, false)
	r.bn("l2.bn", 6)
	conv("up.0", 6, 3, k3, false)
	r.bn("up.1", 3)
	r.bn("skip_bn", 4)
	conv("head", 7, 3, k3, true)
	conv("out.0", 4, 2, [3]int{1, 1, 1}, false)
	r.bn("out.1", 2)
	return r.w
}

func TestTinyNetwork(t *testing.T) {
	w := tinyWeights(50)
	r := newRandWeights(51)
	xs := []*vol{r.input([5]int{2, 1, 5, 13, 11}), r.input([5]int{1, 1, 7, 9, 17}), r.input([5]int{1, 1, 3, 8, 8})}
	for _, keepBN := range []bool{false, true} {
		m := check(t, w, onnx.Options{KeepBatchNorm: keepBN}, 1e-6, tinyNet[string], tinyNet[*vol], xs...)
		want := 1 // only skip_bn has no conv before it
		if keepBN {
			want = 7
		}
		if n := countOps(m, "BatchNormalization"); n != want {
			t.Errorf("keep %v: %d BatchNormalization nodes, want %d", keepBN, n, want)
		}
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	m, err := onnx.Build(tinyNet[string], 1, tinyWeights(60), testMeta, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetIrVersion() != 8 || len(m.GetOpsetImport()) != 1 || m.GetOpsetImport()[0].GetVersion() != 17 || m.GetOpsetImport()[0].GetDomain() != "" {
		t.Errorf("ir_version %d, opsets %v; want 8 and ai.onnx 17", m.GetIrVersion(), m.GetOpsetImport())
	}
	path := writeModel(t, m)

	s, err := ort.Open(path, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fromORT, err := onnx.ParseMetadata(s.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := onnx.ReadMetadata(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []onnx.Metadata{fromORT, fromFile} {
		if got.Version != testMeta.Version || strings.Join(got.Classes, ",") != "background,infiltrate" ||
			string(got.Architecture) != `{"width":8,"classes":2}` ||
			string(got.Preprocessing) != `{"hu_window":[-1024,600],"grid":[20,224,224]}` {
			t.Errorf("metadata %+v (arch %s, pre %s)", got, got.Architecture, got.Preprocessing)
		}
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := onnx.Describe(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Inputs) != 1 || len(info.Outputs) != 1 {
		t.Fatalf("inputs %v outputs %v", info.Inputs, info.Outputs)
	}
	for _, v := range []*onnxpb.ValueInfoProto{info.Inputs[0], info.Outputs[0]} {
		var dims []string
		for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
			if d.GetDimParam() != "" {
				dims = append(dims, d.GetDimParam())
			} else {
				dims = append(dims, strconv.FormatInt(d.GetDimValue(), 10))
			}
		}
		if got := strings.Join(dims, ","); got != "batch,1,depth,height,width" && got != "batch,2,depth,height,width" {
			t.Errorf("%s dims %s", v.GetName(), got)
		}
	}
	if info.IRVersion != 8 || info.Opsets[""] != 17 {
		t.Errorf("Describe: ir %d opsets %v", info.IRVersion, info.Opsets)
	}
}

func TestParseMetadataRefuses(t *testing.T) {
	good := map[string]string{
		onnx.KeyVersion: "1", onnx.KeyArchitecture: `{}`, onnx.KeyPreprocessing: `{}`, onnx.KeyClasses: `["bg"]`,
	}
	if _, err := onnx.ParseMetadata(good); err != nil {
		t.Fatal(err)
	}
	for key, bad := range map[string]string{
		onnx.KeyVersion:       "",
		onnx.KeyArchitecture:  `[1]`,
		onnx.KeyPreprocessing: `{"a":`,
		onnx.KeyClasses:       `[]`,
	} {
		p := map[string]string{}
		for k, v := range good {
			p[k] = v
		}
		p[key] = bad
		if _, err := onnx.ParseMetadata(p); err == nil {
			t.Errorf("%s = %q accepted", key, bad)
		}
		delete(p, key)
		if _, err := onnx.ParseMetadata(p); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("missing %s: error %v", key, err)
		}
	}
}

func TestBuilderErrors(t *testing.T) {
	spec := model.ConvSpec{In: 1, Out: 2, Kernel: [3]int{1, 1, 1}, Stride: [3]int{1, 1, 1}}
	ok := map[string]onnx.Tensor{"c.weight": {Shape: []int{2, 1, 1, 1, 1}, Data: []float32{1, 2}}}
	conv := func(o model.Ops[string], x string) string { return o.Conv3d("c", x, spec) }
	cases := []struct {
		name    string
		w       map[string]onnx.Tensor
		in      int
		net     onnx.Net
		meta    onnx.Metadata
		wantErr string
	}{
		{"missing weight", map[string]onnx.Tensor{}, 1, conv, testMeta, `"c.weight" is missing`},
		{"wrong shape", map[string]onnx.Tensor{"c.weight": {Shape: []int{2, 1, 1, 1, 2}, Data: make([]float32, 4)}}, 1, conv, testMeta, `"c.weight" has shape [2 1 1 1 2]`},
		{"short data", map[string]onnx.Tensor{"c.weight": {Shape: []int{2, 1, 1, 1, 1}, Data: make([]float32, 1)}}, 1, conv, testMeta, `"c.weight": shape`},
		{"NaN", map[string]onnx.Tensor{"c.weight": {Shape: []int{2, 1, 1, 1, 1}, Data: []float32{1, float32(math.NaN())}}}, 1, conv, testMeta, "non-finite"},
		{"channels", ok, 3, conv, testMeta, "expects 1 input channels, got 3"},
		{"bad spec", ok, 1, func(o model.Ops[string], x string) string {
			return o.Conv3d("c", x, model.ConvSpec{In: 1, Out: 2, Kernel: [3]int{1, 1, 1}})
		}, testMeta, "stride"},
		{"negative variance", map[string]onnx.Tensor{
			"b.weight": {Shape: []int{1}, Data: []float32{1}}, "b.bias": {Shape: []int{1}, Data: []float32{0}},
			"b.running_mean": {Shape: []int{1}, Data: []float32{0}}, "b.running_var": {Shape: []int{1}, Data: []float32{-1}},
		}, 1, func(o model.Ops[string], x string) string { return o.BatchNorm3d("b", x, model.BNSpec{Channels: 1}) }, testMeta, "negative variances"},
		{"add mismatch", ok, 1, func(o model.Ops[string], x string) string { return o.Add(x, conv(o, x)) }, testMeta, "channels"},
		{"unknown value", ok, 1, func(o model.Ops[string], x string) string { return o.ReLU("nope") }, testMeta, `unknown value "nope"`},
		{"no classes", ok, 1, conv, onnx.Metadata{Version: "1", Architecture: json.RawMessage(`{}`), Preprocessing: json.RawMessage(`{}`)}, "class"},
		{"bad architecture", ok, 1, conv, onnx.Metadata{Version: "1", Architecture: json.RawMessage(`nope`), Preprocessing: json.RawMessage(`{}`), Classes: []string{"a"}}, onnx.KeyArchitecture},
	}
	for _, c := range cases {
		_, err := onnx.Build(c.net, c.in, c.w, c.meta, onnx.Options{})
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.wantErr)
		}
	}
}

func TestWriteAtomic(t *testing.T) {
	m, err := onnx.Build(tinyNet[string], 1, tinyWeights(70), testMeta, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.ReadMetadata(path); err != nil {
		t.Errorf("replaced file: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after the write, want 1", len(entries))
	}
	if err := onnx.Write(filepath.Join(dir, "missing", "m.onnx"), m); err == nil {
		t.Error("write into a missing folder succeeded")
	}
	if _, err := onnx.ReadMetadata(filepath.Join(dir, "none.onnx")); err == nil {
		t.Error("ReadMetadata of a missing file succeeded")
	}
	if err := os.WriteFile(path, []byte("\xff\xff\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.ReadMetadata(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadMetadata of garbage: %v", err)
	}
}

func FuzzDescribe(f *testing.F) {
	m, err := onnx.Build(tinyNet[string], 1, tinyWeights(80), testMeta, onnx.Options{})
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := onnx.Write(path, m); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	f.Add([]byte{0x3a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := onnx.Describe(data)
		if err != nil {
			return
		}
		if _, err := onnx.ParseMetadata(info.Props); err != nil {
			return
		}
	})
}

func FuzzParseMetadata(f *testing.F) {
	f.Add("1", `{"a":1}`, `{}`, `["bg","fg"]`)
	f.Add("", `[]`, `null`, `[1]`)
	f.Fuzz(func(t *testing.T, version, arch, pre, classes string) {
		p := map[string]string{onnx.KeyVersion: version, onnx.KeyArchitecture: arch, onnx.KeyPreprocessing: pre, onnx.KeyClasses: classes}
		m, err := onnx.ParseMetadata(p)
		if err != nil {
			return
		}
		// What parses must encode and parse back to itself.
		b, err := onnx.Build(func(o model.Ops[string], x string) string { return o.ReLU(x) }, 1, nil, m, onnx.Options{})
		if err != nil {
			t.Fatalf("parsed metadata %+v does not encode: %v", m, err)
		}
		back := map[string]string{}
		for _, e := range b.GetMetadataProps() {
			back[e.GetKey()] = e.GetValue()
		}
		m2, err := onnx.ParseMetadata(back)
		if err != nil || m2.Version != m.Version || string(m2.Architecture) != string(m.Architecture) ||
			string(m2.Preprocessing) != string(m.Preprocessing) || strings.Join(m2.Classes, "\x00") != strings.Join(m.Classes, "\x00") {
			t.Fatalf("round trip: %+v -> %+v (%v)", m, m2, err)
		}
	})
}
