// Package covcpu provides covseg's default GoMLX backend: a thin adapter
// over GoMLX's pure-Go backend (simplego) that adds what training a 3D CNN
// needs and simplego v0.26.0 lacks.
//
// # Choosing a backend
//
// New picks the backend in this order:
//
//   - If the environment variable GOMLX_BACKEND is set (non-empty), it is honoured
//     exactly, in GoMLX's "<name>:<config>" syntax: "xla:cpu" for XLA's CPU
//     PJRT plugin, "xla:cuda" for the CUDA plugin, "xla:/abs/path/pjrt_c_api_x.so"
//     for a plugin file (options follow a comma: "xla:cuda,tf32"), "go" for
//     plain simplego, "covcpu" or "covcpu:<options>" for this adapter.
//     The XLA backend is compiled in only when building with cgo (the
//     default on linux/amd64 and darwin) and without the "noxla" build tag.
//     Its automatic download of PJRT plugins is switched off: install the
//     plugin yourself (see github.com/gomlx/go-xla) or give its absolute
//     path; PJRT_PLUGIN_LIBRARY_PATH sets where plugins are searched for.
//   - Otherwise it returns this adapter ("covcpu"), which needs nothing but Go.
//
// The adapter's config (after "covcpu:") is a comma-separated list:
//
//   - "kernels=native" (the default) runs DotGeneral and ConvGeneral on
//     native kernels: OpenBLAS's gemm (libopenblas.so.0, loaded at run time;
//     COVSEG_BLAS_LIB names another file) with a fused im2col for
//     convolutions, see native.go and conv_native.go. Without cgo, with the
//     "noblas" build tag or without the library, the adapter prints one line
//     saying so and runs on the pure-Go kernels ("kernels=go"), the slow path.
//     The native kernels also run simplego's broadcasting elementwise
//     operations, BroadcastInDim, ReduceSum and Sign over contiguous runs
//     (elementwise.go: the same bits as simplego's, a fifth off a training
//     step of covseg demo's network); "elementwise=simplego" keeps
//     simplego's own for those.
//   - "conv=native" (the default with native kernels), "conv=im2col" (the
//     graph-level im2col below, the default on the pure-Go kernels) or
//     "conv=simplego" picks the convolution.
//   - "im2col=N" caps the patches im2col builds at once at N MiB (default
//     64, see DefaultIm2colMiB; "im2col=0" lifts the cap). The patches of
//     a 3x3x3 convolution take 27 times the memory of its input, so larger
//     convolutions are computed in tiles, one after the other; a tile's
//     transient memory is about three times its patches (the slices, their
//     concatenation, and DotGeneral's blocked copy). Example:
//     GOMLX_BACKEND=covcpu:im2col=256.
//   - "conv=simplego" uses simplego's own convolution kernel
//     (single-threaded, 6 to 12 times slower per layer, but without
//     im2col's temporary copies).
//   - Everything else is simplego's ("parallelism=N" caps its worker
//     count). The adapter runs a graph's ops one after another
//     ("ops_sequential"), each op still spread over the cores, because
//     simplego's parallel mode can deadlock (see simplegoConfig);
//     "ops_parallel" asks for it anyway.
//
// # What the adapter adds to simplego
//
//   - Reverse, built from one Gather.
//   - Pad with any start/end (negative trims) and interior padding, built
//     from Slice, Reshape, BroadcastInDim and Concatenate. GoMLX's
//     gradients of Slice and of sum/mean pooling emit Pad.
//   - ConvGeneral with nil strides and dilations filled with ones (simplego's
//     shape inference rejects nil strides, which GoMLX's kernel gradient of
//     any convolution without explicit dilations passes), computed as
//     im2col followed by a parallel DotGeneral: any number of spatial axes,
//     any axis layout, strides, negative or positive padding, input and kernel
//     dilations, in tiles of bounded memory. Grouped convolutions are
//     handed to simplego unchanged.
//
// Everything else is simplego's. Delete this package the day simplego has
// Pad, Reverse and a fast convolution.
//
// # Gradients GoMLX v0.26.0 does not have
//
// These are graph-level and no backend can add them: Rsqrt, Pad and Reverse
// have no gradient (use Div(1, Sqrt(x)) or Pow(x, -0.5) instead of Rsqrt);
// Interpolate's gradient is wrong (resize with Gather instead, whose
// gradient is a ScatterSum); ReduceWindow max/min gradients need
// SelectAndScatter, which simplego lacks.
package covcpu

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// Name is the name under which the adapter is registered with GoMLX's
// backend registry, for use in GOMLX_BACKEND ("covcpu" or "covcpu:<simplego config>").
const Name = "covcpu"

func init() {
	backends.Register(Name, NewAdapter)
}

// New returns the backend covseg should use: the one GOMLX_BACKEND names if
// that variable is set and not empty, otherwise the pure-Go adapter. See the
// package documentation.
func New() (backends.Backend, error) {
	if config := os.Getenv(backends.ConfigEnvVar); config != "" {
		return newFromConfig(config)
	}
	return NewAdapter("")
}

// newFromConfig creates the backend named by a GOMLX_BACKEND-style config,
// turning GoMLX's panic for an unknown name into an error.
func newFromConfig(config string) (b backends.Backend, err error) {
	name, _, _ := strings.Cut(config, ":")
	known := backends.List()
	slices.Sort(known)
	if !slices.Contains(known, name) {
		return nil, fmt.Errorf("backend: %s=%q names backend %q, which is not compiled in (available: %s)",
			backends.ConfigEnvVar, config, name, strings.Join(known, ", "))
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("backend: creating %s=%q: %v", backends.ConfigEnvVar, config, r)
		}
	}()
	b, err = backends.NewWithConfig(config)
	if err != nil {
		return nil, fmt.Errorf("backend: creating %s=%q: %w", backends.ConfigEnvVar, config, err)
	}
	return b, nil
}

// DefaultIm2colMiB is the default im2col budget in MiB (the adapter's
// "im2col=N" option).
const DefaultIm2colMiB = 64

// NewAdapter returns the pure-Go adapter over simplego. config is a
// comma-separated list of options: "conv=simplego" computes convolutions
// with simplego's own (slow, single-threaded, but frugal with memory)
// kernel instead of im2col; "im2col=N" caps the patches of one im2col
// step at N MiB (default DefaultIm2colMiB; 0 means no cap); every other
// option goes to simplego unchanged (e.g. "parallelism=4"). Empty config
// means the defaults, and the defaults include simplego's "ops_sequential"
// unless config names "ops_parallel" or "ops_sequential" itself: see
// simplegoConfig.
func NewAdapter(config string) (backends.Backend, error) {
	var rest []string
	convMode, kernels, elementwise := "", "native", "native"
	budgetMiB := int64(DefaultIm2colMiB)
	for _, opt := range strings.Split(config, ",") {
		key, value, _ := strings.Cut(opt, "=")
		switch {
		case key == "conv" && (value == "simplego" || value == "im2col" || value == "native"):
			convMode = value
		case key == "kernels" && (value == "native" || value == "go"):
			kernels = value
		case key == "elementwise" && (value == "native" || value == "simplego"):
			elementwise = value
		case key == "im2col":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || n > 1<<30 {
				return nil, fmt.Errorf("backend: option %q in config %q: want im2col=N with N a whole number of MiB, 0 to 2^30 (0: no cap)", opt, config)
			}
			budgetMiB = n
		case key == "conv" || key == "kernels" || key == "elementwise":
			return nil, fmt.Errorf("backend: option %q in config %q: want conv=native, conv=im2col or conv=simplego; kernels=native or kernels=go; elementwise=native or elementwise=simplego", opt, config)
		default:
			rest = append(rest, opt)
		}
	}
	native := kernels == "native"
	if native {
		if err := nativeAvailable(); err != nil {
			warnSlowPath(err)
			native = false
		}
	}
	if convMode == "native" && !native {
		return nil, fmt.Errorf("backend: config %q: conv=native needs the native kernels, which are off here", config)
	}
	if convMode == "" {
		convMode = "im2col"
		if native {
			convMode = "native"
		}
	}
	rest = simplegoConfig(rest)
	inner, err := newSimplegoQuietly(strings.Join(rest, ","))
	if err != nil {
		return nil, fmt.Errorf("backend: creating simplego with config %q: %w", config, err)
	}
	registerNative(inner, nativeMode{dot: native, conv: convMode == "native", elem: native && elementwise == "native"})
	caps := inner.Capabilities().Clone()
	caps.Operations[backends.OpTypePad] = true
	caps.Operations[backends.OpTypeReverse] = true
	return &Backend{Backend: inner, caps: caps, directConv: convMode != "im2col", native: native,
		im2colBudget: budgetMiB << 20, convMode: convMode}, nil
}

// stdoutMu serialises newSimplegoQuietly's swaps of os.Stdout.
var stdoutMu sync.Mutex

// newSimplegoQuietly creates simplego with config while its standard
// output goes to the null device: simplego v0.26.0 prints "SimpleGo
// backend: parallelism set to N" with fmt.Printf whenever the config sets
// parallelism, which would corrupt output that must be machine-readable
// (covseg demo --json prints one JSON object on standard output). Only a
// write to os.Stdout by another goroutine during the call could be lost.
func newSimplegoQuietly(config string) (backends.Backend, error) {
	if !strings.Contains(config, "parallelism") {
		return simplego.New(config)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return simplego.New(config)
	}
	defer null.Close()
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	saved := os.Stdout
	os.Stdout = null
	defer func() { os.Stdout = saved }()
	return simplego.New(config)
}

// Unbounded is the adapter option list that runs a graph's independent ops
// at the same time, on as many goroutines as there is work ("ops_parallel"
// with "parallelism=-1": simplego's pool then starts a goroutine per task
// instead of waiting for a slot, so it cannot deadlock). Against the
// sequential default it was 20-25 % faster per training step on two cores
// (1.20-1.24 s against 1.43-1.63 s for a width-1/16 network at 16x32x32;
// 30.5 s against 37.4 s at full width and 8x32x32) and took about 35 %
// more peak memory (4.2 GB against 3.1 GB at full width): worth it for
// small networks such as covseg demo's.
const Unbounded = "parallelism=-1,ops_parallel"

// simplegoConfig returns simplego's options with "ops_sequential" added
// unless they choose the ops' execution mode already.
//
// Why: simplego v0.26.0 runs the ops of a graph as tasks of its worker pool
// when one graph executes at a time ("ops_parallel"), and some ops (the
// small-matrix DotGeneral, Erf) split their own work into further tasks of
// the same pool and wait for them without giving their slot back. When
// every slot holds such an op, each waits for a slot forever: a training
// step of the demo network on two cores hung this way (all goroutines in
// workersPool.WaitToStart), and a graph of 32 independent batched matrix
// products hangs within a few hundred runs at parallelism=1. Run
// sequentially, the ops execute on the caller's goroutine, which holds no
// slot, and their parts still run in parallel on the pool; the training
// step is no slower (1.4-1.6 s against 1.3-2.1 s for the demo network on
// two cores) and its peak memory is lower, because one op's temporaries
// are freed before the next op's are made.
func simplegoConfig(opts []string) []string {
	for _, opt := range opts {
		if opt == "ops_parallel" || opt == "ops_sequential" {
			return opts
		}
	}
	return append(opts, "ops_sequential")
}

// Backend is the adapter: simplego with the operations listed in the
// package documentation added or replaced. Buffers and executables are
// simplego's.
type Backend struct {
	backends.Backend // simplego
	caps             backends.Capabilities
	directConv       bool   // emit ConvGeneral (simplego's or the native kernel executes it)
	native           bool   // native DotGeneral (BLAS)
	convMode         string // "native", "im2col" or "simplego"
	im2colBudget     int64  // bytes of patches per im2col step; 0: no cap
}

// Native reports whether the adapter runs the native (BLAS) kernels.
func (b *Backend) Native() bool { return b.native }

// Name returns the adapter's registered name.
func (b *Backend) Name() string { return Name }

// String returns the adapter's registered name.
func (b *Backend) String() string { return Name }

// Description describes the adapter, its kernels and the backend it wraps.
func (b *Backend) Description() string {
	kernels := "pure-Go kernels (slow path)"
	if b.native {
		kernels = "native kernels (BLAS " + DefaultBLASLibrary + ")"
	}
	return "covseg CPU adapter (" + kernels + ", conv=" + b.convMode + ") over " + b.Backend.Description()
}

// Capabilities returns simplego's capabilities plus Pad and Reverse.
func (b *Backend) Capabilities() backends.Capabilities { return b.caps }

// Builder returns a builder whose ops are simplego's except those the
// adapter adds or replaces.
func (b *Backend) Builder(name string) backends.Builder {
	return &Builder{Builder: b.Backend.Builder(name), directConv: b.directConv,
		nativeConv: b.convMode == "native", im2colBudget: b.im2colBudget}
}
