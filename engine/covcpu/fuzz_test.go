package covcpu

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// refConv is ConvGeneral in the channels-first layout, x [B, C, S...],
// w [O, C, K...], written out element by element with XLA's semantics:
// the input is dilated, then padded (negative padding trims).
func refConv(x, w arr, stride []int, pads [][2]int, inDil, kDil []int, outDims []int) arr {
	n := len(stride)
	out := arr{data: make([]float64, size(outDims)), dims: outDims}
	xs, ws := strides(x.dims), strides(w.dims)
	kDims := w.dims[2:]
	forEachIndex(outDims, func(flat int, idx []int) {
		b, o, p := idx[0], idx[1], idx[2:]
		sum := 0.0
		forEachIndex(kDims, func(_ int, k []int) {
			xOff := b * xs[0]
			for i := range n {
				pos := p[i]*stride[i] + k[i]*kDil[i] - pads[i][0]
				if pos < 0 || pos%inDil[i] != 0 || pos/inDil[i] >= x.dims[2+i] {
					return
				}
				xOff += pos / inDil[i] * xs[2+i]
			}
			wOff := o * ws[0]
			for i := range n {
				wOff += k[i] * ws[2+i]
			}
			for c := range x.dims[1] {
				sum += x.data[xOff+c*xs[1]] * w.data[wOff+c*ws[1]]
			}
		})
		out.data[flat] = sum
	})
	return out
}

// FuzzConvGeneral builds random channels-first convolutions (1 to 3
// spatial axes, strides, positive and negative padding, input and kernel
// dilations) and checks the adapter against refConv, or, where shape
// inference refuses the configuration, that the adapter returns an error.
// The seed also picks the im2col budget: the default (no tiling at these
// sizes), one byte (a tile per position) or 200 bytes (uneven tiles).
func FuzzConvGeneral(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42, 1234} {
		f.Add(seed)
	}
	ads := []backends.Backend{newAdapter(f), newAdapterBudget(f, 1), newAdapterBudget(f, 200)}
	f.Fuzz(func(t *testing.T, seed uint64) {
		ad := ads[seed%uint64(len(ads))]
		rng := rand.New(rand.NewPCG(seed, seed>>32))
		n := 1 + rng.IntN(3)
		xDims := []int{1 + rng.IntN(2), 1 + rng.IntN(3)}
		wDims := []int{1 + rng.IntN(3), xDims[1]}
		strides, inDil, kDil := make([]int, n), make([]int, n), make([]int, n)
		pads := make([][2]int, n)
		for i := range n {
			xDims = append(xDims, 1+rng.IntN(7))
			wDims = append(wDims, 1+rng.IntN(4))
			strides[i], inDil[i], kDil[i] = 1+rng.IntN(3), 1+rng.IntN(3), 1+rng.IntN(3)
			pads[i] = [2]int{rng.IntN(6) - 2, rng.IntN(6) - 2}
		}
		axes := channelsFirst(n)
		outShape, inferErr := shapeinference.ConvGeneralOp(shapes.Make(dtypes.Float64, xDims...),
			shapes.Make(dtypes.Float64, wDims...), axes, strides, pads, inDil, kDil, 1, 1)
		x, w := randArr(rng, xDims...), randArr(rng, wDims...)
		e, err := graph.NewExec(ad, func(in []*graph.Node) *graph.Node {
			return graph.ConvGeneral(in[0], in[1], axes, strides, pads, inDil, kDil, 1, 1)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Finalize()
		outs, err := e.Exec(x.tensor(false), w.tensor(false))
		if inferErr != nil {
			if err == nil {
				t.Fatalf("x %v w %v strides %v pads %v dil %v/%v: shape inference refuses (%v) but the adapter ran",
					xDims, wDims, strides, pads, inDil, kDil, inferErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("x %v w %v strides %v pads %v dil %v/%v: %v", xDims, wDims, strides, pads, inDil, kDil, err)
		}
		want := refConv(x, w, strides, pads, inDil, kDil, outShape.Dimensions)
		what := fmt.Sprintf("x %v w %v strides %v pads %v dil %v/%v, im2col budget %d: conv vs reference",
			xDims, wDims, strides, pads, inDil, kDil, ad.(*Backend).im2colBudget)
		assertClose(t, what, fromTensor(t, outs[0]), want, 1e-12)
	})
}

// FuzzPad checks random Pad configurations against refPad, or that the
// adapter refuses them with an error (never a panic) when they would
// empty an axis.
func FuzzPad(f *testing.F) {
	f.Add(uint8(3), uint8(4), int8(1), int8(-2), int8(1), int8(-1), int8(2), int8(0))
	f.Add(uint8(1), uint8(5), int8(-1), int8(3), int8(4), int8(-5), int8(0), int8(3))
	ad := newAdapter(f)
	f.Fuzz(func(t *testing.T, d0, d1 uint8, s0, e0, i0, s1, e1, i1 int8) {
		dims := []int{1 + int(d0%6), 1 + int(d1%6)}
		cfg := []backends.PadAxis{
			{Start: int(s0 % 8), End: int(e0 % 8), Interior: int(i0 % 4)},
			{Start: int(s1 % 8), End: int(e1 % 8), Interior: int(i1 % 4)},
		}
		valid := true
		for a, c := range cfg {
			n := dims[a] + (dims[a]-1)*c.Interior
			valid = valid && c.Interior >= 0 && n+c.Start+c.End >= 1
		}
		x := randArr(rand.New(rand.NewPCG(uint64(d0), uint64(d1))), dims...)
		e, err := graph.NewExec(ad, func(x *graph.Node) *graph.Node {
			return graph.Pad(x, graph.Scalar(x.Graph(), x.DType(), -3), cfg...)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Finalize()
		outs, err := e.Exec(x.tensor(false))
		if !valid {
			if err == nil || !(strings.Contains(err.Error(), "removes all") || strings.Contains(err.Error(), "negative interior")) {
				t.Fatalf("Pad %v of %v: error %v, want a refusal", cfg, dims, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Pad %v of %v: %v", cfg, dims, err)
		}
		assertClose(t, "Pad", fromTensor(t, outs[0]), refPad(x, -3, cfg), 0)
	})
}
