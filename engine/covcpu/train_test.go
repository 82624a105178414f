package covcpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	timage "github.com/gomlx/gomlx/pkg/core/tensors/images"
)

// resizeNearest resizes the spatial axes (2..) of an NC... tensor to dims
// with PyTorch's "nearest" rule src = floor(dst·in/out), one Gather per
// axis that changes: the way the model resizes on this backend.
func resizeNearest(x *graph.Node, dims ...int) *graph.Node {
	g := x.Graph()
	for i, out := range dims {
		axis := 2 + i
		in := x.Shape().Dimensions[axis]
		if in == out {
			continue
		}
		idx := make([]int32, out)
		for d := range idx {
			idx[d] = int32(d * in / out)
		}
		perm := []int{axis} // move axis to the front, gather, move it back
		for a := range x.Rank() {
			if a != axis {
				perm = append(perm, a)
			}
		}
		inverse := make([]int, len(perm))
		for i, a := range perm {
			inverse[a] = i
		}
		indices := graph.Reshape(graph.Const(g, idx), out, 1)
		x = graph.TransposeAllAxes(graph.Gather(graph.TransposeAllAxes(x, perm...), indices), inverse...)
	}
	return x
}

// TestResizeNearestGather checks the Gather-based nearest resize against
// an element-wise reference and its gradient (a ScatterSum) against finite
// differences.
func TestResizeNearestGather(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	ad := newAdapter(t)
	x := randArr(rng, 1, 2, 5, 7, 9)
	outDims := []int{7, 4, 13}
	got := execArrs(t, ad, false, func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{resizeNearest(in[0], outDims...)}
	}, x)[0]
	want := arr{data: make([]float64, 1*2*7*4*13), dims: []int{1, 2, 7, 4, 13}}
	xs := strides(x.dims)
	forEachIndex(want.dims, func(flat int, idx []int) {
		src := idx[0]*xs[0] + idx[1]*xs[1]
		for i, o := range idx[2:] {
			src += o * x.dims[2+i] / outDims[i] * xs[2+i]
		}
		want.data[flat] = x.data[src]
	})
	assertClose(t, "resize", got, want, 0)

	r := randArr(rng, want.dims...)
	loss := func(in []*graph.Node) *graph.Node {
		return graph.ReduceAllSum(graph.Mul(resizeNearest(in[0], outDims...), in[1]))
	}
	checkGradients(t, ad, loss, []arr{x, r}, []int{0}, rng, 1e-3, 1e-9)
}

// tinyNet is a small 3D CNN with the model's ingredients: a stride-2
// convolution, a PyTorch-style batch normalisation written with Sqrt and
// Div (Rsqrt has no gradient in GoMLX), ReLU, a 1x1x1 convolution, a
// Gather-based nearest upsampling to the input's size and a skip concat.
func tinyNet(x, w1, gamma, beta, w2 *graph.Node) *graph.Node {
	h := graph.Convolve(x, w1).ChannelsAxis(timage.ChannelsFirst).StridePerAxis(2, 2, 2).
		PaddingPerDim([][2]int{{1, 1}, {1, 1}, {1, 1}}).Done()
	mean := graph.ReduceAndKeep(h, graph.ReduceMean, 0, 2, 3, 4)
	centred := graph.Sub(h, mean)
	variance := graph.ReduceAndKeep(graph.Square(centred), graph.ReduceMean, 0, 2, 3, 4)
	eps := graph.Scalar(h.Graph(), h.DType(), 1e-5)
	h = graph.Div(centred, graph.Sqrt(graph.Add(variance, eps)))
	h = graph.Add(graph.Mul(h, graph.Reshape(gamma, 1, -1, 1, 1, 1)), graph.Reshape(beta, 1, -1, 1, 1, 1))
	h = graph.Max(h, graph.ScalarZero(h.Graph(), h.DType()))
	dims := x.Shape().Dimensions
	h = resizeNearest(h, dims[2:]...)
	h = graph.Concatenate([]*graph.Node{h, x}, 1)
	return graph.Convolve(h, w2).ChannelsAxis(timage.ChannelsFirst).StridePerAxis(1, 1, 1).Done()
}

// TestTinyCNNGradients checks the gradients of the tiny network with
// respect to its input and every parameter against finite differences,
// with the default im2col budget and with one that tiles every
// convolution and convolution gradient (a few hundred bytes).
func TestTinyCNNGradients(t *testing.T) {
	for _, budget := range []int64{DefaultIm2colMiB << 20, 300} {
		t.Run(fmt.Sprintf("budget %d", budget), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(25, 26))
			ad := newAdapterBudget(t, budget)
			x := randArr(rng, 2, 1, 4, 6, 5)
			params := []arr{randArr(rng, 3, 1, 3, 3, 3), randArr(rng, 3), randArr(rng, 3), randArr(rng, 2, 4, 1, 1, 1)}
			r := randArr(rng, 2, 2, 4, 6, 5)
			loss := func(in []*graph.Node) *graph.Node {
				return graph.ReduceAllSum(graph.Mul(tinyNet(in[0], in[1], in[2], in[3], in[4]), in[5]))
			}
			checkGradients(t, ad, loss, append(append([]arr{x}, params...), r), []int{0, 1, 2, 3, 4}, rng, 1e-5, 1e-6)
		})
	}
}

// TestTinyCNNTrains runs a few steps of plain SGD on the tiny network,
// fitting the output of a teacher with other weights, and checks that the
// loss falls at every step.
func TestTinyCNNTrains(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	ad := newAdapter(t)
	x := randArr(rng, 2, 1, 6, 8, 8)
	params := []arr{randArr(rng, 4, 1, 3, 3, 3), randArr(rng, 4), randArr(rng, 4), randArr(rng, 2, 5, 1, 1, 1)}
	teacher := []arr{randArr(rng, 4, 1, 3, 3, 3), randArr(rng, 4), randArr(rng, 4), randArr(rng, 2, 5, 1, 1, 1)}
	target := execArrs(t, ad, true, func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{tinyNet(in[0], in[1], in[2], in[3], in[4])}
	}, append([]arr{x}, teacher...)...)[0]

	step, err := graph.NewExec(ad, func(in []*graph.Node) []*graph.Node {
		y := tinyNet(in[0], in[2], in[3], in[4], in[5])
		loss := graph.ReduceAllMean(graph.Square(graph.Sub(y, in[1])))
		return append([]*graph.Node{loss}, graph.Gradient(loss, in[2:]...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer step.Finalize()
	const lr = 0.05
	var losses []float64
	for range 6 {
		args := []any{x.tensor(true), target.tensor(true)}
		for _, p := range params {
			args = append(args, p.tensor(true))
		}
		outs, err := step.Exec(args...)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, fromTensor(t, outs[0]).data[0])
		for i := range params {
			g := fromTensor(t, outs[1+i])
			for j := range params[i].data {
				params[i].data[j] -= lr * g.data[j]
			}
		}
	}
	t.Logf("losses: %.4f", losses)
	for i := 1; i < len(losses); i++ {
		if !(losses[i] < losses[i-1]) {
			t.Fatalf("loss did not fall at step %d: %.5f", i, losses)
		}
	}
	if losses[len(losses)-1] > 0.8*losses[0] {
		t.Fatalf("loss fell too little: %.5f", losses)
	}
}
