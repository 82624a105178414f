package quant

import (
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// CPU lists the instruction sets that decide how fast reduced-precision
// inference runs on this processor.
type CPU struct {
	AVX2, FMA, AVX512F  bool
	AVX512VNNI, AVXVNNI bool // int8 dot products (vpdpbusd)
	AVX512BF16          bool // bfloat16 dot products
	AMXInt8, AMXBF16    bool // Intel's matrix tiles
	Arch                string
}

// DetectCPU reads the processor's features (CPUID on x86).
func DetectCPU() CPU {
	return CPU{
		AVX2: cpu.X86.HasAVX2, FMA: cpu.X86.HasFMA, AVX512F: cpu.X86.HasAVX512F,
		AVX512VNNI: cpu.X86.HasAVX512VNNI, AVXVNNI: cpu.X86.HasAVXVNNI,
		AVX512BF16: cpu.X86.HasAVX512BF16,
		AMXInt8:    cpu.X86.HasAMXInt8, AMXBF16: cpu.X86.HasAMXBF16,
		Arch: runtime.GOARCH,
	}
}

// Int8Kernel names the integer GEMM ONNX Runtime's MLAS dispatches to on c
// (MLAS chooses by CPUID when the library loads; covseg's int8 models run
// everywhere, only slower without VNNI).
func (c CPU) Int8Kernel() string {
	switch {
	case c.Arch != "amd64":
		return "MLAS portable or NEON int8 kernels (" + c.Arch + ")"
	case c.AMXInt8:
		return "AMX int8 tiles"
	case c.AVX512VNNI:
		return "AVX512-VNNI (vpdpbusd)"
	case c.AVXVNNI:
		return "AVX-VNNI (vpdpbusd, 256-bit)"
	case c.AVX2:
		return "AVX2 without VNNI (vpmaddubsw + vpmaddwd): FALLBACK, int8 is slower than with VNNI"
	default:
		return "SSE4.1 int8 kernels: FALLBACK, int8 may be no faster than float32"
	}
}

// String lists the features present, e.g. "amd64: avx2 fma avx512f
// avx512vnni avx512bf16".
func (c CPU) String() string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{c.AVX2, "avx2"}, {c.FMA, "fma"}, {c.AVX512F, "avx512f"}, {c.AVX512VNNI, "avx512vnni"},
		{c.AVXVNNI, "avxvnni"}, {c.AVX512BF16, "avx512bf16"}, {c.AMXInt8, "amx-int8"}, {c.AMXBF16, "amx-bf16"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	if len(f) == 0 {
		f = append(f, "none of avx2/avx512/vnni/bf16/amx")
	}
	return c.Arch + ": " + strings.Join(f, " ")
}
