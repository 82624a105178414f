package train

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/covseg/covseg/engine/covcpu"
	"github.com/covseg/covseg/internal/procstat"
	"github.com/covseg/covseg/internal/testutil"
)

// The benchmarks time the recipe's training step (forward, loss, backward,
// AdamW update) at 1x1x16x64x64 on covseg's CPU backend:
//
//	go test -run '^$' -bench TrainStep -benchtime 1x -timeout 2h ./train
//
// COVSEG_BENCH_SHAPE=DxHxW sets another input size and
// COVSEG_BENCH_WIDTH=W another width for TrainStepNarrow (default 0.25;
// 0.125 is the realistic demo's network). GOMLX_BACKEND picks
// the backend as covseg does (default: the CPU adapter; e.g.
// GOMLX_BACKEND=covcpu:im2col=0 for unblocked im2col).
//
// They report seconds per step, the peak Go heap during the timed steps
// and the process's peak RSS. For full width (the paper's network) they run
// tools/torch_train_bench.py with /usr/bin/python3 in the same run (same
// shape, steps and threads) and report covseg's time and memory over
// PyTorch's (x-torch, rss-x-torch).
var benchShape = [3]int{16, 64, 64}

// narrowWidth is TrainStepNarrow's width multiplier.
var narrowWidth = 0.25

func init() {
	if s := os.Getenv("COVSEG_BENCH_SHAPE"); s != "" {
		var d, h, w int
		if n, err := fmt.Sscanf(s, "%dx%dx%d", &d, &h, &w); n == 3 && err == nil && d > 0 && h > 0 && w > 0 {
			benchShape = [3]int{d, h, w}
		}
	}
	if s := os.Getenv("COVSEG_BENCH_WIDTH"); s != "" {
		if w, err := strconv.ParseFloat(s, 64); err == nil && w > 0 && w <= 1 {
			narrowWidth = w
		}
	}
}

func BenchmarkTrainStepFull(b *testing.B)   { benchTrainStep(b, 1) }
func BenchmarkTrainStepNarrow(b *testing.B) { benchTrainStep(b, narrowWidth) }

func benchTrainStep(b *testing.B, width float64) {
	cfg := DefaultConfig()
	cfg.Data.Preprocess.Grid = benchShape
	cfg.Model.Width = width
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		b.Fatal(err)
	}
	be, err := covcpu.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("backend %s (%s)", be.String(), be.Description())
	eng, err := NewEngine(be, ctx, mcfg, cfg)
	if err != nil {
		b.Fatal(err)
	}
	eng.SetPhase(1) // unfrozen: every parameter trains
	batch := benchBatch(benchShape)
	start := time.Now()
	if _, _, err := eng.Step(batch, 1e-3, 0.9); err != nil { // compiles
		b.Fatal(err)
	}
	b.Logf("first step (compilation included) %.2f s", time.Since(start).Seconds())
	peak := procstat.StartPeakHeap()
	b.ResetTimer()
	start = time.Now()
	cpu := procstat.CPUTime().Seconds()
	for range b.N {
		if _, _, err := eng.Step(batch, 1e-3, 0.9); err != nil {
			b.Fatal(err)
		}
	}
	sec := time.Since(start).Seconds() / float64(b.N)
	cpuSec := (procstat.CPUTime().Seconds() - cpu) / float64(b.N)
	b.StopTimer()
	heap := peak()
	rss := float64(procstat.PeakRSS()) / (1 << 20)
	b.ReportMetric(sec, "s/step")
	b.ReportMetric(cpuSec, "cpu-s/step")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
	b.ReportMetric(rss, "maxrss-MB")
	if width != 1 {
		return
	}
	script := filepath.Join(testutil.RepoRoot(b), "tools", "torch_train_bench.py")
	ref, err := TorchBench("/usr/bin/python3", script, benchShape, max(2, b.N+1), runtime.NumCPU())
	if err != nil {
		b.Logf("no PyTorch reference: %v", err)
		return
	}
	b.ReportMetric(sec/ref.StepMedianS, "x-torch")
	b.ReportMetric(cpuSec/ref.StepCPUMedianS, "cpu-x-torch")
	b.ReportMetric(rss/ref.PeakRSSMB, "rss-x-torch")
	b.Logf("PyTorch %s (%d threads): %.2f s/step (%.2f CPU s), peak RSS %.0f MB; covseg %.2f s/step (%.2fx), %.2f CPU s (%.2fx), peak RSS %.0f MB (%.2fx)",
		ref.Engine, ref.Threads, ref.StepMedianS, ref.StepCPUMedianS, ref.PeakRSSMB, sec, sec/ref.StepMedianS,
		cpuSec, cpuSec/ref.StepCPUMedianS, rss, rss/ref.PeakRSSMB)
}
