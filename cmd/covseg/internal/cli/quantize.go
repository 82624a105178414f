package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/engine/quant"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/volume/volio"
)

type quantizeFlags struct {
	out                 string
	calibrate, heldOut  []string
	method              string
	percentile, minDice float64
	force, json         bool
	threads             int
}

func newModelQuantizeCmd() *cobra.Command {
	var f quantizeFlags
	cmd := &cobra.Command{
		Use:   "quantize MODEL.onnx --calibrate CT... --held-out CT... -o MODEL.int8.onnx",
		Short: "Make an int8 model (QDQ) calibrated on CTs, checked against float32 on held-out CTs",
		Long: `Quantise an exported float32 ONNX model to int8 in the QDQ format that
ONNX Runtime's CPU provider runs with integer kernels (QLinearConv; VNNI where
the CPU has it, AVX2 otherwise).

Weights are int8, symmetric, per output channel; activations uint8 per
tensor, their ranges calibrated on the --calibrate CTs (NIfTI files or DICOM
folders) through covseg's own preprocessing, by min-max or a percentile;
biases int32. The calibration is recorded in the model's metadata
(covseg.precision, covseg.quantization), and "covseg segment" runs the file
as it is.

Then every --held-out CT (not used for calibration) is segmented with both
models and the per-case Dice between the float32 and int8 foreground masks,
the largest probability difference and the foreground volumes are printed.
The model is written only if every case reaches --min-dice, unless --force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQuantize(args[0], f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "output", "o", "", "the int8 model to write (required)")
	fl.StringSliceVar(&f.calibrate, "calibrate", nil, "calibration CTs (NIfTI files or DICOM folders; repeat or comma-separate)")
	fl.StringSliceVar(&f.heldOut, "held-out", nil, "CTs to measure the float32/int8 agreement on (not calibration CTs)")
	fl.StringVar(&f.method, "method", quant.MinMax, "range calibration: minmax or percentile")
	fl.Float64Var(&f.percentile, "percentile", 99.999, "with --method percentile: the percentile kept")
	fl.Float64Var(&f.minDice, "min-dice", infer.DefaultMinDice, "least float32/int8 mask Dice on every held-out CT")
	fl.BoolVar(&f.force, "force", false, "write the model even below --min-dice")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime threads (default: one per core)")
	return cmd
}

func runQuantize(src string, f quantizeFlags, stdout, stderr io.Writer) error {
	if f.out == "" {
		return fmt.Errorf("model quantize: -o MODEL.int8.onnx is required")
	}
	if !(f.minDice > 0 && f.minDice <= 1) {
		return fmt.Errorf("model quantize: --min-dice %v: want more than 0 and at most 1", f.minDice)
	}
	if len(f.calibrate) == 0 || len(f.heldOut) == 0 {
		return fmt.Errorf("model quantize: give --calibrate and --held-out CTs")
	}
	read := func(paths []string) ([]infer.NamedVolume, error) {
		var vs []infer.NamedVolume
		for _, p := range paths {
			v, _, err := volio.Read(p, volio.Options{})
			if err != nil {
				return nil, fmt.Errorf("model quantize: %w", err)
			}
			vs = append(vs, infer.NamedVolume{Name: volio.CaseName(p), V: v})
		}
		return vs, nil
	}
	calib, err := read(f.calibrate)
	if err != nil {
		return err
	}
	held, err := read(f.heldOut)
	if err != nil {
		return err
	}
	threads := f.threads
	if threads <= 0 {
		threads = pipeline.PhysicalCores()
	}
	c := quant.DetectCPU()
	fmt.Fprintf(stderr, "CPU %v; ONNX Runtime's int8 kernel: %s\n", c, c.Int8Kernel())
	rep, err := infer.QuantizeModel(src, f.out, calib, held, infer.QuantizeOptions{
		Calibration: quant.Calibration{Method: f.method, Percentile: f.percentile},
		MinDice:     f.minDice, Force: f.force,
		Engine:  infer.EngineOptions{Threads: threads, Version: Version},
		Segment: infer.DefaultOptions(),
		Log:     func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) },
	})
	if rep != nil {
		if f.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printQuantizeReport(stdout, rep, f.out)
		}
	}
	return err
}

func printQuantizeReport(w io.Writer, rep *infer.QuantizeReport, out string) {
	fmt.Fprintf(w, "calibration: %s on %d CTs, %d activations quantised\n", rep.Method, len(rep.Calibration), rep.Activations)
	fmt.Fprintf(w, "%-24s %8s %10s %12s %12s\n", "held-out case", "Dice", "max|dp|", "float32 ml", "int8 ml")
	for _, c := range rep.Cases {
		fmt.Fprintf(w, "%-24s %8.4f %10.4f %12.2f %12.2f\n", c.Name, c.Dice, c.MaxProbDiff, c.Float32ML, c.Int8ML)
	}
	if rep.Written {
		fmt.Fprintf(w, "wrote %s\n", out)
	}
}
