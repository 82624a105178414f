package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/internal/progress"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
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
case was evaluated and 1 otherwise (or on a usage error).`

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
	f.Float64SliceVar(&o.taus, "tau", []float64{1}, "NSD tolerance in mm (repeat or comma-separate for several; the first is the JSON's \"nsd\")")
	f.IntVar(&o.label, "label", 0, "evaluate only voxels equal to this class (0: every voxel > 0)")
	f.BoolVar(&o.resample, "resample-to-truth", false, "resample predictions onto the truth's grid (nearest) when the grids differ")
	f.StringVar(&o.csv, "csv", "", "write one CSV row per case to this file")
	f.StringVar(&o.markdown, "markdown", "", "write the cases and summary as Markdown to this file")
	f.BoolVar(&o.json, "json", false, "print a JSON object with cases and summary to standard output instead of the table")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on standard error")
	f.IntVar(&o.jobs, "jobs", 0, "cases evaluated at once (0: min(CPUs, 4))")
	return cmd
}

// evalCase is one pair to compare; pairErr is set when pairing failed.
type evalCase struct {
	name, pred, truth string
	pairErr           error
}

// caseResult is the outcome of one case.
type caseResult struct {
	evalCase
	res *metrics.Result
	err error
}

func runEvaluate(o evalOptions, stdout, stderr io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	o.taus = uniqueTaus(o.taus)
	cases, err := o.cases()
	if err != nil {
		return err
	}
	results := evaluateCases(cases, o, stderr)
	rep := newReport(results, o)
	if o.csv != "" {
		if err := writeFile(o.csv, rep.writeCSV); err != nil {
			return err
		}
	}
	if o.markdown != "" {
		if err := writeFile(o.markdown, rep.writeMarkdown); err != nil {
			return err
		}
	}
	if o.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		return fmt.Errorf("evaluate: writing the results: %w", err)
	}
	if n := rep.failed(); n > 0 {
		return fmt.Errorf("evaluate: %d of %d cases failed", n, len(results))
	}
	return nil
}

// check rejects contradictory or absurd flags before any file is read.
func (o evalOptions) check() error {
	switch {
	case o.manifest != "" && (o.pred != "" || o.truth != ""):
		return errors.New("evaluate: give either --manifest or --pred and --truth, not both")
	case o.manifest == "" && (o.pred == "" || o.truth == ""):
		return errors.New("evaluate: need --pred and --truth (files or folders), or --manifest")
	case o.label < 0 || o.label > 255:
		return fmt.Errorf("evaluate: --label %d is outside 0..255", o.label)
	case len(o.taus) == 0:
		return errors.New("evaluate: need at least one --tau")
	case o.jobs < 0:
		return fmt.Errorf("evaluate: --jobs %d is negative", o.jobs)
	}
	for _, t := range o.taus {
		if !(t >= 0) || t > 1e6 {
			return fmt.Errorf("evaluate: --tau %g is not a tolerance in mm ≥ 0", t)
		}
	}
	return nil
}

// uniqueTaus returns taus without repeats, in their first order.
func uniqueTaus(taus []float64) []float64 {
	var out []float64
	for _, t := range taus {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// cases lists the pairs to compare from the manifest or --pred/--truth.
func (o evalOptions) cases() ([]evalCase, error) {
	if o.manifest != "" {
		return readManifest(o.manifest)
	}
	pi, perr := os.Stat(o.pred)
	ti, terr := os.Stat(o.truth)
	pdir, tdir := perr == nil && pi.IsDir(), terr == nil && ti.IsDir()
	switch {
	case pdir && tdir:
		return pairFolders(o.pred, o.truth)
	case pdir || tdir:
		if perr != nil {
			return nil, fmt.Errorf("evaluate: --pred %w", perr)
		}
		if terr != nil {
			return nil, fmt.Errorf("evaluate: --truth %w", terr)
		}
		return nil, fmt.Errorf("evaluate: --pred %s and --truth %s must both be files or both be folders", o.pred, o.truth)
	}
	// Two files (a missing one fails as its case, with the reader's message).
	return []evalCase{{name: caseName(o.truth), pred: o.pred, truth: o.truth}}, nil
}

// evaluateCases compares every case, several at once, with a progress bar
// on stderr unless quiet.
func evaluateCases(cases []evalCase, o evalOptions, stderr io.Writer) []caseResult {
	var bar *progress.Bar
	if !o.quiet {
		bar = progress.New(stderr, "evaluate", len(cases))
	}
	load := func(i int) (*volume.Label, *volume.Label, error) { return loadCase(cases[i], o) }
	done := func(int, *metrics.Result, error) { bar.Add(1) } // Bar is safe for concurrent use
	res, errs := metrics.CompareAll(len(cases), o.jobs, metrics.Options{Taus: o.taus}, load, done)
	bar.Finish()
	out := make([]caseResult, len(cases))
	for i, c := range cases {
		out[i] = caseResult{evalCase: c, res: res[i], err: errs[i]}
	}
	return out
}

// loadCase reads a case's masks as binary label maps on one grid.
func loadCase(c evalCase, o evalOptions) (truth, pred *volume.Label, err error) {
	if c.pairErr != nil {
		return nil, nil, c.pairErr
	}
	if truth, err = readMask(c.truth, o.label); err != nil {
		return nil, nil, fmt.Errorf("truth: %w", err)
	}
	if pred, err = readMask(c.pred, o.label); err != nil {
		return nil, nil, fmt.Errorf("prediction: %w", err)
	}
	if err := metrics.CheckGrid(truth, pred); err != nil {
		if !o.resample {
			return nil, nil, fmt.Errorf("%s and %s: %w (use --resample-to-truth to resample the prediction)", c.pred, c.truth, err)
		}
		if pred, err = pred.ResampleToGrid(truth.Dims, truth.Affine, 0); err != nil {
			return nil, nil, fmt.Errorf("prediction %s: resampling to the truth's grid: %w", c.pred, err)
		}
	}
	return truth, pred, nil
}

// readMask reads a NIfTI file as a binary mask (1 where the voxel is > 0,
// or equals label when label > 0). It reads the scaled voxel values, so any
// data type works, NaN counts as background.
func readMask(path string, label int) (*volume.Label, error) {
	v, _, err := nifti.ReadVolume(path)
	if err != nil {
		return nil, err
	}
	l := &volume.Label{Dims: v.Dims, Data: make([]uint8, len(v.Data)), Affine: v.Affine}
	for i, x := range v.Data {
		if label == 0 && x > 0 || label > 0 && x == float32(label) {
			l.Data[i] = 1
		}
	}
	return l, nil
}
