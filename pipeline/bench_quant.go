package pipeline

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/engine/quant"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/procstat"
)

// benchInt8 quantises the benchmark's network (calibrated on a corner of
// the input x: the timing does not depend on the ranges) and times it like the
// float32 run, printing its speed against fp32Median, PyTorch's float32
// torchMedian when above 0, and PyTorch's bfloat16 autocast, run here when
// torch names a Python with torch.
func benchInt8(w io.Writer, m BenchModel, x []float32, dhw [3]int, runs, threads int, gflop, fp32Median, torchMedian float64, torch, script string) error {
	c := quant.DetectCPU()
	fmt.Fprintf(w, "int8:     CPU %v; ONNX Runtime's int8 kernel: %s\n", c, c.Int8Kernel())
	dir, err := os.MkdirTemp("", "covseg-bench-int8-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, err := m.onnxPath(io.Discard, dir)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, "model.int8.onnx")
	start := time.Now()
	in := []quant.Input{benchCalibration(x, dhw)}
	if err := infer.QuantizeUnchecked(src, dst, in, quant.Calibration{Method: quant.MinMax, ORT: ort.Options{Threads: threads}}); err != nil {
		return fmt.Errorf("bench infer: %w (--precision int8 needs an ONNX --model or none)", err)
	}
	fmt.Fprintf(w, "          quantised (calibrated on the benchmark input) in %s\n", time.Since(start).Round(10*time.Millisecond))
	eng, err := infer.OpenEngine(dst, infer.EngineOptions{Threads: threads, Version: Version})
	if err != nil {
		return fmt.Errorf("bench infer: %w", err)
	}
	defer eng.Close()
	shape := [5]int{1, 1, dhw[0], dhw[1], dhw[2]}
	var walls, cpus []float64
	for i := range runs + 1 {
		c0 := procstat.CPUTime().Seconds()
		t0 := time.Now()
		if _, _, err := eng.Run(x, shape); err != nil {
			return fmt.Errorf("bench infer: int8: %w", err)
		}
		if i == 0 {
			continue // warm-up
		}
		walls = append(walls, time.Since(t0).Seconds())
		if c1 := procstat.CPUTime().Seconds(); c1 > 0 {
			cpus = append(cpus, c1-c0)
		}
	}
	med := median(walls)
	cpuRun := 0.0
	if len(cpus) > 0 {
		cpuRun = median(cpus)
	}
	fmt.Fprintf(w, "covseg:   %s: median %.2f s of %d runs %s → %.1f GOP/s (int8)\n", eng.Name(), med, runs, fmtTimes(walls), gflop/med)
	if cpuRun > 0 {
		fmt.Fprintf(w, "          CPU time %.2f s per run\n", cpuRun)
	}
	fmt.Fprintf(w, "ratio:    int8 is %.2fx faster than covseg float32 (%.2f s vs %.2f s)\n", fp32Median/med, med, fp32Median)
	if torchMedian > 0 {
		fmt.Fprintf(w, "          and %.2fx faster than PyTorch float32 (%.2f s)\n", torchMedian/med, torchMedian)
	}
	if torch == "" || torchMedian == 0 {
		return nil
	}
	bf, err := runTorch(torch, script, dhw, runs, threads, "--bf16")
	if err != nil {
		fmt.Fprintf(w, "pytorch:  bfloat16 autocast not run: %v\n", err)
		return nil
	}
	fmt.Fprintf(w, "pytorch:  %s, %d threads: median %.2f s, CPU time ≈ %.2f s per forward pass\n", bf.Engine, bf.Threads, bf.Median, bf.CPUPerRun)
	fmt.Fprintf(w, "ratio:    int8 is %.2fx faster than PyTorch bfloat16 autocast (%.2f s vs %.2f s)\n", bf.Median/med, med, bf.Median)
	if cpuRun > 0 && bf.CPUPerRun > 0 {
		fmt.Fprintf(w, "          and takes %.2fx its CPU time per forward pass (%.2f s vs ≈ %.2f s)\n", cpuRun/bf.CPUPerRun, cpuRun, bf.CPUPerRun)
	}
	return nil
}

// benchCalibration returns the corner of x (D×H×W) of at most 16×64×64
// voxels: calibrating on the whole input would hold every feature map of
// the full network at once (about 10 GB at 20x224x224) for ranges the timing
// does not depend on.
func benchCalibration(x []float32, dhw [3]int) quant.Input {
	d, h, w := min(dhw[0], 16), min(dhw[1], 64), min(dhw[2], 64)
	data := make([]float32, 0, d*h*w)
	for k := range d {
		for j := range h {
			row := (k*dhw[1] + j) * dhw[2]
			data = append(data, x[row:row+w]...)
		}
	}
	return quant.Input{Data: data, Shape: [5]int64{1, 1, int64(d), int64(h), int64(w)}}
}
