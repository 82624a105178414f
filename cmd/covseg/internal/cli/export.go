package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/infer"
)

// newModelExportCmd is "covseg model export MODEL.ckpt -o MODEL.onnx".
func newModelExportCmd() *cobra.Command {
	var (
		out    string
		keepBN bool
	)
	cmd := &cobra.Command{
		Use:   "export MODEL.ckpt -o MODEL.onnx",
		Short: "Export a model to ONNX (opset 17) for ONNX Runtime and other ONNX engines",
		Long: `Export the network of a model file, weights included, as an ONNX model:
opset 17 (IR version 8), input "image" [batch, channels, depth, height, width]
and output "logits" [batch, classes, depth, height, width] with the batch and
spatial axes dynamic. BatchNorms that follow a convolution are folded into it.
The model's configuration, preprocessing and class names are stored in the
file's metadata_props, so "covseg segment" needs nothing else.

scripts/check-onnx MODEL.onnx runs the ONNX checker on the result.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("model export: -o MODEL.onnx is required")
			}
			if err := guardOutputs([]string{out}, args); err != nil {
				return fmt.Errorf("model export: %w", err)
			}
			cfg, err := infer.ExportCheckpoint(args[0], out, Version, onnx.Options{KeepBatchNorm: keepBN})
			if err != nil {
				return fmt.Errorf("model export: %w", err)
			}
			var size int64
			if st, err := os.Stat(out); err == nil {
				size = st.Size()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: ONNX opset %d, %.1f MB, %s\n",
				out, onnx.Opset, float64(size)/1e6, cfg)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "ONNX file to write")
	f.BoolVar(&keepBN, "keep-batchnorm", false, "keep BatchNormalization nodes instead of folding them into the convolutions")
	return cmd
}
