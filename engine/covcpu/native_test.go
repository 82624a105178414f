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
				"re-read simplego (exec.go, builder.go, dotgeneral.go, convgeneral.go), update the mirrors, then wantGoMLXVersion",
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
				"re-read simplego (exec.go, builder.go, dotgeneral.go, convgeneral.go), update the mirrors, then wantGoMLXVersion",
				v, wantGoMLXVersion)
		}
	}
	if err := checkInternals(); err != nil {
		t.Fatal(err)
	}
	if sgNodeExecutors[backends.OpTypeDotGeneral] == nil || simplegoDot == nil || simplegoConv == nil {
		t.Fatal("simplego's executor table has no DotGeneral or ConvGeneral executor")
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
			for i := range lhsDims {
				if !slices.Contains(lhsB, i) && !slices.Contains(lhsC, i) {
					lhsDims[i] *= 17 // one cross axis
					break
				}
			}
		}
		lhs, rhs := randArr(rng, lhsDims...), randArr(rng, rhsDims...)
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
