package covcpu

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// unsetBackendEnv clears GOMLX_BACKEND for the test and restores it after.
func unsetBackendEnv(t *testing.T) {
	t.Setenv(backends.ConfigEnvVar, "")
	if err := os.Unsetenv(backends.ConfigEnvVar); err != nil {
		t.Fatal(err)
	}
}

func TestNewDefaultsToAdapter(t *testing.T) {
	for _, set := range []bool{false, true} {
		unsetBackendEnv(t)
		if set {
			t.Setenv(backends.ConfigEnvVar, "") // empty counts as unset
		}
		b, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if b.String() != Name {
			t.Fatalf("New() = %q, want %q", b.String(), Name)
		}
		caps := b.Capabilities()
		if !caps.Operations[backends.OpTypePad] || !caps.Operations[backends.OpTypeReverse] || !caps.Operations[backends.OpTypeConvGeneral] {
			t.Fatalf("capabilities lack Pad, Reverse or ConvGeneral")
		}
		b.Finalize()
	}
}

func TestNewHonoursEnv(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{"go", "go"},
		{"covcpu", Name},
		{"covcpu:parallelism=1,conv=simplego", Name},
	} {
		t.Setenv(backends.ConfigEnvVar, tc.config)
		b, err := New()
		if err != nil {
			t.Fatalf("%s=%q: %v", backends.ConfigEnvVar, tc.config, err)
		}
		if b.String() != tc.want {
			t.Errorf("%s=%q gave backend %q, want %q", backends.ConfigEnvVar, tc.config, b.String(), tc.want)
		}
		b.Finalize()
	}
}

// TestNewErrors checks that a bad GOMLX_BACKEND is an error, not a panic,
// and that naming an XLA plugin that is not there fails without trying to
// download one.
func TestNewErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{"nosuch", "nosuch"},
		{"covcpu:bogus_option", "bogus_option"},
		// Without cgo the XLA backend is not linked: "not compiled in" is right too.
		{"xla:/nonexistent/pjrt_c_api_cpu_plugin.so", "failed to load PJRT plugin"},
		{"xla:nosuchplugin", "plugin"},
	} {
		t.Setenv(backends.ConfigEnvVar, tc.config)
		b, err := New()
		if err == nil {
			b.Finalize()
			t.Errorf("%s=%q: no error", backends.ConfigEnvVar, tc.config)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) && !strings.Contains(err.Error(), "not compiled in") {
			t.Errorf("%s=%q: error %q does not mention %q", backends.ConfigEnvVar, tc.config, err, tc.want)
		}
	}
}

// TestDirectConvOption checks that "conv=simplego" (simplego's kernel with
// the defaults filled in) gives the same convolution gradients as im2col.
func TestDirectConvOption(t *testing.T) {
	direct, err := NewAdapter("conv=simplego")
	if err != nil {
		t.Fatal(err)
	}
	c := gradCases[2] // stride 2, padding 1
	rng := rand.New(rand.NewPCG(31, 32))
	x, w, r := randArr(rng, c.x...), randArr(rng, c.kernelDims()...), randArr(rng, c.outDims()...)
	fn := func(in []*graph.Node) []*graph.Node {
		loss := graph.ReduceAllSum(graph.Mul(c.build(in[0], in[1]), in[2]))
		return graph.Gradient(loss, in[0], in[1])
	}
	want := execArrs(t, newAdapter(t), false, fn, x, w, r)
	got := execArrs(t, direct, false, fn, x, w, r)
	assertClose(t, "dL/dx", got[0], want[0], 1e-12)
	assertClose(t, "dL/dw", got[1], want[1], 1e-12)
}
