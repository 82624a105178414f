package cli

import (
	"fmt"
	"io"

	"github.com/covseg/covseg/pipeline"
	"github.com/spf13/cobra"
)

const evaluateLong = `Compare predicted masks with reference ("truth") masks, case by case, and
summarise: Dice, IoU, sensitivity, precision, HD95 and HD (mm), normalised
surface Dice (NSD) at one or more tolerances, truth and predicted volume (ml)
and their difference (pred − truth).

Inputs (NIfTI, .nii or .nii.gz):
  --pred FILE --truth FILE     one case, named after the truth file
  --pred DIR  --truth DIR      the NIfTI files of both folders (not their
                               subfolders), paired by case name: the file
                               name without .nii/.nii.gz and without one
                               trailing suffix _mask, _seg, _segmentation,
                               _pred, _prediction, _label, _labels, _gt or
                               _truth (also after "-" or "."; any letter
                               case). So study_0255_mask.nii.gz (truth) pairs
                               with study_0255.nii.gz or study_0255_pred.nii
                               (prediction). A file without a partner, or two
                               files with one name in a folder, is a failed
                               case.
  --manifest CSV               rows pred,truth[,case]; a header row naming
                               the columns (pred, truth, case; any order) is
                               optional; relative paths are relative to the
                               manifest's folder; lines starting with # are
                               comments.

Masks: a voxel is foreground when its value is > 0 (so probability maps and
multi-class maps are read as binary masks), or, with --label N, when it
equals N. The grids must match: the same dims and affines equal within
0.001 mm; otherwise the case fails, unless --resample-to-truth resamples the
prediction onto the truth's grid (nearest neighbour, through world
coordinates, after the mask is read; outside the prediction's field of view
is background).
Voxel spacing and volume come from the truth's affine.

Definitions (those of shared/tools/metrics_ref.py; see the metrics package
documentation): surface = mask voxels with a face neighbour outside the mask
(outside the array counts as outside); distances are Euclidean in mm between
voxel centres, from an exact distance transform; HD95 = max of the two
directed 95th percentiles (linear interpolation, numpy's default); HD = max
of the two directed maxima; NSD(τ) = share of both surfaces within τ mm of
the other. Both masks empty: Dice = IoU = NSD = sensitivity = precision = 1,
HD95 = HD = 0. Exactly one empty: Dice = IoU = NSD = 0, HD95 and HD
undefined; sensitivity (empty truth) or precision (empty prediction)
undefined. Undefined figures are null in JSON, empty in CSV, "n/a" in tables.

Summary: per-case mean ± sample SD (n − 1) and median of every figure over
the cases where it is defined, pooled (micro) Dice 2·Σ|P∩T| / Σ(|P|+|T|),
and the counts of empty truths and predictions.

Outputs: a table on standard output (or, with --json, one JSON object with
"cases" and "summary" and nothing else), --csv FILE (one row per case) and
--markdown FILE (cases and summary). Cases are evaluated in parallel; a case
that fails (missing or unreadable file, mismatched grid) is reported with its
error and the others are still evaluated. The exit status is 0 when every
case was evaluated and 1 otherwise (or on a usage error).

JSON keys per case (those of covseg reproduce and demo too): case, pred,
truth, error, dice, iou, sensitivity, precision, hd95_mm, hd_mm, one
nsd_<τ>mm per tolerance (nsd_1mm), truth_ml, pred_ml, volume_diff_ml
(pred − truth), truth_voxels, pred_voxels; the summary has the same keys.`

// evalOptions holds the flags of covseg evaluate.
type evalOptions struct {
	pred, truth, manifest string
	taus                  []float64
	label                 int
	resample              bool
	csv, markdown         string
	json, quiet           bool
	jobs                  int
}

// newEvaluateCmd builds `covseg evaluate`.
func newEvaluateCmd() *cobra.Command {
	var o evalOptions
	cmd := &cobra.Command{
		Use:   "evaluate (--pred P --truth T | --manifest CSV)",
		Short: "Compare predicted and reference masks: Dice, IoU, HD95, HD, NSD, volumes",
		Long:  evaluateLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := guardOutputs([]string{o.csv, o.markdown}, []string{o.pred, o.truth, o.manifest}); err != nil {
				return fmt.Errorf("evaluate: %w", err)
			}
			return runEvaluate(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.pred, "pred", "", "predicted mask file, or folder of them")
	f.StringVar(&o.truth, "truth", "", "reference mask file, or folder of them")
	f.StringVar(&o.manifest, "manifest", "", "CSV file with rows pred,truth[,case] (instead of --pred/--truth)")
	f.Float64SliceVar(&o.taus, "tau", []float64{1}, "NSD tolerance in mm (repeat or comma-separate for several; JSON keys nsd_<tau>mm)")
	f.IntVar(&o.label, "label", 0, "evaluate only voxels equal to this class (0: every voxel > 0)")
	f.BoolVar(&o.resample, "resample-to-truth", false, "resample predictions onto the truth's grid (nearest) when the grids differ")
	f.StringVar(&o.csv, "csv", "", "write one CSV row per case to this file")
	f.StringVar(&o.markdown, "markdown", "", "write the cases and summary as Markdown to this file")
	f.BoolVar(&o.json, "json", false, "print a JSON object with cases and summary to standard output instead of the table")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on standard error")
	f.IntVar(&o.jobs, "jobs", 0, "cases evaluated at once (0: min(CPUs, 4))")
	return cmd
}

func runEvaluate(o evalOptions, stdout, stderr io.Writer) error {
	opts := pipeline.EvaluateOptions{
		Pred: o.pred, Truth: o.truth, Manifest: o.manifest, Taus: o.taus, Label: o.label,
		ResampleToTruth: o.resample, CSV: o.csv, Markdown: o.markdown, Jobs: o.jobs, Progress: stderr,
	}
	if o.quiet {
		opts.Progress = nil
	}
	rep, err := pipeline.Evaluate(opts)
	if err != nil {
		return err
	}
	if o.json {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		return fmt.Errorf("evaluate: writing the results: %w", err)
	}
	return rep.Err()
}
