package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/covseg/covseg/internal/procstat"
	"github.com/covseg/covseg/internal/repo"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
)

// BenchModel is the network a benchmark runs: a model file or ONNX file
// given by the user (Path), or else the paper's network at Width with
// random weights from Seed, exported to a temporary ONNX file.
type BenchModel struct {
	Path  string
	Width float64
	Seed  uint64
}

// open returns the ONNX Runtime engine of the model.
func (b BenchModel) open(w io.Writer, threads int) (infer.Engine, error) {
	dir, err := os.MkdirTemp("", "covseg-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path, err := b.onnxPath(w, dir)
	if err != nil {
		return nil, err
	}
	return infer.OpenEngine(path, infer.EngineOptions{Threads: threads, Version: Version})
}

// onnxPath returns b.Path, or the random network exported into dir.
func (b BenchModel) onnxPath(w io.Writer, dir string) (string, error) {
	if b.Path != "" {
		return b.Path, nil
	}
	cfg := model.DefaultConfig()
	cfg.Width = b.Width
	start := time.Now()
	ctx, err := model.NewContext(cfg, b.Seed)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "model.onnx")
	if err := onnx.Export(path, cfg, ctx, Version, onnx.Options{}); err != nil {
		return "", err
	}
	fmt.Fprintf(w, "network:  %s, random weights, exported to ONNX in %s\n", cfg, time.Since(start).Round(10*time.Millisecond))
	return path, nil
}

// BenchInferOptions configure BenchInfer.
type BenchInferOptions struct {
	Model BenchModel
	// Shape is the input's D, H, W.
	Shape [3]int
	// Runs are the timed runs after one warm-up run.
	Runs int
	// Threads of ONNX Runtime and PyTorch; 0 means one per physical core.
	Threads int
	// Python is the interpreter with torch for the reference run; empty
	// skips it. Script is torch_unet3d.py (default: ../shared/bench/
	// beside the repository).
	Python, Script string
	// Precision is PrecisionFloat32 (the default when empty), or
	// PrecisionInt8 or PrecisionBoth to also quantise the network and time
	// the int8 model, with PyTorch's bfloat16 autocast beside it.
	Precision string
}

// Precisions of BenchInferOptions.Precision.
const (
	PrecisionFloat32 = "float32"
	PrecisionInt8    = "int8"
	PrecisionBoth    = "both"
)

// BenchInfer times the network's forward pass in ONNX Runtime on a
// 1x1xDxHxW input and prints to w the median seconds, GFLOP/s against the
// convolutions' FLOPs, the share of the CPU's estimated FP32 peak and, when
// o.Python has torch, the ratio to PyTorch on the same network, shape and
// threads (covseg's runs bracket PyTorch's so both see the load alike).
func BenchInfer(w io.Writer, o BenchInferOptions) error {
	if o.Runs < 1 {
		return fmt.Errorf("bench infer: --runs %d", o.Runs)
	}
	if o.Threads <= 0 {
		o.Threads = PhysicalCores()
	}
	switch o.Precision {
	case "":
		o.Precision = PrecisionFloat32
	case PrecisionFloat32, PrecisionInt8, PrecisionBoth:
	default:
		return fmt.Errorf("bench infer: --precision %q: want float32, int8 or both", o.Precision)
	}
	return benchInfer(w, o.Model, o.Shape, o.Runs, o.Threads, o.Python, o.Script, o.Precision)
}

func benchInfer(w io.Writer, m BenchModel, dhw [3]int, runs, threads int, torch, script, prec string) (err error) {
	cpu := readCPU()
	fmt.Fprintln(w, cpu)
	eng, err := m.open(w, threads)
	if err != nil {
		return fmt.Errorf("bench infer: %w", err)
	}
	defer eng.Close()
	cfg := eng.Config()
	flops, err := model.ConvFLOPs(cfg, 1, dhw[0], dhw[1], dhw[2])
	if err != nil {
		return fmt.Errorf("bench infer: %w", err)
	}
	gflop := float64(flops) / 1e9
	fmt.Fprintf(w, "input:    1x1x%dx%dx%d, %.1f GFLOP in the convolutions\n", dhw[0], dhw[1], dhw[2], gflop)

	x := make([]float32, dhw[0]*dhw[1]*dhw[2])
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = rng.Float32()
	}
	shape := [5]int{1, 1, dhw[0], dhw[1], dhw[2]}
	var walls, cpus []float64
	timeRuns := func(n int) error {
		for range n {
			c0 := procstat.CPUTime()
			start := time.Now()
			if _, _, err := eng.Run(x, shape); err != nil {
				return fmt.Errorf("bench infer: %w", err)
			}
			walls = append(walls, time.Since(start).Seconds())
			if c1 := procstat.CPUTime(); c1 > 0 {
				cpus = append(cpus, (c1 - c0).Seconds())
			}
		}
		return nil
	}
	// One warm-up run, then the timed runs bracket PyTorch's (half before,
	// half after) so that both see the machine's load alike.
	if err := timeRuns(1); err != nil {
		return err
	}
	walls, cpus = walls[:0], cpus[:0]
	if err := timeRuns((runs + 1) / 2); err != nil {
		return err
	}
	var ref *torchResult
	var refErr error
	if torch != "" {
		ref, refErr = runTorch(torch, script, dhw, runs, threads)
	}
	if err := timeRuns(runs / 2); err != nil {
		return err
	}
	med := median(walls)
	fmt.Fprintf(w, "covseg:   %s: median %.2f s of %d runs %s → %.1f GFLOP/s%s\n",
		eng.Name(), med, runs, fmtTimes(walls), gflop/med, cpu.ofPeak(gflop/med, threads))
	var cpuRun float64
	if len(cpus) > 0 {
		cpuRun = median(cpus)
		fmt.Fprintf(w, "          CPU time %.2f s per run (%.2f cores busy on average): %.1f GFLOP per CPU-second\n", cpuRun, cpuRun/med, gflop/cpuRun)
	}
	var torchMedian float64
	defer func() {
		if prec != PrecisionFloat32 && err == nil {
			err = benchInt8(w, m, x, dhw, runs, threads, gflop, med, torchMedian, torch, script)
		}
	}()
	switch {
	case torch == "":
		return nil
	case refErr != nil:
		fmt.Fprintf(w, "pytorch:  not run: %v\n", refErr)
		return nil
	}
	torchMedian = ref.Median
	fmt.Fprintf(w, "pytorch:  %s, %d threads: median %.2f s → %.1f GFLOP/s%s (it counts %.1f GFLOP)\n",
		ref.Engine, ref.Threads, ref.Median, gflop/ref.Median, cpu.ofPeak(gflop/ref.Median, threads), ref.GFLOP)
	if ref.CPUPerRun > 0 {
		fmt.Fprintf(w, "          CPU time ≈ %.2f s per forward pass (the process's total over its %d passes, set-up included): %.1f GFLOP per CPU-second\n",
			ref.CPUPerRun, runs+2, gflop/ref.CPUPerRun)
	}
	fmt.Fprintf(w, "ratio:    covseg+ORT takes %.2fx the time of PyTorch (%.2f s vs %.2f s)\n", med/ref.Median, med, ref.Median)
	if cpuRun > 0 && ref.CPUPerRun > 0 {
		fmt.Fprintf(w, "          and %.2fx its CPU time per forward pass (%.2f s vs ≈ %.2f s), which depends less on the machine's load\n",
			cpuRun/ref.CPUPerRun, cpuRun, ref.CPUPerRun)
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtTimes(ts []float64) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.FormatFloat(t, 'f', 2, 64)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// torchResult is the JSON line torch_unet3d.py prints.
type torchResult struct {
	Engine  string  `json:"engine"`
	Threads int     `json:"threads"`
	GFLOP   float64 `json:"gflop"`
	Median  float64 `json:"median_s"`
	// CPUPerRun is the child process's CPU time divided by its forward
	// passes (runs + a warm-up + one counting FLOPs), set-up included: a
	// slight overestimate.
	CPUPerRun float64 `json:"-"`
}

// runTorch runs the PyTorch reference as a child process with the same
// shape, runs and threads; extra arguments go to the script ("--bf16").
func runTorch(python, script string, dhw [3]int, runs, threads int, extra ...string) (*torchResult, error) {
	if script == "" {
		shared, err := repo.Shared()
		if err != nil {
			return nil, fmt.Errorf("%w (give --torch-script)", err)
		}
		script = filepath.Join(shared, "bench", "torch_unet3d.py")
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("reference script: %w", err)
	}
	if _, err := os.Stat(python); err != nil {
		return nil, fmt.Errorf("no %s", python)
	}
	if err := exec.Command(python, "-c", "import torch, torchvision").Run(); err != nil {
		return nil, fmt.Errorf("%s has no torch/torchvision (apt-get install python3-torch python3-torchvision)", python)
	}
	args := append([]string{script, "--shape", strconv.Itoa(dhw[0]), strconv.Itoa(dhw[1]), strconv.Itoa(dhw[2]),
		"--threads", strconv.Itoa(threads), "--runs", strconv.Itoa(runs)}, extra...)
	cmd := exec.Command(python, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r torchResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil || !(r.Median > 0) {
		return nil, fmt.Errorf("%s printed %q, not its JSON line", script, out)
	}
	if ps := cmd.ProcessState; ps != nil {
		r.CPUPerRun = (ps.UserTime() + ps.SystemTime()).Seconds() / float64(runs+2)
	}
	return &r, nil
}

// cpuInfo is what the benchmarks report about the processor.
type cpuInfo struct {
	name         string
	cores        int // physical cores, or logical CPUs when unknown
	avx2, fma    bool
	avx512       bool
	ghz          float64 // measured clock
	flopsPerCycl int     // FP32 FLOPs per cycle per core at peak
}

// readCPU reads /proc/cpuinfo (Linux; elsewhere only the CPU count) and
// measures the clock.
func readCPU() cpuInfo {
	c := cpuInfo{name: runtime.GOARCH, cores: PhysicalCores()}
	procCPUInfo(func(k, v string) {
		switch k {
		case "model name":
			c.name = v
		case "flags":
			fl := strings.Fields(v)
			c.avx2, c.fma, c.avx512 = slices.Contains(fl, "avx2"), slices.Contains(fl, "fma"), slices.Contains(fl, "avx512f")
		}
	})
	// Two FMA units per core (every x86 core with FMA since Haswell and Zen 2;
	// some AVX-512 parts have one), each lane a multiply and an add.
	switch {
	case c.avx512 && c.fma:
		c.flopsPerCycl = 2 * 16 * 2
	case c.avx2 && c.fma:
		c.flopsPerCycl = 2 * 8 * 2
	}
	c.ghz = measureGHz()
	return c
}

// procCPUInfo calls fn with each "key: value" line of /proc/cpuinfo; it does
// nothing where there is no such file.
func procCPUInfo(fn func(k, v string)) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			fn(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
}

// PhysicalCores is the number of physical cores this process may use: the
// CPUs it may run on (runtime.NumCPU), fewer when /proc/cpuinfo lists fewer
// distinct cores (hyper-threads share a core's FMA units, so GEMM-bound
// work gains nothing from them).
func PhysicalCores() int {
	n := runtime.NumCPU()
	cores := map[string]bool{}
	var phys string
	procCPUInfo(func(k, v string) {
		switch k {
		case "physical id":
			phys = v
		case "core id":
			cores[phys+"/"+v] = true
		}
	})
	if len(cores) > 0 {
		n = min(n, len(cores))
	}
	return n
}

func (c cpuInfo) String() string {
	var isa []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.avx2, "AVX2"}, {c.fma, "FMA"}, {c.avx512, "AVX-512"}} {
		if f.on {
			isa = append(isa, f.name)
		}
	}
	s := fmt.Sprintf("cpu:      %s, %d cores, %s, clock ≈ %.2f GHz (measured)", c.name, c.cores, strings.Join(isa, " "), c.ghz)
	if c.flopsPerCycl > 0 {
		s += fmt.Sprintf("; FP32 peak ≈ %.0f GFLOP/s (%d FLOP/cycle/core: 2 FMA units)", c.peak(c.cores), c.flopsPerCycl)
	}
	return s
}

func (c cpuInfo) peak(threads int) float64 {
	return float64(min(threads, c.cores)) * c.ghz * float64(c.flopsPerCycl)
}

// ofPeak says what share of the peak of the cores in use a rate is.
func (c cpuInfo) ofPeak(gflops float64, threads int) string {
	if c.flopsPerCycl == 0 || c.ghz == 0 {
		return ""
	}
	return fmt.Sprintf(" (%.0f%% of the peak of %d cores)", 100*gflops/c.peak(threads), min(threads, c.cores))
}

// measureGHz times a chain of dependent integer additions, one cycle each
// on every current x86 and ARM core, and returns the best of many short
// tries (other processes only slow a try down). Tries of 2M cycles, under a
// millisecond, spread over half a second with pauses between them, so that
// some run undisturbed even on a busy machine.
func measureGHz() float64 {
	const n = 2_000_000
	best := time.Duration(1 << 62)
	for i := range 400 {
		if i%20 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		sink = addChain(n)
		best = min(best, time.Since(start))
	}
	return float64(n) / best.Seconds() / 1e9
}

var sink int

//go:noinline
func addChain(n int) int {
	x := 0
	for i := 0; i < n; i++ {
		x += i
	}
	return x
}

// BenchSegmentOptions configure BenchSegment.
type BenchSegmentOptions struct {
	Model BenchModel
	// Dims and Spacing are the synthetic CT's size (i, j, k) and voxel
	// size in mm.
	Dims    volume.Dims
	Spacing [3]float64
	// Modes are the segmentation modes to time (infer.ModeResize,
	// infer.ModeSliding).
	Modes []string
	// Infer are the segmentation options (sliding mode's spacing and
	// overlap); Mode is set per entry of Modes.
	Infer infer.Options
	// Threads of ONNX Runtime; 0 means one per physical core.
	Threads int
}

// BenchSegment writes a synthetic chest CT to a temporary folder and
// segments it as SegmentBatch does in each mode, printing to w where the
// time goes: read, preprocess, model, resample and write.
func BenchSegment(w io.Writer, o BenchSegmentOptions) error {
	if o.Threads <= 0 {
		o.Threads = PhysicalCores()
	}
	return benchSegment(w, o.Model, o.Dims, o.Spacing, o.Modes, o.Infer, o.Threads)
}

func benchSegment(w io.Writer, m BenchModel, d volume.Dims, sp [3]float64, modes []string, opts infer.Options, threads int) error {
	dir, err := os.MkdirTemp("", "covseg-bench-segment-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	ct, err := SyntheticCT(d, sp, 1)
	if err != nil {
		return fmt.Errorf("bench segment: %w", err)
	}
	in := filepath.Join(dir, "ct.nii.gz")
	if err := WriteInt16(in, ct); err != nil {
		return fmt.Errorf("bench segment: %w", err)
	}
	st, _ := os.Stat(in)
	fmt.Fprintf(w, "ct:       %s: %v voxels of %gx%gx%g mm, %.1f MB (made in %s)\n", in, d, sp[0], sp[1], sp[2],
		float64(st.Size())/1e6, time.Since(start).Round(100*time.Millisecond))
	ct = nil
	eng, err := m.open(w, threads)
	if err != nil {
		return fmt.Errorf("bench segment: %w", err)
	}
	defer eng.Close()
	fmt.Fprintf(w, "engine:   %s\n", eng.Name())
	for _, mode := range modes {
		o := opts
		o.Mode = strings.TrimSpace(mode)
		seg, err := infer.New(eng, o)
		if err != nil {
			return fmt.Errorf("bench segment: %w", err)
		}
		c := segCase{name: "ct", in: in, stem: filepath.Join(dir, "ct_"+o.Mode)}
		c.mask = c.stem + "_mask.nii.gz"
		start := time.Now()
		res, _, tm, err := segmentCase(seg, c, outputs{})
		if err != nil {
			return fmt.Errorf("bench segment: %s mode: %w", o.Mode, err)
		}
		total := time.Since(start)
		g := res.Grid
		fmt.Fprintf(w, "%-8s  total %6.2f s: read %.2f, preprocess %.2f, model %.2f (%d forward passes on %dx%dx%d patches, network grid %dx%dx%d), resample %.2f, write %.2f\n",
			o.Mode+":", total.Seconds(), tm.Read.Seconds(), tm.Preprocess.Seconds(), tm.Model.Seconds(), tm.Forwards,
			seg.Config().Preprocess.Grid[0], seg.Config().Preprocess.Grid[1], seg.Config().Preprocess.Grid[2],
			g[2], g[1], g[0], tm.Resample.Seconds(), tm.Write.Seconds())
	}
	return nil
}
