package covcpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	timage "github.com/gomlx/gomlx/pkg/core/tensors/images"
)

// convCase is a channels-first 3D convolution as the model builds it:
// x [N, C, D, H, W], kernel [O, C, kD, kH, kW], symmetric padding.
type convCase struct {
	name   string
	x      []int
	out    int
	kernel [3]int
	stride [3]int
	pad    [3]int
	dil    [3]int // kernel dilation; zero means 1
}

func (c convCase) kernelDims() []int {
	return []int{c.out, c.x[1], c.kernel[0], c.kernel[1], c.kernel[2]}
}

// build adds the convolution through graph.Convolve, as a model would.
func (c convCase) build(x, w *graph.Node) *graph.Node {
	conv := graph.Convolve(x, w).ChannelsAxis(timage.ChannelsFirst).
		StridePerAxis(c.stride[:]...).
		PaddingPerDim([][2]int{{c.pad[0], c.pad[0]}, {c.pad[1], c.pad[1]}, {c.pad[2], c.pad[2]}})
	if c.dil != [3]int{} {
		conv.DilationPerAxis(c.dil[:]...)
	}
	return conv.Done()
}

// outDims computes the output shape the way PyTorch does.
func (c convCase) outDims() []int {
	dims := []int{c.x[0], c.out, 0, 0, 0}
	for i := range 3 {
		dil := max(c.dil[i], 1)
		span := (c.kernel[i]-1)*dil + 1
		dims[2+i] = (c.x[2+i]+2*c.pad[i]-span)/c.stride[i] + 1
	}
	return dims
}

var gradCases = []convCase{
	{name: "k3 s1 p0", x: []int{1, 2, 5, 6, 7}, out: 3, kernel: [3]int{3, 3, 3}, stride: [3]int{1, 1, 1}},
	{name: "k3 s1 p1 batch2", x: []int{2, 2, 4, 5, 6}, out: 3, kernel: [3]int{3, 3, 3}, stride: [3]int{1, 1, 1}, pad: [3]int{1, 1, 1}},
	{name: "k3 s2 p1", x: []int{1, 2, 5, 7, 8}, out: 3, kernel: [3]int{3, 3, 3}, stride: [3]int{2, 2, 2}, pad: [3]int{1, 1, 1}},
	{name: "k3 s2 p2", x: []int{1, 2, 6, 7, 9}, out: 2, kernel: [3]int{3, 3, 3}, stride: [3]int{2, 2, 2}, pad: [3]int{2, 2, 2}},
	// GoMLX's input gradient refuses padding > kernel-1 (k3 p3), so p3 goes with k5.
	{name: "k5 s2 p3", x: []int{1, 2, 6, 7, 8}, out: 2, kernel: [3]int{5, 5, 5}, stride: [3]int{2, 2, 2}, pad: [3]int{3, 3, 3}},
	{name: "k3 s2 p0 odd", x: []int{1, 2, 7, 9, 11}, out: 2, kernel: [3]int{3, 3, 3}, stride: [3]int{2, 2, 2}},
	{name: "stem k377 s122 p133 C1", x: []int{1, 1, 4, 9, 11}, out: 4, kernel: [3]int{3, 7, 7}, stride: [3]int{1, 2, 2}, pad: [3]int{1, 3, 3}},
	{name: "stem k377 s122 p133 C2 batch2", x: []int{2, 2, 3, 8, 7}, out: 2, kernel: [3]int{3, 7, 7}, stride: [3]int{1, 2, 2}, pad: [3]int{1, 3, 3}},
	{name: "k1 s2 p0", x: []int{1, 3, 5, 6, 7}, out: 4, kernel: [3]int{1, 1, 1}, stride: [3]int{2, 2, 2}},
	{name: "k3 s1 p2 (faimed3d up)", x: []int{1, 2, 3, 4, 5}, out: 2, kernel: [3]int{3, 3, 3}, stride: [3]int{1, 1, 1}, pad: [3]int{2, 2, 2}},
	{name: "k3 dil2 p2", x: []int{1, 2, 6, 6, 7}, out: 2, kernel: [3]int{3, 3, 3}, stride: [3]int{1, 1, 1}, pad: [3]int{2, 2, 2}, dil: [3]int{2, 2, 2}},
}

// TestConvMatchesSimplego compares the adapter's forward convolution with
// simplego's own kernel on the model's configurations, in float32 and float64.
func TestConvMatchesSimplego(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sg := newSimplego(t)
	ad := newAdapter(t)
	for _, c := range gradCases {
		for _, f32 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/f32=%v", c.name, f32), func(t *testing.T) {
				x, w := randArr(rng, c.x...), randArr(rng, c.kernelDims()...)
				fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.build(in[0], in[1])} }
				want := execArrs(t, sg, f32, fn, x, w)[0]
				got := execArrs(t, ad, f32, fn, x, w)[0]
				if fmt.Sprint(got.dims) != fmt.Sprint(c.outDims()) {
					t.Fatalf("output dims %v, PyTorch would give %v", got.dims, c.outDims())
				}
				tol := 1e-12
				if f32 {
					tol = 1e-5
				}
				assertClose(t, "adapter vs simplego", got, want, tol)
			})
		}
	}
}

// generalConv is a ConvGeneral call with everything explicit.
type generalConv struct {
	name                            string
	x, kernel                       []int
	axes                            backends.ConvolveAxesConfig
	strides                         []int
	paddings                        [][2]int
	inputDilations, kernelDilations []int
}

func channelsFirst(spatial int) backends.ConvolveAxesConfig {
	s := make([]int, spatial)
	for i := range s {
		s[i] = 2 + i
	}
	return backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: s,
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: s,
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: s,
	}
}

// generalConvCases are what GoMLX's convolution gradients emit (input
// dilation, negative padding, swapped batch/channel axes, kernels larger
// than the output) and other layouts and ranks.
func generalConvCases() []generalConv {
	cf3 := channelsFirst(3)
	kernelGrad := backends.ConvolveAxesConfig{ // as convVJPWrtKernel builds it for NCDHW
		InputBatch: 1, InputChannels: 0, InputSpatial: []int{2, 3, 4},
		KernelInputChannels: 0, KernelOutputChannels: 1, KernelSpatial: []int{2, 3, 4},
		OutputBatch: 1, OutputChannels: 0, OutputSpatial: []int{2, 3, 4},
	}
	inputGrad := cf3 // as convVJPWrtX builds it: kernel channel axes swapped
	inputGrad.KernelInputChannels, inputGrad.KernelOutputChannels = 0, 1
	channelsLast := backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 4, InputSpatial: []int{1, 2, 3},
		KernelInputChannels: 3, KernelOutputChannels: 4, KernelSpatial: []int{0, 1, 2},
		OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3},
	}
	return []generalConv{
		{name: "input dilation", x: []int{1, 3, 4, 5, 6}, kernel: []int{2, 3, 3, 3, 2}, axes: cf3,
			strides: []int{1, 1, 1}, paddings: [][2]int{{1, 1}, {2, 1}, {0, 0}}, inputDilations: []int{2, 2, 1}},
		{name: "negative padding", x: []int{2, 2, 6, 7, 8}, kernel: []int{3, 2, 3, 2, 3}, axes: cf3,
			strides: []int{1, 2, 1}, paddings: [][2]int{{-1, 0}, {1, -1}, {0, -2}}},
		{name: "kernel dilation", x: []int{1, 2, 7, 8, 9}, kernel: []int{2, 2, 3, 3, 2}, axes: cf3,
			strides: []int{1, 1, 1}, paddings: [][2]int{{1, 1}, {0, 2}, {2, 2}}, kernelDilations: []int{1, 2, 3}},
		{name: "input grad layout", x: []int{1, 3, 3, 4, 4}, kernel: []int{3, 2, 3, 3, 3}, axes: inputGrad,
			strides: []int{1, 1, 1}, paddings: [][2]int{{1, 1}, {1, 2}, {1, 2}}, inputDilations: []int{2, 2, 2}},
		{name: "kernel grad layout", x: []int{2, 3, 7, 8, 9}, kernel: []int{2, 4, 3, 4, 4}, axes: kernelGrad,
			strides: []int{1, 1, 1}, paddings: [][2]int{{1, 1}, {1, 0}, {1, -1}}, kernelDilations: []int{2, 2, 2}},
		{name: "kernel grad layout strided", x: []int{2, 3, 9, 7, 8}, kernel: []int{2, 3, 3, 2, 3}, axes: kernelGrad,
			strides: []int{2, 1, 2}, paddings: [][2]int{{1, 1}, {0, 1}, {1, 0}}, kernelDilations: []int{2, 3, 2}},
		{name: "channels last", x: []int{2, 5, 6, 7, 3}, kernel: []int{3, 3, 3, 3, 4}, axes: channelsLast,
			strides: []int{2, 1, 2}, paddings: [][2]int{{1, 1}, {1, 1}, {0, 1}}},
		{name: "2D", x: []int{2, 3, 9, 10}, kernel: []int{4, 3, 3, 5}, axes: channelsFirst(2),
			strides: []int{2, 1}, paddings: [][2]int{{1, 1}, {2, 2}}},
		{name: "1D", x: []int{1, 2, 17}, kernel: []int{3, 2, 4}, axes: channelsFirst(1),
			strides: []int{3}, paddings: [][2]int{{0, 2}}, kernelDilations: []int{2}},
	}
}

// TestConvGeneralMatchesSimplego covers what GoMLX's convolution gradients
// emit (input dilation, negative padding, swapped batch/channel axes,
// kernels larger than the output) and other layouts and ranks.
func TestConvGeneralMatchesSimplego(t *testing.T) {
	cases := generalConvCases()
	rng := rand.New(rand.NewPCG(3, 4))
	sg, ad := newSimplego(t), newAdapter(t)
	for _, c := range cases {
		for _, f32 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/f32=%v", c.name, f32), func(t *testing.T) {
				x, w := randArr(rng, c.x...), randArr(rng, c.kernel...)
				// simplego's kernel needs every dilation given explicitly.
				n := len(c.strides)
				inDil, kDil := onesIfEmpty(c.inputDilations, n), onesIfEmpty(c.kernelDilations, n)
				fn := func(in []*graph.Node) []*graph.Node {
					return []*graph.Node{graph.ConvGeneral(in[0], in[1], c.axes, c.strides, c.paddings, inDil, kDil, 1, 1)}
				}
				want := execArrs(t, sg, f32, fn, x, w)[0]
				got := execArrs(t, ad, f32, fn, x, w)[0]
				tol := 1e-12
				if f32 {
					tol = 1e-5
				}
				assertClose(t, "adapter vs simplego", got, want, tol)
			})
		}
	}
}

// TestConvNilStrides checks that a ConvGeneral without strides or
// dilations, which simplego rejects, works.
func TestConvNilStrides(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, w := randArr(rng, 1, 2, 4, 5, 6), randArr(rng, 3, 2, 3, 3, 3)
	fn := func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{graph.ConvGeneral(in[0], in[1], channelsFirst(3), nil, nil, nil, nil, 0, 0)}
	}
	got := execArrs(t, newAdapter(t), false, fn, x, w)[0]
	want := execArrs(t, newSimplego(t), false, func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{graph.ConvGeneral(in[0], in[1], channelsFirst(3), []int{1, 1, 1}, nil, nil, nil, 1, 1)}
	}, x, w)[0]
	assertClose(t, "nil strides", got, want, 1e-12)
}

// TestConvGradients checks the gradients of the convolution with respect
// to input and kernel against central finite differences in float64. The
// loss Σ conv(x, w)·r is bilinear, so central differences are exact up to
// rounding and the tolerance can be tight.
func TestConvGradients(t *testing.T) {
	ad := newAdapter(t)
	for ci, c := range gradCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(ci)))
			x, w, r := randArr(rng, c.x...), randArr(rng, c.kernelDims()...), randArr(rng, c.outDims()...)
			loss := func(in []*graph.Node) *graph.Node {
				return graph.ReduceAllSum(graph.Mul(c.build(in[0], in[1]), in[2]))
			}
			checkGradients(t, ad, loss, []arr{x, w, r}, []int{0, 1}, rng, 1e-3, 1e-8)
		})
	}
}

// TestConvGradientsFloat32 checks float32 gradients against float64 ones
// computed by the adapter on the same values.
func TestConvGradientsFloat32(t *testing.T) {
	ad := newAdapter(t)
	for _, ci := range []int{2, 6} {
		c := gradCases[ci]
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(8, uint64(ci)))
			x, w, r := randArr(rng, c.x...), randArr(rng, c.kernelDims()...), randArr(rng, c.outDims()...)
			fn := func(in []*graph.Node) []*graph.Node {
				loss := graph.ReduceAllSum(graph.Mul(c.build(in[0], in[1]), in[2]))
				return graph.Gradient(loss, in[0], in[1])
			}
			g64 := execArrs(t, ad, false, fn, x, w, r)
			g32 := execArrs(t, ad, true, fn, x, w, r)
			assertClose(t, "dL/dx float32", g32[0], g64[0], 1e-5)
			assertClose(t, "dL/dw float32", g32[1], g64[1], 1e-5)
		})
	}
}

// checkGradients compares graph.Gradient of the scalar loss with respect to
// the inputs listed in wrt against central finite differences (float64):
// on every coordinate of small inputs, on 40 random coordinates of larger
// ones, and along 3 random directions, with step h. tol is relative to the
// gradient's largest element (coordinates) or to ‖g‖·‖u‖ (directions).
func checkGradients(t *testing.T, backend backends.Backend, loss func([]*graph.Node) *graph.Node,
	inputs []arr, wrt []int, rng *rand.Rand, h, tol float64) {
	t.Helper()
	gradFn := func(in []*graph.Node) []*graph.Node {
		nodes := make([]*graph.Node, len(wrt))
		for i, k := range wrt {
			nodes[i] = in[k]
		}
		return graph.Gradient(loss(in), nodes...)
	}
	grads := execArrs(t, backend, false, gradFn, inputs...)

	lossExec, err := graph.NewExec(backend, func(in []*graph.Node) *graph.Node { return loss(in) })
	if err != nil {
		t.Fatal(err)
	}
	defer lossExec.Finalize()
	eval := func(in []arr) float64 {
		args := make([]any, len(in))
		for i, a := range in {
			args[i] = a.tensor(false)
		}
		out, err := lossExec.Exec(args...)
		if err != nil {
			t.Fatal(err)
		}
		return fromTensor(t, out[0]).data[0]
	}
	for gi, k := range wrt {
		g := grads[gi]
		if fmt.Sprint(g.dims) != fmt.Sprint(inputs[k].dims) {
			t.Fatalf("gradient %d has dims %v, input %v", k, g.dims, inputs[k].dims)
		}
		scale := max(maxAbs(g.data), 1e-300)
		coords := rng.Perm(len(g.data))
		if len(coords) > 40 {
			coords = append(coords[:38], 0, len(g.data)-1)
		}
		in := append([]arr(nil), inputs...)
		for _, i := range coords {
			in[k] = inputs[k].clone()
			in[k].data[i] += h
			up := eval(in)
			in[k].data[i] -= 2 * h
			down := eval(in)
			fd := (up - down) / (2 * h)
			if math.Abs(fd-g.data[i]) > tol*scale {
				t.Fatalf("input %d element %d: gradient %.12g, finite difference %.12g", k, i, g.data[i], fd)
			}
		}
		for range 3 {
			u := randArr(rng, inputs[k].dims...)
			dot, gn, un := 0.0, 0.0, 0.0
			for i := range u.data {
				dot += u.data[i] * g.data[i]
				gn += g.data[i] * g.data[i]
				un += u.data[i] * u.data[i]
			}
			in[k] = inputs[k].clone()
			for i := range u.data {
				in[k].data[i] += h * u.data[i]
			}
			up := eval(in)
			in[k] = inputs[k].clone()
			for i := range u.data {
				in[k].data[i] -= h * u.data[i]
			}
			down := eval(in)
			fd := (up - down) / (2 * h)
			if math.Abs(fd-dot) > tol*math.Sqrt(gn*un) {
				t.Fatalf("input %d along a random direction: gradient·u %.12g, finite difference %.12g", k, dot, fd)
			}
		}
	}
}

// TestConvShift checks the shifted im2cols (conv_shift.go) on the U-Net's convolutions
// (3x3x3, padding 1 and 2, a 1x7x7 stem at stride 2 on the other axes,
// dilation 2 along the last axis), forward and both gradients, against the
// pure-Go kernels, and that it ran.
func TestConvShift(t *testing.T) {
	native, pure := newNative(t), newPureGo(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		x, w          []int
		strides, kdil []int
		pads          [][2]int
	}{
		{[]int{1, 5, 4, 6, 16}, []int{3, 5, 3, 3, 3}, []int{1, 1, 1}, []int{1, 1, 1}, [][2]int{{1, 1}, {1, 1}, {1, 1}}},
		{[]int{2, 3, 5, 5, 12}, []int{4, 3, 3, 3, 3}, []int{1, 1, 1}, []int{1, 1, 1}, [][2]int{{2, 2}, {2, 2}, {2, 2}}},
		{[]int{1, 2, 6, 9, 32}, []int{3, 2, 3, 7, 7}, []int{1, 2, 1}, []int{1, 1, 1}, [][2]int{{1, 1}, {3, 3}, {3, 3}}},
		{[]int{1, 3, 4, 4, 24}, []int{2, 3, 1, 3, 3}, []int{1, 1, 1}, []int{1, 1, 2}, [][2]int{{0, 0}, {1, 0}, {2, 2}}},
	} {
		conv := func(x, w *graph.Node) *graph.Node {
			return graph.ConvGeneral(x, w, channelsFirst(3), tc.strides, tc.pads, nil, tc.kdil, 1, 1)
		}
		x, w := randArr(rng, tc.x...), randArr(rng, tc.w...)
		grads := func(in []*graph.Node) []*graph.Node {
			y := conv(in[0], in[1])
			loss := graph.ReduceAllSum(graph.Mul(y, graph.Sin(y)))
			return append([]*graph.Node{y}, graph.Gradient(loss, in[0], in[1])...)
		}
		calls, tcalls := nativeShiftCalls.Load(), nativeTShiftCalls.Load()
		for _, f32 := range []bool{false, true} {
			tol := 1e-12
			if f32 {
				tol = 1e-4
			}
			want := execArrs(t, pure, f32, grads, x, w)
			got := execArrs(t, native, f32, grads, x, w)
			for i, name := range []string{"forward", "dL/dx", "dL/dw"} {
				assertClose(t, fmt.Sprintf("x %v w %v: %s f32=%v", tc.x, tc.w, name, f32), got[i], want[i], tol)
			}
		}
		// The forward pass and the input gradient, in both dtypes.
		if ran := nativeShiftCalls.Load() - calls; ran < 4 {
			t.Errorf("x %v w %v: the shifted im2col ran %d times, want at least 4", tc.x, tc.w, ran)
		}
		// The kernel gradient, when the weight's last axis is short
		// against the output's and has neither stride nor dilation.
		if ran := nativeTShiftCalls.Load() - tcalls; ran < 2 && 4*(tc.w[4]-1) <= tc.x[4] && tc.kdil[2] == 1 && tc.strides[2] == 1 {
			t.Errorf("x %v w %v: the transposed shifted im2col ran %d times, want at least 2", tc.x, tc.w, ran)
		}
	}
}

// TestConvShiftNonFinite checks that an infinite input element reaches
// only the outputs whose window holds it, as in simplego: the transposed
// shifted im2col's zero-extended kernel would meet it elsewhere (0·Inf),
// so it is not used then.
func TestConvShiftNonFinite(t *testing.T) {
	x := arr{data: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, math.Inf(1)}, dims: []int{1, 1, 10}}
	w := arr{data: []float64{1, 1, 1, 1, 1, 1, 1, 1}, dims: []int{1, 1, 8}}
	conv := func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{graph.ConvGeneral(in[0], in[1], channelsFirst(1), []int{1}, [][2]int{{0, 0}}, nil, []int{1}, 1, 1)}
	}
	for _, f32 := range []bool{true, false} {
		got := execArrs(t, newNative(t), f32, conv, x, w)[0]
		want := []float64{36, 44, math.Inf(1)}
		for i, v := range want {
			if got.data[i] != v {
				t.Fatalf("f32 %v: %v, want %v", f32, got.data, want)
			}
		}
	}
}
