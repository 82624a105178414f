package covcpu

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// newAdapterBudget returns the adapter with an im2col budget in bytes
// (the "im2col=N" option counts MiB, too coarse for small tests).
func newAdapterBudget(t testing.TB, budget int64) backends.Backend {
	t.Helper()
	b, err := NewAdapter("conv=im2col")
	if err != nil {
		t.Fatal(err)
	}
	b.(*Backend).im2colBudget = budget
	return b
}

// TestPlanTiles checks that the leaf tiles cover the grid exactly once in
// row-major order, each within the budget unless it is a single position,
// and that they are as few as the rule promises.
func TestPlanTiles(t *testing.T) {
	for _, tc := range []struct {
		dims   []int
		perPos int64
		budget int64
		leaves int // expected count; 0: don't check
	}{
		{[]int{4, 5, 6}, 1, 0, 1},                       // no cap
		{[]int{4, 5, 6}, 1, 120, 1},                     // fits exactly
		{[]int{4, 5, 6}, 1, 119, 2},                     // two slabs of 2 rows
		{[]int{4, 5, 6}, 1, 30, 4},                      // one row each
		{[]int{4, 5, 6}, 1, 29, 4 * 2},                  // rows cut into 4 lines and 1
		{[]int{7, 5, 6}, 1, 90, 3},                      // 7 rows in slabs of 3, 3, 1
		{[]int{7, 5, 6}, 3, 200, 4},                     // 2 rows each (180 bytes), last 1
		{[]int{4, 5, 6}, 1, 1, 4 * 5 * 6},               // every position alone
		{[]int{4, 5, 6}, 1000, 1, 4 * 5 * 6},            // positions over budget stay whole
		{[]int{1, 1, 9}, 8, 20, 5},                      // leading axes of 1 are skipped
		{[]int{3, 1, 8}, 2, 10, 3 * 2},                  // a thin axis in the middle
		{[]int{16, 64, 64}, 129 * 27 * 4, 128 << 20, 8}, // the head's conv at 1x1x16x64x64
		{[]int{2, 3}, 5, 7, 6},
		{[]int{13}, 1, 4, 4}, // 13 in slabs of 4, 4, 4, 1
	} {
		t.Run(fmt.Sprintf("%v*%d/%d", tc.dims, tc.perPos, tc.budget), func(t *testing.T) {
			plan := planTiles(make([]int, len(tc.dims)), tc.dims, 0, tc.perPos, tc.budget)
			leaves := plan.leaves()
			if tc.leaves > 0 && len(leaves) != tc.leaves {
				t.Errorf("%d leaves, want %d", len(leaves), tc.leaves)
			}
			// Walk the grid in row-major order: each position must be the
			// next one of the current leaf, leaves taken in order.
			seen := 0
			for _, leaf := range leaves {
				if n := int64(boxSize(leaf.lo, leaf.hi)); n > 1 && tc.budget > 0 && n*tc.perPos > tc.budget {
					t.Errorf("leaf %v-%v holds %d bytes, budget %d", leaf.lo, leaf.hi, n*tc.perPos, tc.budget)
				}
				seen += boxSize(leaf.lo, leaf.hi)
			}
			if seen != size(tc.dims) {
				t.Fatalf("leaves cover %d positions, grid has %d", seen, size(tc.dims))
			}
			owner := make([]int, size(tc.dims))
			for i := range owner {
				owner[i] = -1
			}
			for li, leaf := range leaves {
				forEachIndex(tc.dims, func(flat int, idx []int) {
					for a := range idx {
						if idx[a] < leaf.lo[a] || idx[a] >= leaf.hi[a] {
							return
						}
					}
					if owner[flat] >= 0 {
						t.Fatalf("position %v in leaves %d and %d", idx, owner[flat], li)
					}
					owner[flat] = li
				})
			}
			// Concatenating the blocks rebuilds the grid in row-major order
			// only if the tree's parts are in order along their axis.
			var check func(tl *tile)
			check = func(tl *tile) {
				if tl.parts == nil {
					return
				}
				at := tl.lo[tl.axis]
				for _, p := range tl.parts {
					for a := range tl.lo {
						if a != tl.axis && (p.lo[a] != tl.lo[a] || p.hi[a] != tl.hi[a]) {
							t.Fatalf("part %v-%v of %v-%v is cut along axis %d, not only %d", p.lo, p.hi, tl.lo, tl.hi, a, tl.axis)
						}
					}
					if p.lo[tl.axis] != at {
						t.Fatalf("parts of %v-%v along axis %d are not contiguous", tl.lo, tl.hi, tl.axis)
					}
					at = p.hi[tl.axis]
					check(p)
				}
				if at != tl.hi[tl.axis] {
					t.Fatalf("parts of %v-%v end at %d", tl.lo, tl.hi, at)
				}
			}
			check(plan)
		})
	}
}

// blockedBudgets are im2col budgets, in bytes, that cut the test cases'
// convolutions into tiles: every position alone, and a few sizes that
// leave uneven tiles.
var blockedBudgets = []int64{1, 700, 3000, 20000}

// TestConvBlockedMatchesUnblocked compares tiled convolutions with the
// unblocked im2col and with simplego's own kernel, forward, in float64 and
// float32, on the model's configurations, the layouts GoMLX's gradients
// emit (the kernel-gradient one takes the contraction-tiling branch) and
// other ranks and layouts.
func TestConvBlockedMatchesUnblocked(t *testing.T) {
	var cases []generalConv
	for _, c := range gradCases {
		n := 3
		pads := make([][2]int, n)
		kDil := make([]int, n)
		for i := range n {
			pads[i] = [2]int{c.pad[i], c.pad[i]}
			kDil[i] = max(c.dil[i], 1)
		}
		cases = append(cases, generalConv{name: c.name, x: c.x, kernel: c.kernelDims(), axes: channelsFirst(3),
			strides: c.stride[:], paddings: pads, kernelDilations: kDil})
	}
	cases = append(cases, generalConvCases()...)
	sg, whole := newSimplego(t), newAdapterBudget(t, 0)
	rng := rand.New(rand.NewPCG(51, 52))
	for _, c := range cases {
		for _, f32 := range []bool{false, true} {
			n := len(c.strides)
			inDil, kDil := onesIfEmpty(c.inputDilations, n), onesIfEmpty(c.kernelDilations, n)
			fn := func(in []*graph.Node) []*graph.Node {
				return []*graph.Node{graph.ConvGeneral(in[0], in[1], c.axes, c.strides, c.paddings, inDil, kDil, 1, 1)}
			}
			x, w := randArr(rng, c.x...), randArr(rng, c.kernel...)
			t.Run(fmt.Sprintf("%s/f32=%v", c.name, f32), func(t *testing.T) {
				want := execArrs(t, sg, f32, fn, x, w)[0]
				unblocked := execArrs(t, whole, f32, fn, x, w)[0]
				tol := 1e-12
				if f32 {
					tol = 1e-5
				}
				assertClose(t, "unblocked vs simplego", unblocked, want, tol)
				for _, budget := range blockedBudgets {
					got := execArrs(t, newAdapterBudget(t, budget), f32, fn, x, w)[0]
					assertClose(t, fmt.Sprintf("budget %d vs unblocked", budget), got, unblocked, tol)
				}
			})
		}
	}
}

// TestConvBlockedOneRow uses, for the forward and the kernel-gradient
// branches, a budget of exactly one row of the outermost spatial axis of
// the tiled grid, and one byte less (each row cut into lines).
func TestConvBlockedOneRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	// Forward: x [1, 3, 7, 9, 8], kernel 3x3x3, stride 1, pad 1: P = 7x9x8
	// output positions, patches 3·27 values per position.
	fwd := convCase{x: []int{1, 3, 7, 9, 8}, out: 4, kernel: [3]int{3, 3, 3}, stride: [3]int{1, 1, 1}, pad: [3]int{1, 1, 1}}
	// Kernel gradient of the same convolution: 27 output positions, the
	// contraction spans the 7x9x8 output grid, batch 1.
	for _, f32 := range []bool{false, true} {
		size := int64(8)
		if f32 {
			size = 4
		}
		row := 3 * 27 * 9 * 8 * size
		x, w, r := randArr(rng, fwd.x...), randArr(rng, fwd.kernelDims()...), randArr(rng, fwd.outDims()...)
		fn := func(in []*graph.Node) []*graph.Node {
			out := fwd.build(in[0], in[1])
			loss := graph.ReduceAllSum(graph.Mul(out, in[2]))
			return append([]*graph.Node{out}, graph.Gradient(loss, in[0], in[1])...)
		}
		want := execArrs(t, newAdapterBudget(t, 0), f32, fn, x, w, r)
		tol := 1e-12
		if f32 {
			tol = 1e-5
		}
		for _, budget := range []int64{row, row - 1, 2*row + 5} {
			got := execArrs(t, newAdapterBudget(t, budget), f32, fn, x, w, r)
			for i, name := range []string{"output", "dL/dx", "dL/dw"} {
				assertClose(t, fmt.Sprintf("f32=%v budget %d: %s", f32, budget, name), got[i], want[i], tol)
			}
		}
	}
}

// TestConvBlockedGradients checks the tiled convolution's gradients with
// respect to input and kernel against the unblocked ones and against
// finite differences (float64), with budgets that cut the forward,
// input-gradient and kernel-gradient convolutions into a few uneven tiles
// and, for two cases, into single positions.
func TestConvBlockedGradients(t *testing.T) {
	whole := newAdapterBudget(t, 0)
	for ci, c := range gradCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(57, uint64(ci)))
			x, w, r := randArr(rng, c.x...), randArr(rng, c.kernelDims()...), randArr(rng, c.outDims()...)
			loss := func(in []*graph.Node) *graph.Node {
				return graph.ReduceAllSum(graph.Mul(c.build(in[0], in[1]), in[2]))
			}
			grads := func(in []*graph.Node) []*graph.Node { return graph.Gradient(loss(in), in[0], in[1]) }
			want := execArrs(t, whole, false, grads, x, w, r)
			// Bytes of the forward convolution's patches.
			patches := int64(8 * c.x[0] * c.x[1] * size(c.kernel[:]) * size(c.outDims()[2:]))
			budgets := []int64{patches/2 + 8, patches / 5}
			if ci == 0 || ci == 2 {
				budgets = append(budgets, 1)
			}
			for _, budget := range budgets {
				got := execArrs(t, newAdapterBudget(t, budget), false, grads, x, w, r)
				assertClose(t, fmt.Sprintf("budget %d: dL/dx", budget), got[0], want[0], 1e-12)
				assertClose(t, fmt.Sprintf("budget %d: dL/dw", budget), got[1], want[1], 1e-12)
			}
			checkGradients(t, newAdapterBudget(t, patches/5), loss, []arr{x, w, r}, []int{0, 1}, rng, 1e-3, 1e-8)
		})
	}
}

// TestIm2colOption checks the "im2col=N" option and its errors.
func TestIm2colOption(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   int64
	}{
		{"", DefaultIm2colMiB << 20},
		{"im2col=64", 64 << 20},
		{"im2col=0", 0},
		{"parallelism=1,im2col=1", 1 << 20},
	} {
		b, err := NewAdapter(tc.config)
		if err != nil {
			t.Fatalf("%q: %v", tc.config, err)
		}
		if got := b.(*Backend).im2colBudget; got != tc.want {
			t.Errorf("%q: budget %d bytes, want %d", tc.config, got, tc.want)
		}
		if got := b.(*Backend).Builder("x").(*Builder).im2colBudget; got != tc.want {
			t.Errorf("%q: builder's budget %d bytes, want %d", tc.config, got, tc.want)
		}
	}
	for _, config := range []string{"im2col=-1", "im2col=", "im2col=1.5", "im2col=lots", "im2col=2000000000"} {
		_, err := NewAdapter(config)
		if err == nil || !strings.Contains(err.Error(), "im2col") {
			t.Errorf("%q: error %v, want one about im2col", config, err)
		}
	}
	t.Setenv(backends.ConfigEnvVar, "covcpu:im2col=32")
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if got := b.(*Backend).im2colBudget; got != 32<<20 {
		t.Errorf("GOMLX_BACKEND=covcpu:im2col=32: budget %d", got)
	}
}

// TestConvBlockedGraph checks that tiling really happens: a convolution
// whose patches exceed the budget emits one DotGeneral per tile, in the
// forward branch (tiles of output positions) and in the kernel-gradient
// branch (tiles of the contraction).
func TestConvBlockedGraph(t *testing.T) {
	kernelGrad := backends.ConvolveAxesConfig{ // as GoMLX's kernel gradient builds it for NCDHW
		InputBatch: 1, InputChannels: 0, InputSpatial: []int{2, 3, 4},
		KernelInputChannels: 0, KernelOutputChannels: 1, KernelSpatial: []int{2, 3, 4},
		OutputBatch: 1, OutputChannels: 0, OutputSpatial: []int{2, 3, 4},
	}
	// Forward: x [1, 2, 6, 5, 4], kernel 3x3x3, padding 1: 6x5x4 outputs
	// with 2·27 patch values each. Kernel gradient of that convolution: x
	// [N=1, C=2, 6, 5, 4] as [B=2, C=1], the output gradient [1, 3, 6, 5, 4]
	// as kernel: 27 outputs, the contraction spans 6x5x4 positions with
	// 2·27 patch values each too.
	row := int64(2 * 27 * 5 * 4 * 8)
	for _, tc := range []struct {
		name   string
		x, w   []int
		axes   backends.ConvolveAxesConfig
		budget int64
		dots   int
	}{
		{"forward", []int{1, 2, 6, 5, 4}, []int{3, 2, 3, 3, 3}, channelsFirst(3), 0, 1},
		{"forward", []int{1, 2, 6, 5, 4}, []int{3, 2, 3, 3, 3}, channelsFirst(3), row, 6},
		{"forward", []int{1, 2, 6, 5, 4}, []int{3, 2, 3, 3, 3}, channelsFirst(3), 2 * row, 3},
		{"forward", []int{1, 2, 6, 5, 4}, []int{3, 2, 3, 3, 3}, channelsFirst(3), 1, 6 * 5 * 4},
		{"kernel gradient", []int{1, 2, 6, 5, 4}, []int{1, 3, 6, 5, 4}, kernelGrad, 0, 1},
		{"kernel gradient", []int{1, 2, 6, 5, 4}, []int{1, 3, 6, 5, 4}, kernelGrad, row, 6},
		{"kernel gradient", []int{1, 2, 6, 5, 4}, []int{1, 3, 6, 5, 4}, kernelGrad, 3 * row, 2},
		{"kernel gradient", []int{1, 2, 6, 5, 4}, []int{1, 3, 6, 5, 4}, kernelGrad, row / 5, 6 * 5},
	} {
		counter := &countingBuilder{Builder: newSimplego(t).Builder("count")}
		b := &Builder{Builder: counter, im2colBudget: tc.budget}
		x, err := b.Parameter("x", shapeOf(tc.x), nil)
		if err != nil {
			t.Fatal(err)
		}
		w, err := b.Parameter("w", shapeOf(tc.w), nil)
		if err != nil {
			t.Fatal(err)
		}
		pad := [][2]int{{1, 1}, {1, 1}, {1, 1}}
		if _, err := b.ConvGeneral(x, w, tc.axes, []int{1, 1, 1}, pad, nil, nil, 1, 1); err != nil {
			t.Fatal(err)
		}
		if counter.dots != tc.dots {
			t.Errorf("%s, budget %d: %d DotGenerals, want %d", tc.name, tc.budget, counter.dots, tc.dots)
		}
	}
}

// countingBuilder counts the DotGenerals built through it.
type countingBuilder struct {
	backends.Builder
	dots int
}

func (c *countingBuilder) DotGeneral(lhs backends.Op, lhsContracting, lhsBatch []int, rhs backends.Op, rhsContracting, rhsBatch []int) (backends.Op, error) {
	c.dots++
	return c.Builder.DotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
}

// shapeOf is the float64 shape of dims.
func shapeOf(dims []int) shapes.Shape { return shapes.Make(dtypes.Float64, dims...) }
