package covcpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// elementwiseProblem is a random case for the elementwise executors: two
// operands of one rank whose axes are the output's or 1 (implicit
// broadcasting), the axes to reduce of the output-shaped third operand,
// and a lower-rank operand with the output axes it maps to
// (BroadcastInDim).
type elementwiseProblem struct {
	out, lhs, rhs []int
	reduceAxes    []int
	small         []int // dims of the lower-rank operand
	smallAxes     []int // output axis of each of its axes
}

func newElementwiseProblem(rng *rand.Rand) elementwiseProblem {
	rank := 1 + rng.IntN(5)
	var p elementwiseProblem
	for range rank {
		d := 1 + rng.IntN(6)
		p.out = append(p.out, d)
		p.lhs = append(p.lhs, pick(rng, d))
		p.rhs = append(p.rhs, pick(rng, d))
		if rng.IntN(2) == 0 {
			p.reduceAxes = append(p.reduceAxes, len(p.out)-1)
		}
		if rng.IntN(2) == 0 {
			p.smallAxes = append(p.smallAxes, len(p.out)-1)
			p.small = append(p.small, pick(rng, d))
		}
	}
	return p
}

// pick returns d or, half the time, 1 (an axis broadcast).
func pick(rng *rand.Rand, d int) int {
	if rng.IntN(2) == 0 {
		return 1
	}
	return d
}

// withZeros sets about a tenth of a's values to 0 (Sign's third case) and
// one in twenty to -0.
func withZeros(rng *rand.Rand, a arr) arr {
	for i := range a.data {
		switch rng.IntN(20) {
		case 0, 1:
			a.data[i] = 0
		case 2:
			a.data[i] = math.Copysign(0, -1)
		}
	}
	return a
}

// graphFn builds every elementwise op of p: the six binary operations
// with broadcasting, Sign, ReduceSum and BroadcastInDim.
func (p elementwiseProblem) graphFn(in []*graph.Node) []*graph.Node {
	a, b, x, s := in[0], in[1], in[2], in[3]
	outs := []*graph.Node{
		graph.Add(a, b), graph.Sub(a, b), graph.Mul(a, b), graph.Div(a, b),
		graph.Max(a, b), graph.Min(a, b),
		graph.Sign(x),
		graph.ExpandAndBroadcast(s, p.out, complement(len(p.out), p.smallAxes)),
		graph.BroadcastToDims(a, p.out...),
	}
	if len(p.reduceAxes) > 0 {
		outs = append(outs, graph.ReduceSum(x, p.reduceAxes...))
	}
	return outs
}

// complement returns the axes of 0..n-1 not in axes.
func complement(n int, axes []int) []int {
	var c []int
	for i := range n {
		in := false
		for _, a := range axes {
			in = in || a == i
		}
		if !in {
			c = append(c, i)
		}
	}
	return c
}

// FuzzElementwise checks the elementwise executors against simplego's own
// bit for bit, in float32 and float64, on random shapes and broadcasts.
func FuzzElementwise(f *testing.F) {
	for seed := range uint64(16) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 7))
		p := newElementwiseProblem(rng)
		inputs := []arr{
			withZeros(rng, randArr(rng, p.lhs...)).roundF32(),
			randArr(rng, p.rhs...).roundF32(),
			withZeros(rng, randArr(rng, p.out...)).roundF32(),
			randArr(rng, p.small...).roundF32(),
		}
		native, plain := newNative(t), newSimplego(t)
		for _, f32 := range []bool{true, false} {
			got := execArrs(t, native, f32, p.graphFn, inputs...)
			want := execArrs(t, plain, f32, p.graphFn, inputs...)
			for i := range want {
				assertSameBits(t, p, i, f32, got[i], want[i])
			}
		}
	})
}

func assertSameBits(t *testing.T, p elementwiseProblem, output int, f32 bool, got, want arr) {
	t.Helper()
	if len(got.data) != len(want.data) {
		t.Fatalf("%+v output %d (f32 %v): %d values, simplego %d", p, output, f32, len(got.data), len(want.data))
	}
	for i := range want.data {
		g, w := got.data[i], want.data[i]
		if math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
			t.Fatalf("%+v output %d (f32 %v) [%d]: %v, simplego %v", p, output, f32, i, g, w)
		}
	}
}

// TestElementwiseRuns checks that the elementwise executors, not
// simplego's, ran the ops of a problem with broadcasting, and that
// elementwise=simplego and kernels=go keep simplego's.
func TestElementwiseRuns(t *testing.T) {
	p := elementwiseProblem{out: []int{2, 3, 4}, lhs: []int{2, 1, 4}, rhs: []int{1, 3, 1},
		reduceAxes: []int{0, 2}, small: []int{3}, smallAxes: []int{1}}
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := []arr{randArr(rng, p.lhs...), randArr(rng, p.rhs...), randArr(rng, p.out...), randArr(rng, p.small...)}
	ops := []backends.OpType{backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv,
		backends.OpTypeMax, backends.OpTypeMin, backends.OpTypeSign, backends.OpTypeBroadcastInDim, backends.OpTypeReduceSum}
	counts := func() []int64 {
		c := make([]int64, len(ops))
		for i, op := range ops {
			c[i] = nativeElementwiseCalls[op].Load()
		}
		return c
	}
	before := counts()
	execArrs(t, newNative(t), true, p.graphFn, inputs...)
	after := counts()
	for i, op := range ops {
		if after[i] == before[i] {
			t.Errorf("%s: the elementwise executor did not run", op)
		}
	}
	for _, config := range []string{"elementwise=simplego", "kernels=go"} {
		b, err := NewAdapter(config)
		if err != nil {
			t.Fatal(err)
		}
		before := counts()
		execArrs(t, b, true, p.graphFn, inputs...)
		after := counts()
		for i, op := range ops {
			if after[i] != before[i] {
				t.Errorf("%s: %s ran the elementwise executor", config, op)
			}
		}
	}
	if _, err := NewAdapter("elementwise=fast"); err == nil {
		t.Error("elementwise=fast: no error")
	}
}

// TestElementwiseEmpty checks ReduceSum and BroadcastInDim of tensors with
// no elements, which the executors hand to simplego.
func TestElementwiseEmpty(t *testing.T) {
	fn := func(in []*graph.Node) []*graph.Node {
		empty := graph.Slice(in[0], graph.AxisRange(0, 0))
		return []*graph.Node{graph.ReduceSum(empty, 0), graph.BroadcastToDims(graph.Slice(in[0], graph.AxisRange(0, 1)), 0, 3)}
	}
	x := arr{data: []float64{1, 2, 3, 4, 5, 6}, dims: []int{2, 3}}
	got := execArrs(t, newNative(t), true, fn, x)
	if len(got[0].data) != 3 || got[0].data[0] != 0 || len(got[1].data) != 0 {
		t.Fatalf("ReduceSum of [0,3]: %v; broadcast to [0,3]: %d values", got[0].data, len(got[1].data))
	}
}
