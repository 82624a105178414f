package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
// COVSEG_BENCH_SHAPE=DxHxW sets another input size. GOMLX_BACKEND picks
// the backend as covseg does (default: the CPU adapter; e.g.
// GOMLX_BACKEND=covcpu:im2col=0 for unblocked im2col).
//
// They report seconds per step, the peak Go heap during the timed steps
// and the process's peak RSS. For full width (the paper's network) they run
// tools/torch_train_bench.py with /usr/bin/python3 in the same run (same
// shape, steps and threads) and report covseg's time and memory over
// PyTorch's (x-torch, rss-x-torch).
var benchShape = [3]int{16, 64, 64}

func init() {
	if s := os.Getenv("COVSEG_BENCH_SHAPE"); s != "" {
		var d, h, w int
		if n, err := fmt.Sscanf(s, "%dx%dx%d", &d, &h, &w); n == 3 && err == nil && d > 0 && h > 0 && w > 0 {
			benchShape = [3]int{d, h, w}
		}
	}
}

func BenchmarkTrainStepFull(b *testing.B)   { benchTrainStep(b, 1) }
func BenchmarkTrainStepNarrow(b *testing.B) { benchTrainStep(b, 0.25) }

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
	for range b.N {
		if _, _, err := eng.Step(batch, 1e-3, 0.9); err != nil {
			b.Fatal(err)
		}
	}
	sec := time.Since(start).Seconds() / float64(b.N)
	b.StopTimer()
	heap := peak()
	rss := float64(procstat.PeakRSS()) / (1 << 20)
	b.ReportMetric(sec, "s/step")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
	b.ReportMetric(rss, "maxrss-MB")
	if width != 1 {
		return
	}
	ref, ok := torchTrainBench(b, max(2, b.N+1))
	if !ok {
		return
	}
	b.ReportMetric(sec/ref.StepMedianS, "x-torch")
	b.ReportMetric(rss/ref.PeakRSSMB, "rss-x-torch")
	b.Logf("PyTorch %s: %.2f s/step, peak RSS %.0f MB; covseg %.2f s/step (%.1fx), peak RSS %.0f MB (%.1fx)",
		ref.Engine, ref.StepMedianS, ref.PeakRSSMB, sec, sec/ref.StepMedianS, rss, rss/ref.PeakRSSMB)
}

// torchSummary is the summary line of tools/torch_train_bench.py.
type torchSummary struct {
	Engine      string  `json:"engine"`
	StepMedianS float64 `json:"step_median_s"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
}

// torchTrainBench runs tools/torch_train_bench.py on the CPU, if
// /usr/bin/python3 has torch.
func torchTrainBench(b *testing.B, steps int) (torchSummary, bool) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		b.Log("no /usr/bin/python3: no PyTorch reference")
		return torchSummary{}, false
	}
	script := filepath.Join(testutil.RepoRoot(b), "tools", "torch_train_bench.py")
	cmd := exec.Command("/usr/bin/python3", script, "--device", "cpu", "--steps", strconv.Itoa(steps),
		"--threads", strconv.Itoa(runtime.NumCPU()),
		"--shape", strconv.Itoa(benchShape[0]), strconv.Itoa(benchShape[1]), strconv.Itoa(benchShape[2]))
	out, err := cmd.Output()
	if err != nil {
		b.Logf("PyTorch reference failed (torch missing?): %v", err)
		return torchSummary{}, false
	}
	var s torchSummary
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var ev struct {
			Event string `json:"event"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "summary" {
			if err := json.Unmarshal(sc.Bytes(), &s); err == nil {
				return s, true
			}
		}
	}
	b.Logf("PyTorch reference printed no summary:\n%s", out)
	return torchSummary{}, false
}
