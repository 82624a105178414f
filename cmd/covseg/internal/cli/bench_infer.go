package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/volume"
)

// benchModelFlags adds the flags that choose a benchmark's network.
func benchModelFlags(cmd *cobra.Command, b *pipeline.BenchModel) {
	cmd.Flags().StringVar(&b.Path, "model", "", "ONNX or model file to run (default: the paper's network with random weights)")
	cmd.Flags().Float64Var(&b.Width, "width", 1, "width of the random network (1 = the paper's)")
	cmd.Flags().Uint64Var(&b.Seed, "seed", 1, "seed of the random weights")
}

func newBenchInferCmd() *cobra.Command {
	var (
		m       pipeline.BenchModel
		shape   string
		runs    int
		threads int
		torch   string
		script  string
		prec    string
	)
	cmd := &cobra.Command{
		Use:   "infer",
		Short: "Time the network's forward pass in ONNX Runtime, in GFLOP/s, and against PyTorch",
		Long: `Run the paper's network (full width, random weights, exported to ONNX in a
temporary folder) through ONNX Runtime on a 1x1xDxHxW input: one warm-up run,
then --runs timed runs. Prints the median seconds, GFLOP/s against the
convolutions' FLOPs counted from the architecture (2 per multiply-add, as
torch_unet3d.py counts them), and the CPU's estimated FP32 peak.

When /usr/bin/python3 has torch, ../shared/bench/torch_unet3d.py (beside the
repository; --torch-script to point elsewhere) runs the same network, shape
and thread count as a child process, and the ratio of the two medians is
printed. The machine's load affects both; run it on a quiet machine.

--precision int8 (or both) then quantises the network (covseg model
quantize's QDQ rewrite, calibrated on a corner of the input: the timing does
not depend on the ranges), times the int8 model the same way and, with
torch, PyTorch's bfloat16 autocast (torch_unet3d.py --bf16), and prints the
CPU's int8 features and the kernel ONNX Runtime picks for them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dhw, err := parseShape(shape)
			if err != nil {
				return fmt.Errorf("bench infer: --shape: %w", err)
			}
			return pipeline.BenchInfer(cmd.OutOrStdout(), pipeline.BenchInferOptions{
				Model: m, Shape: dhw, Runs: runs, Threads: threads, Python: torch, Script: script, Precision: prec,
			})
		},
	}
	benchModelFlags(cmd, &m)
	f := cmd.Flags()
	f.StringVar(&shape, "shape", "20,224,224", "input D,H,W")
	f.IntVar(&runs, "runs", 3, "timed runs (after one warm-up run)")
	f.IntVar(&threads, "threads", 0, "ONNX Runtime and PyTorch threads (default: one per physical core)")
	f.StringVar(&torch, "torch", "/usr/bin/python3", "Python with torch for the reference run; empty to skip it")
	f.StringVar(&script, "torch-script", "", "torch_unet3d.py (default: ../shared/bench/ beside the repository)")
	f.StringVar(&prec, "precision", pipeline.PrecisionFloat32, "float32, or int8/both to also time the int8 (QDQ) model, with PyTorch's bfloat16 autocast beside it")
	return cmd
}

func newBenchSegmentCmd() *cobra.Command {
	var (
		m                      pipeline.BenchModel
		dims, ctSpacing, modes string
		spacing                string
		threads                int
		overlap                float64
	)
	cmd := &cobra.Command{
		Use:   "segment",
		Short: "Time whole segmentations of a synthetic CT, step by step, in both modes",
		Long: `Write a synthetic chest CT (512x512x255 voxels of 0.7x0.7x1.25 mm by
default: body, fat, lungs with ground-glass blobs, spine; int16 NIfTI, gzip) to a
temporary folder and segment it as "covseg segment" does, with the paper's
network (random weights) through ONNX Runtime, in each mode: resize (the whole
volume to 20x224x224) and sliding (patches of 20x224x224 at --spacing, default
5x1.6x1.6 mm, overlap 0.5). Prints where the time goes: read, preprocess
(reorientation, window, resize or resampling), model (forward passes, softmax,
blending), resample (probabilities back to the CT's grid, argmax) and write.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := parseShape(dims)
			if err != nil {
				return fmt.Errorf("bench segment: --dims: %w", err)
			}
			var sp, target [3]float64
			if err := parseFloats(ctSpacing, 3, func(v []float64) { copy(sp[:], v) }); err != nil {
				return fmt.Errorf("bench segment: --ct-spacing: %w", err)
			}
			if err := parseFloats(spacing, 3, func(v []float64) { copy(target[:], v) }); err != nil {
				return fmt.Errorf("bench segment: --spacing: %w", err)
			}
			opts := infer.DefaultOptions()
			opts.Spacing, opts.Overlap = target, overlap
			return pipeline.BenchSegment(cmd.OutOrStdout(), pipeline.BenchSegmentOptions{
				Model: m, Dims: volume.Dims(d), Spacing: sp, Modes: strings.Split(modes, ","), Infer: opts, Threads: threads,
			})
		},
	}
	benchModelFlags(cmd, &m)
	f := cmd.Flags()
	f.StringVar(&dims, "dims", "512,512,255", "CT size i,j,k (columns, rows, slices)")
	f.StringVar(&ctSpacing, "ct-spacing", "0.7,0.7,1.25", "CT voxel size i,j,k in mm")
	f.StringVar(&modes, "modes", "resize,sliding", "modes to time, comma-separated")
	f.StringVar(&spacing, "spacing", "5,1.6,1.6", "target spacing D,H,W in mm for sliding mode")
	f.Float64Var(&overlap, "overlap", infer.DefaultOverlap, "patch overlap in sliding mode")
	f.IntVar(&threads, "threads", 0, "ONNX Runtime threads (default: one per physical core)")
	return cmd
}
