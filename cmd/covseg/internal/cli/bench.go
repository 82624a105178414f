package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/train"
)

// newBenchCmd groups the benchmarks.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure covseg's speed and memory on this machine: training steps, the network alone (against PyTorch), whole segmentations",
	}
	cmd.AddCommand(newBenchTrainCmd(), newBenchInferCmd(), newBenchSegmentCmd())
	return cmd
}

type benchTrainArgs struct {
	shape, dtype, backend string
	torch, python         string
	steps                 int
	width                 float64
	preallocate           bool
}

func newBenchTrainCmd() *cobra.Command {
	var a benchTrainArgs
	cmd := &cobra.Command{
		Use:   "train [--shape DxHxW] [--steps N] [--dtype f32|bf16] [--width W]",
		Short: "Time training steps of the network on random data",
		Long: `Build the network (full width by default), then run N training steps (forward,
the recipe's loss, backward, AdamW) on one random 1x1xDxHxW case with the
backend GOMLX_BACKEND names (covseg's CPU backend when unset), e.g.
GOMLX_BACKEND=xla:/abs/path/pjrt_c_api_cuda_plugin.so.

Prints JSON lines: a "start" line, one "step" line per step and a "summary"
line with the first step's time (compilation included) and the median, mean
and minimum of the others, the parameter count and the peak resident memory.
Device memory is not reported by GoMLX's backends ("peak_device_mb": null):
on a GPU, sample nvidia-smi (scripts/gpu-bench.sh does). With an XLA CUDA
backend, XLA's preallocation of 75 % of the GPU is switched off unless
--preallocate, so that the memory nvidia-smi shows is what the steps use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchTrain(a, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.shape, "shape", "20x224x224", "input D, H, W as DxHxW (or D,H,W)")
	f.IntVar(&a.steps, "steps", 10, "training steps, the first of which compiles")
	f.StringVar(&a.dtype, "dtype", "f32", "compute dtype: f32 or bf16 (bf16 needs an XLA backend)")
	f.Float64Var(&a.width, "width", 1, "width multiplier (1: the paper's network)")
	f.StringVar(&a.backend, "backend", "", "GoMLX backend config (default GOMLX_BACKEND, else covseg's CPU backend)")
	f.BoolVar(&a.preallocate, "preallocate", false, "let XLA on CUDA preallocate most of the GPU's memory, as it does by default")
	f.StringVar(&a.torch, "torch", "", "also time PyTorch's step with this script (tools/torch_train_bench.py) on the CPU, same shape, steps and cores, and print the ratios (a \"compare\" line)")
	f.StringVar(&a.python, "python", "/usr/bin/python3", "Python with torch, for --torch")
	return cmd
}

func runBenchTrain(a benchTrainArgs, stdout io.Writer) error {
	shape, err := parseShape(a.shape)
	if err != nil {
		return fmt.Errorf("bench train: %w", err)
	}
	dtype := map[string]string{"f32": train.DTypeFloat32, "float32": train.DTypeFloat32, "bf16": train.DTypeBFloat16, "bfloat16": train.DTypeBFloat16}[strings.ToLower(a.dtype)]
	if dtype == "" {
		return fmt.Errorf("bench train: --dtype %q, want f32 or bf16", a.dtype)
	}
	backend, note, err := benchBackend(a.backend, a.preallocate)
	if err != nil {
		return fmt.Errorf("bench train: %w", err)
	}
	enc := json.NewEncoder(stdout)
	var encErr error
	emit := func(v any) {
		if err := enc.Encode(v); err != nil && encErr == nil {
			encErr = err
		}
	}
	emit(map[string]any{"event": "start", "backend": backend.String(), "description": backend.Description(),
		"backend_options": note, "dtype": dtype, "shape": []int{1, 1, shape[0], shape[1], shape[2]}, "width": a.width, "steps": a.steps})
	sum, err := train.Bench(train.BenchOptions{Shape: shape, Steps: a.steps, DType: dtype, Width: a.width, Backend: backend}, emit)
	if err != nil {
		return fmt.Errorf("bench train: %w", err)
	}
	if a.torch != "" {
		ref, err := train.TorchBench(a.python, a.torch, shape, a.steps, runtime.NumCPU())
		if err != nil {
			return fmt.Errorf("bench train: %w", err)
		}
		emit(train.Compare(sum, ref))
	}
	return encErr
}
