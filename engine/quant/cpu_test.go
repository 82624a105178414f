package quant

import (
	"strings"
	"testing"
)

// TestInt8KernelChoice checks the kernel named for each kind of x86 CPU,
// the fallbacks included: the int8 model is the same file everywhere.
func TestInt8KernelChoice(t *testing.T) {
	for _, c := range []struct {
		cpu  CPU
		want string
	}{
		{CPU{Arch: "amd64", AVX2: true, AVX512F: true, AVX512VNNI: true, AVX512BF16: true}, "AVX512-VNNI"},
		{CPU{Arch: "amd64", AVX2: true, AVXVNNI: true}, "AVX-VNNI"},
		{CPU{Arch: "amd64", AVX2: true, AMXInt8: true, AVX512VNNI: true}, "AMX"},
		{CPU{Arch: "amd64", AVX2: true, FMA: true}, "FALLBACK"},
		{CPU{Arch: "amd64"}, "SSE4.1"},
		{CPU{Arch: "arm64"}, "arm64"},
	} {
		if got := c.cpu.Int8Kernel(); !strings.Contains(got, c.want) {
			t.Errorf("%v: Int8Kernel() = %q, want it to name %q", c.cpu, got, c.want)
		}
	}
	if s := (CPU{Arch: "amd64", AVX2: true, AVX512VNNI: true}).String(); s != "amd64: avx2 avx512vnni" {
		t.Errorf("String() = %q", s)
	}
	t.Logf("this CPU: %v; int8 kernel: %s", DetectCPU(), DetectCPU().Int8Kernel())
}
