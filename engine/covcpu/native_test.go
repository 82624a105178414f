package covcpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// TestGoMLXVersion fails when the build links another GoMLX than the one
// simplego_internals.go mirrors: upgrading GoMLX must come with a new
// reading of simplego's internals, never with silent memory corruption.
func TestGoMLXVersion(t *testing.T) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information in the test binary")
	}
	found := false
	for _, dep := range info.Deps {
		if dep.Path != "github.com/gomlx/gomlx" {
			continue
		}
		found = true
		version := dep.Version
		if dep.Replace != nil {
			version = dep.Replace.Version
		}
		if version != wantGoMLXVersion {
			t.Fatalf("GoMLX %s is linked, but engine/covcpu/simplego_internals.go mirrors simplego's internals of %s: "+
				"re-read simplego (exec.go, builder.go, dotgeneral.go, convgeneral.go, exec_binary.go, exec_special_ops.go), update the mirrors, then wantGoMLXVersion",
				version, wantGoMLXVersion)
		}
	}
	if !found {
		// go test's binaries carry no dependency list; ask the go command.
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/gomlx/gomlx").Output()
		if err != nil {
			t.Fatalf("GoMLX's version: no build information and go list failed: %v", err)
		}
		if v := strings.TrimSpace(string(out)); v != wantGoMLXVersion {
			t.Fatalf("GoMLX %s is required, but engine/covcpu/simplego_internals.go mirrors simplego's internals of %s: "+
				"re-read simplego (exec.go, builder.go, dotgeneral.go, convgeneral.go, exec_binary.go, exec_special_ops.go), update the mirrors, then wantGoMLXVersion",
				v, wantGoMLXVersion)
		}
	}
	if err := checkInternals(); err != nil {
		t.Fatal(err)
	}
	if sgNodeExecutors[backends.OpTypeDotGeneral] == nil || simplegoDot == nil || simplegoConv == nil {
		t.Fatal("simplego's executor table has no DotGeneral or ConvGeneral executor")
	}
	for _, op := range elementwiseOps {
		if simplegoExecutors[op] == nil {
			t.Fatalf("simplego's executor table has no %s executor", op)
		}
	}
}

// newNative returns the adapter with the native kernels, failing the test
// if they are not available in a build that should have them.
func newNative(t testing.TB) backends.Backend {
	t.Helper()
	if err := nativeAvailable(); err != nil {
		if DefaultBLASLibrary == "" {
			t.Skipf("native kernels not built in (%v)", err) // CGO_ENABLED=0 or -tags noblas
		}
		t.Fatalf("native kernels unavailable: %v (run scripts/setup, which installs libopenblas-dev)", err)
	}
	b, err := NewAdapter("kernels=native")
	if err != nil {
		t.Fatal(err)
	}
	if !b.(*Backend).Native() {
		t.Fatal("kernels=native adapter is not native")
	}
	return b
}

// newPureGo returns the adapter on the pure-Go kernels.
func newPureGo(t testing.TB) backends.Backend {
	t.Helper()
	b, err := NewAdapter("kernels=go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sumAbsDot is Σ|lhs·rhs| of a DotGeneral, the scale its rounding error is
// measured against: the same DotGeneral of the absolute values.
func absArr(a arr) arr {
	b := a.clone()
	for i, v := range b.data {
		b.data[i] = math.Abs(v)
	}
	return b
}

// FuzzNativeDotGeneral draws random DotGeneral problems (ranks 1 to 4,
// any order of batch, contracting and cross axes) and checks the native
// kernel against simplego's in float64 (to 1e-12) and float32 (to 1e-5 of
// Σ|products|, the float32 tolerance of the native kernels: both sum in
// float32, in different orders).
func FuzzNativeDotGeneral(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8, 42, 1234} {
		f.Add(seed)
	}
	native, pure := newNative(f), newPureGo(f)
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e37))
		nb, nc, nl, nr := rng.IntN(3), 1+rng.IntN(2), rng.IntN(3), rng.IntN(3)
		dim := func() int { return 1 + rng.IntN(9) }
		batch, contract := make([]int, nb), make([]int, nc)
		for i := range batch {
			batch[i] = dim()
		}
		for i := range contract {
			contract[i] = dim()
		}
		if seed%5 == 0 { // a large contraction and cross sizes: gemm's blocking and the parallel split
			contract[0] = 200 + rng.IntN(300)
		}
		lhsDims, lhsB, lhsC := layout(rng, batch, contract, nl, dim)
		rhsDims, rhsB, rhsC := layout(rng, batch, contract, nr, dim)
		if seed%5 == 0 {
			// Keep the large problems to a few million products: the
			// float64 reference is simplego's scalar loop, and an input
			// that runs for 10 s counts as a hang to go test -fuzz.
			for i := range batch {
				batch[i] = min(batch[i], 2)
			}
			for i := 1; i < len(contract); i++ {
				contract[i] = min(contract[i], 3)
			}
			lhsDims, lhsB, lhsC = capCross(lhsDims, lhsB, lhsC, batch, contract, 3)
			rhsDims, rhsB, rhsC = capCross(rhsDims, rhsB, rhsC, batch, contract, 3)
			for i := range lhsDims {
				if !slices.Contains(lhsB, i) && !slices.Contains(lhsC, i) {
					lhsDims[i] *= 17 // one cross axis
					break
				}
			}
		}
		lhs, rhs := randArr(rng, lhsDims...), randArr(rng, rhsDims...)
		calls := nativeDotCalls.Load()
		defer func() {
			if nativeDotCalls.Load()-calls < 2 {
				t.Errorf("%v · %v: the native DotGeneral did not run", lhsDims, rhsDims)
			}
		}()
		fn := func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.DotGeneral(in[0], lhsC, lhsB, in[1], rhsC, rhsB)}
		}
		what := fmt.Sprintf("lhs %v (contract %v, batch %v) · rhs %v (contract %v, batch %v)", lhsDims, lhsC, lhsB, rhsDims, rhsC, rhsB)
		want := execArrs(t, pure, false, fn, lhs, rhs)[0]
		assertClose(t, what+" float64", execArrs(t, native, false, fn, lhs, rhs)[0], want, 1e-12)
		scale := execArrs(t, pure, false, fn, absArr(lhs), absArr(rhs))[0]
		got32 := execArrs(t, native, true, fn, lhs, rhs)[0]
		want32 := execArrs(t, pure, true, fn, lhs, rhs)[0]
		assertWithin(t, what+" float32", got32, want32, scale, 1e-5)
	})
}

// capCross sets the batch and contracting axes of dims to the given sizes
// and caps its cross axes at most.
func capCross(dims, batchAxes, contractAxes, batch, contract []int, most int) ([]int, []int, []int) {
	for i := range dims {
		dims[i] = min(dims[i], most)
	}
	for i, a := range batchAxes {
		dims[a] = batch[i]
	}
	for i, a := range contractAxes {
		dims[a] = contract[i]
	}
	return dims, batchAxes, contractAxes
}

// layout places batch and contracting axes of the given sizes, plus cross
// cross axes, in a random order; it returns the dimensions and where the
// batch and contracting axes went (in the given order).
func layout(rng *rand.Rand, batch, contract []int, cross int, dim func() int) (dims, batchAxes, contractAxes []int) {
	n := len(batch) + len(contract) + cross
	perm := rng.Perm(n)
	dims = make([]int, n)
	for i, d := range batch {
		dims[perm[i]] = d
		batchAxes = append(batchAxes, perm[i])
	}
	for i, d := range contract {
		a := perm[len(batch)+i]
		dims[a] = d
		contractAxes = append(contractAxes, a)
	}
	for _, a := range perm[len(batch)+len(contract):] {
		dims[a] = dim()
	}
	return dims, batchAxes, contractAxes
}

// assertWithin fails unless every element of got is within tol·scale of
// want's, where scale holds each element's Σ|products|.
func assertWithin(t *testing.T, what string, got, want, scale arr, tol float64) {
	t.Helper()
	if !slices.Equal(got.dims, want.dims) {
		t.Fatalf("%s: dims %v, want %v", what, got.dims, want.dims)
	}
	for i := range got.data {
		if d := math.Abs(got.data[i] - want.data[i]); d > tol*(scale.data[i]+1e-30) || math.IsNaN(got.data[i]) {
			t.Fatalf("%s: element %d = %.8g, want %.8g (|diff| %.3g > %.3g·Σ|products| %.3g)",
				what, i, got.data[i], want.data[i], d, tol, scale.data[i])
		}
	}
}

// randomAxes returns a convolution axes configuration with the axes of
// each operand in a random order.
func randomAxes(rng *rand.Rand, spatial int) backends.ConvolveAxesConfig {
	in, k, out := rng.Perm(spatial+2), rng.Perm(spatial+2), rng.Perm(spatial+2)
	return backends.ConvolveAxesConfig{
		InputBatch: in[0], InputChannels: in[1], InputSpatial: in[2:],
		KernelOutputChannels: k[0], KernelInputChannels: k[1], KernelSpatial: k[2:],
		OutputBatch: out[0], OutputChannels: out[1], OutputSpatial: out[2:],
	}
}

// permuteDims returns the dimensions of a tensor whose axes hold the
// logical sizes (first, second, spatial...) at the positions the axes name.
func permuteDims(first, second int, spatial []int, a0, a1 int, as []int) []int {
	dims := make([]int, 2+len(spatial))
	dims[a0], dims[a1] = first, second
	for i, d := range spatial {
		dims[as[i]] = d
	}
	return dims
}

// FuzzNativeConv draws random convolutions (1 to 3 spatial axes, random
// axis layouts, strides, positive and negative padding, input and kernel
// dilations) and checks the native kernel's forward result and the
// gradients with respect to input and kernel (whose convolutions GoMLX
// writes with input dilation and swapped axes) against the pure-Go
// kernels: to 1e-12 in float64, and in float32 to 1e-4 of the largest
// magnitude (the native kernels sum in another order than simplego's).
func FuzzNativeConv(f *testing.F) {
	for seed := range uint64(24) {
		f.Add(seed)
	}
	native, pure := newNative(f), newPureGo(f)
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
		n := 1 + rng.IntN(3)
		batch, channels, outCh := 1+rng.IntN(3), 1+rng.IntN(4), 1+rng.IntN(4)
		if seed%4 == 0 { // wide enough for tiles, row chunks and the parallel split
			channels, outCh = 8+rng.IntN(24), 8+rng.IntN(24)
		}
		inSp, kSp := make([]int, n), make([]int, n)
		strides, inDil, kDil := make([]int, n), make([]int, n), make([]int, n)
		pads := make([][2]int, n)
		for i := range n {
			inSp[i], kSp[i] = 1+rng.IntN(9), 1+rng.IntN(4)
			strides[i], inDil[i], kDil[i] = 1+rng.IntN(3), 1+rng.IntN(2), 1+rng.IntN(2)
			pads[i] = [2]int{rng.IntN(5) - 1, rng.IntN(5) - 1}
		}
		if seed%3 == 1 { // a long last axis at stride 1: the shifted im2col (conv_shift.go)
			inSp[n-1], strides[n-1], inDil[n-1] = 8+rng.IntN(17), 1, 1
		}
		axes := randomAxes(rng, n)
		if seed%2 == 0 { // what the model's gradients need: channels first, no input dilation, padding ≥ 0
			axes = channelsFirst(n)
			dilate := rng.IntN(2) == 0 // GoMLX's gradient takes strides or dilations, not both
			for i := range n {
				if dilate {
					strides[i] = 1
				} else {
					kDil[i] = 1
				}
				span := (kSp[i]-1)*kDil[i] + 1
				inDil[i], pads[i] = 1, [2]int{rng.IntN(span), rng.IntN(span)}
			}
		}
		xDims := permuteDims(batch, channels, inSp, axes.InputBatch, axes.InputChannels, axes.InputSpatial)
		wDims := permuteDims(outCh, channels, kSp, axes.KernelOutputChannels, axes.KernelInputChannels, axes.KernelSpatial)
		inDilArg := inDil // GoMLX's gradient refuses any input dilations, even ones
		if slices.Max(inDil) == 1 {
			inDilArg = nil
		}
		conv := func(x, w *graph.Node) *graph.Node {
			return graph.ConvGeneral(x, w, axes, strides, pads, inDilArg, kDil, 1, 1)
		}
		x, w := randArr(rng, xDims...), randArr(rng, wDims...)
		what := fmt.Sprintf("x %v w %v axes %+v strides %v pads %v dil %v/%v", xDims, wDims, axes, strides, pads, inDil, kDil)
		// The forward pass first: configurations shape inference refuses
		// are skipped (FuzzConvGeneral checks the refusal).
		fwd := func(in []*graph.Node) []*graph.Node { return []*graph.Node{conv(in[0], in[1])} }
		e, err := graph.NewExec(pure, fwd)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := e.Exec(x.tensor(false), w.tensor(false))
		e.Finalize()
		if err != nil {
			return
		}
		r := randArr(rng, outs[0].Shape().Dimensions...)
		grads := func(in []*graph.Node) []*graph.Node {
			y := conv(in[0], in[1])
			loss := graph.ReduceAllSum(graph.Mul(y, in[2]))
			return append([]*graph.Node{y}, graph.Gradient(loss, in[0], in[1])...)
		}
		names := []string{"forward", "dL/dx", "dL/dw"}
		calls, flips := nativeConvCalls.Load(), nativeFlippedCalls.Load()
		if !gradientsDefined(pure, grads, x, w, r) {
			// GoMLX v0.26.0's convolution gradient handles neither input
			// dilation nor every layout and padding: check the forward pass.
			grads, names = func(in []*graph.Node) []*graph.Node { return fwd(in[:2]) }, names[:1]
		}
		for _, f32 := range []bool{false, true} {
			tol := 1e-12
			if f32 {
				tol = 1e-4
			}
			want := execArrs(t, pure, f32, grads, x, w, r)
			got := execArrs(t, native, f32, grads, x, w, r)
			for i, name := range names {
				assertClose(t, fmt.Sprintf("%s f32=%v: %s", what, f32, name), got[i], want[i], tol)
			}
		}
		if ran := nativeConvCalls.Load() - calls; ran < int64(2*len(names)) {
			t.Fatalf("%s: the native convolution ran %d times, want at least %d", what, ran, 2*len(names))
		}
		if len(names) == 3 && slices.Max(kSp) > 1 && nativeFlippedCalls.Load() == flips {
			t.Fatalf("%s: the input gradient did not read the kernel flipped", what)
		}
	})
}

// gradientsDefined reports whether GoMLX builds and runs fn on backend.
func gradientsDefined(backend backends.Backend, fn func([]*graph.Node) []*graph.Node, inputs ...arr) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	e, err := graph.NewExec(backend, fn)
	if err != nil {
		return false
	}
	defer e.Finalize()
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in.tensor(false)
	}
	_, err = e.Exec(args...)
	return err == nil
}
