package covcpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	timage "github.com/gomlx/gomlx/pkg/core/tensors/images"
)

// strides returns row-major strides of dims.
func strides(dims []int) []int {
	s := make([]int, len(dims))
	acc := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= dims[i]
	}
	return s
}

// forEachIndex calls fn with every multi-index of dims in row-major order.
func forEachIndex(dims []int, fn func(flat int, idx []int)) {
	idx := make([]int, len(dims))
	for flat := range size(dims) {
		fn(flat, idx)
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < dims[i] {
				break
			}
			idx[i] = 0
		}
	}
}

// refPad is XLA's Pad written out element by element.
func refPad(x arr, fill float64, cfg []backends.PadAxis) arr {
	cfg = append(slices.Clone(cfg), make([]backends.PadAxis, len(x.dims)-len(cfg))...)
	dims := make([]int, len(x.dims))
	for i, d := range x.dims {
		dims[i] = cfg[i].Start + cfg[i].End + d + max(d-1, 0)*cfg[i].Interior
	}
	out := arr{data: make([]float64, size(dims)), dims: dims}
	xs := strides(x.dims)
	forEachIndex(dims, func(flat int, idx []int) {
		src := 0
		for i, o := range idx {
			pos := o - cfg[i].Start
			step := cfg[i].Interior + 1
			if pos < 0 || pos%step != 0 || pos/step >= x.dims[i] {
				out.data[flat] = fill
				return
			}
			src += pos / step * xs[i]
		}
		out.data[flat] = x.data[src]
	})
	return out
}

// refReverse reverses x along axes, element by element.
func refReverse(x arr, axes []int) arr {
	out := arr{data: make([]float64, len(x.data)), dims: x.dims}
	xs := strides(x.dims)
	forEachIndex(x.dims, func(flat int, idx []int) {
		src := 0
		for i, v := range idx {
			if slices.Contains(axes, i) {
				v = x.dims[i] - 1 - v
			}
			src += v * xs[i]
		}
		out.data[flat] = x.data[src]
	})
	return out
}

func TestPad(t *testing.T) {
	cases := [][]backends.PadAxis{
		{{Start: 1, End: 2}},
		{{}, {Interior: 2}},
		{{Start: -1}, {End: -2, Interior: 1}, {Start: 2, End: -3, Interior: 1}},
		{{Start: 2, End: 1, Interior: 3}, {Start: -3, End: 4}, {Start: 1, End: 1}},
		{{Start: -2, End: 0}, {Start: -1, End: -2}, {Start: 0, End: -4, Interior: 2}},
		{{}, {}, {Start: -2, End: -2}},
		{{Start: -4, End: 2}, {Start: 3, End: -9, Interior: 1}, {Start: -5, End: 1}}, // trimmed into the other end's fill
		{},
	}
	rng := rand.New(rand.NewPCG(11, 12))
	ad := newAdapter(t)
	for ci, cfg := range cases {
		for _, f32 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d %v f32=%v", ci, cfg, f32), func(t *testing.T) {
				x := randArr(rng, 3, 4, 5).roundF32()
				got := execArrs(t, ad, f32, func(in []*graph.Node) []*graph.Node {
					fill := graph.Scalar(in[0].Graph(), in[0].DType(), 7.5)
					return []*graph.Node{graph.Pad(in[0], fill, cfg...)}
				}, x)[0]
				assertClose(t, "Pad", got, refPad(x, 7.5, cfg), 0)
			})
		}
	}
	t.Run("size-1 axis with interior", func(t *testing.T) {
		x := randArr(rng, 1, 3).roundF32()
		cfg := []backends.PadAxis{{Start: 1, Interior: 4}, {Interior: 1, End: -1}}
		got := execArrs(t, ad, false, func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.Pad(in[0], graph.ScalarZero(in[0].Graph(), in[0].DType()), cfg...)}
		}, x)[0]
		assertClose(t, "Pad", got, refPad(x, 0, cfg), 0)
	})
}

// TestPadRefusals checks that impossible paddings fail with an error
// naming the problem, not a panic inside simplego.
func TestPadRefusals(t *testing.T) {
	ad := newAdapter(t)
	for _, tc := range []struct {
		cfg  []backends.PadAxis
		want string
	}{
		{[]backends.PadAxis{{Start: -4}}, "removes all"},
		{[]backends.PadAxis{{Start: -2, End: -1}}, "removes all"},
		{[]backends.PadAxis{{Start: -5, End: 1}}, "removes all"},
		{[]backends.PadAxis{{Interior: -1}}, "negative interior"},
		{[]backends.PadAxis{{}, {}}, "axes configured"},
	} {
		e, err := graph.NewExec(ad, func(x *graph.Node) *graph.Node {
			return graph.Pad(x, graph.ScalarZero(x.Graph(), x.DType()), tc.cfg...)
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Exec(randArr(rand.New(rand.NewPCG(1, 1)), 3).tensor(false))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Pad %v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestReverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	ad := newAdapter(t)
	for _, tc := range []struct {
		dims, axes []int
	}{
		{[]int{2, 3, 4}, nil},
		{[]int{2, 3, 4}, []int{0}},
		{[]int{2, 3, 4}, []int{1}},
		{[]int{2, 3, 4}, []int{2}},
		{[]int{2, 3, 4}, []int{2, 0}},
		{[]int{2, 3, 4}, []int{0, 1, 2}},
		{[]int{1, 3}, []int{0, 1}},
		{[]int{4, 2, 3, 7, 7}, []int{2, 3, 4}}, // a stem kernel in the input gradient
	} {
		for _, f32 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v axes %v f32=%v", tc.dims, tc.axes, f32), func(t *testing.T) {
				x := randArr(rng, tc.dims...).roundF32()
				got := execArrs(t, ad, f32, func(in []*graph.Node) []*graph.Node {
					return []*graph.Node{graph.Reverse(in[0], tc.axes...)}
				}, x)[0]
				assertClose(t, "Reverse", got, refReverse(x, tc.axes), 0)
			})
		}
	}
}

// TestSliceGradients checks the gradient of strided slicing, which GoMLX
// builds with Pad (interior padding for strides), against finite differences.
func TestSliceGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	ad := newAdapter(t)
	slicers := []func(*graph.Node) *graph.Node{
		func(x *graph.Node) *graph.Node { return graph.Slice(x, graph.AxisRange(1, 3)) },
		func(x *graph.Node) *graph.Node {
			return graph.Slice(x, graph.AxisRange().Stride(2), graph.AxisElem(2), graph.AxisRange(1).Stride(3))
		},
		func(x *graph.Node) *graph.Node {
			return graph.Slice(x, graph.AxisRange(1, 4).Stride(2), graph.AxisRange(0, 4), graph.AxisRange(2, 7).Stride(2))
		},
	}
	for i, slicer := range slicers {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			x := randArr(rng, 4, 5, 7)
			outShape := execArrs(t, ad, false, func(in []*graph.Node) []*graph.Node {
				return []*graph.Node{slicer(in[0])}
			}, x)[0].dims
			r := randArr(rng, outShape...)
			loss := func(in []*graph.Node) *graph.Node {
				return graph.ReduceAllSum(graph.Mul(slicer(in[0]), in[1]))
			}
			checkGradients(t, ad, loss, []arr{x, r}, []int{0}, rng, 1e-3, 1e-9)
		})
	}
}

// TestSumPoolGradient checks sum and mean pooling gradients, which GoMLX
// builds with interior and negative Pad.
func TestSumPoolGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	ad := newAdapter(t)
	x := randArr(rng, 1, 2, 5, 6, 7)
	pool := func(x *graph.Node) *graph.Node {
		return graph.MeanPool(x).ChannelsAxis(timage.ChannelsFirst).Window(3).Strides(2).
			PaddingPerDim([][2]int{{1, 1}, {1, 0}, {0, 1}}).Done()
	}
	dims := execArrs(t, ad, false, func(in []*graph.Node) []*graph.Node { return []*graph.Node{pool(in[0])} }, x)[0].dims
	r := randArr(rng, dims...)
	loss := func(in []*graph.Node) *graph.Node { return graph.ReduceAllSum(graph.Mul(pool(in[0]), in[1])) }
	checkGradients(t, ad, loss, []arr{x, r}, []int{0}, rng, 1e-3, 1e-9)
}
