package model

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/internal/procstat"
	"github.com/covseg/covseg/internal/testutil"
)

// The benchmarks time the network at 1x1x16x64x64 on the CPU backend, full
// width and a narrow width (stem 16, width 0.25):
//
//	go test -run '^$' -bench . -benchtime 1x ./model
//
// They report seconds per pass, the peak Go heap during the passes (garbage
// not yet collected included) and the process's peak RSS, and, for full
// width when /usr/bin/python3 has torch,
// the same figures of ../shared/bench/torch_unet3d.py (forward) and
// tools/torch_train_step.py (forward + backward), run in the same process
// tree, as ratios (x-torch: covseg seconds / PyTorch seconds).
var benchShape = []int{1, 1, 16, 64, 64}

func BenchmarkForwardFull(b *testing.B)   { benchForward(b, 64) }
func BenchmarkForwardNarrow(b *testing.B) { benchForward(b, 16) }

// BenchmarkTrainStepFull peaks at about 5 GB on the CPU backend (its
// im2col is tiled) and takes minutes a step on two cores.
func BenchmarkTrainStepFull(b *testing.B)   { benchTrain(b, 64) }
func BenchmarkTrainStepNarrow(b *testing.B) { benchTrain(b, 16) }

func benchForward(b *testing.B, stem int) {
	cfg := narrow(stem)
	ctx, err := NewContext(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewRunner(testBackend(), ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	x := randomInput(1, benchShape...)
	if _, err := r.Run(x); err != nil { // compile
		b.Fatal(err)
	}
	runtime.GC() // leave earlier benchmarks' garbage out of the peak
	peak := procstat.StartPeakHeap()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := r.Run(x); err != nil {
			b.Fatal(err)
		}
	}
	sec := time.Since(start).Seconds() / float64(b.N)
	b.StopTimer()
	report(b, sec, peak())
	if stem == 64 {
		if ref, ok := torchForward(b); ok {
			b.ReportMetric(sec/ref, "x-torch")
			b.Logf("PyTorch forward %.3f s; covseg %.3f s = %.1fx", ref, sec, sec/ref)
		}
	}
}

func benchTrain(b *testing.B, stem int) {
	cfg := narrow(stem)
	ctx, err := NewContext(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	step := trainStepBench(b, ctx, cfg)
	x, labels := tinyProblem(benchShape...)
	if _, err := step.Exec(x, labels); err != nil { // compile
		b.Fatal(err)
	}
	runtime.GC() // leave earlier benchmarks' garbage out of the peak
	peak := procstat.StartPeakHeap()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := step.Exec(x, labels); err != nil {
			b.Fatal(err)
		}
	}
	sec := time.Since(start).Seconds() / float64(b.N)
	b.StopTimer()
	report(b, sec, peak())
	if stem == 64 {
		if ref, ok := torchTrain(b); ok {
			b.ReportMetric(sec/ref, "x-torch")
			b.Logf("PyTorch train step %.3f s; covseg %.3f s = %.1fx", ref, sec, sec/ref)
		}
	}
}

func report(b *testing.B, sec float64, peakHeap uint64) {
	b.ReportMetric(sec, "s/pass")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MB")
	if rss := procstat.PeakRSS(); rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "maxrss-MB")
	}
}

// python runs a PyTorch reference script with /usr/bin/python3, if there.
func python(b *testing.B, script string, args ...string) (map[string]any, bool) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		b.Logf("no /usr/bin/python3: no PyTorch reference")
		return nil, false
	}
	threads := strconv.Itoa(runtime.NumCPU())
	cmd := exec.Command("/usr/bin/python3", append([]string{script, "--threads", threads}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		b.Logf("PyTorch reference %s failed (torch missing?): %v", script, err)
		return nil, false
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		b.Logf("PyTorch reference %s: %v", script, err)
		return nil, false
	}
	b.Logf("PyTorch reference: %s", out)
	return res, true
}

func shapeArgs() []string {
	return []string{"--shape", fmt.Sprint(benchShape[2]), fmt.Sprint(benchShape[3]), fmt.Sprint(benchShape[4])}
}

func torchForward(b *testing.B) (float64, bool) {
	root := testutil.RepoRoot(b)
	res, ok := python(b, filepath.Join(root, "..", "shared", "bench", "torch_unet3d.py"), shapeArgs()...)
	if !ok {
		return 0, false
	}
	s, ok := res["median_s"].(float64)
	return s, ok
}

func torchTrain(b *testing.B) (float64, bool) {
	root := testutil.RepoRoot(b)
	res, ok := python(b, filepath.Join(root, "tools", "torch_train_step.py"), shapeArgs()...)
	if !ok {
		return 0, false
	}
	s, ok := res["train_step_median_s"].(float64)
	return s, ok
}

// trainStepBench is the forward + loss + backward of one training step
// (the gradients are computed and returned, no optimiser update), like
// tools/torch_train_step.py.
func trainStepBench(b *testing.B, ctx *context.Context, cfg Config) *context.Exec {
	e, err := context.NewExec(testBackend(), ctx, func(ctx *context.Context, x, labels *graph.Node) []*graph.Node {
		ctx.SetTraining(x.Graph(), true)
		loss := crossEntropy(Forward(ctx, cfg, x, Options{}), labels, cfg.Classes)
		return append([]*graph.Node{loss}, ctx.BuildTrainableVariablesGradientsGraph(loss)...)
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}
