package pipeline

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
)

// EvaluateOptions configure Evaluate: what covseg evaluate's flags say.
type EvaluateOptions struct {
	// Pred and Truth are two mask files, or two folders whose NIfTI files
	// are paired by case name: the file name without .nii/.nii.gz and
	// without one trailing suffix _mask, _seg, _segmentation, _pred,
	// _prediction, _label, _labels, _gt or _truth (also after "-" or ".";
	// any letter case). Manifest instead is a CSV of rows
	// pred,truth[,case] (an optional header names the columns; relative
	// paths are relative to its folder).
	Pred, Truth, Manifest string
	// Taus are the NSD tolerances in mm (at least one).
	Taus []float64
	// Label, when above 0, evaluates only voxels equal to it; 0 takes
	// every voxel > 0.
	Label int
	// ResampleToTruth resamples a prediction on another grid onto the
	// truth's (nearest) instead of failing the case.
	ResampleToTruth bool
	// CSV and Markdown, when set, are files to write the report to.
	CSV, Markdown string
	// Jobs are the cases evaluated at once (0: min(CPUs, 4)).
	Jobs int
	// Progress receives a progress bar; nil shows none.
	Progress io.Writer
}

// evalCase is one pair to compare; pairErr is set when pairing failed.
type evalCase struct {
	name, pred, truth string
	pairErr           error
}

// Evaluate compares every case's predicted mask with its reference, in
// parallel, and returns the report; it writes o.CSV and o.Markdown when
// set. A case that fails (missing or unreadable file, mismatched grid) is
// in the report with its error and the others are still evaluated: see
// EvaluateReport.Err.
func Evaluate(o EvaluateOptions) (*EvaluateReport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	o.Taus = uniqueTaus(o.Taus)
	cases, err := o.cases()
	if err != nil {
		return nil, err
	}
	rep := newReport(cases, evaluateCases(cases, o), o)
	if o.CSV != "" {
		if err := writeFile(o.CSV, rep.WriteCSV); err != nil {
			return nil, err
		}
	}
	if o.Markdown != "" {
		if err := writeFile(o.Markdown, rep.WriteMarkdown); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// check rejects contradictory or absurd flags before any file is read.
func (o EvaluateOptions) check() error {
	switch {
	case o.Manifest != "" && (o.Pred != "" || o.Truth != ""):
		return errors.New("evaluate: give either --manifest or --pred and --truth, not both")
	case o.Manifest == "" && (o.Pred == "" || o.Truth == ""):
		return errors.New("evaluate: need --pred and --truth (files or folders), or --manifest")
	case o.Label < 0 || o.Label > 255:
		return fmt.Errorf("evaluate: --label %d is outside 0..255", o.Label)
	case len(o.Taus) == 0:
		return errors.New("evaluate: need at least one --tau")
	case o.Jobs < 0:
		return fmt.Errorf("evaluate: --jobs %d is negative", o.Jobs)
	}
	for _, t := range o.Taus {
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
func (o EvaluateOptions) cases() ([]evalCase, error) {
	if o.Manifest != "" {
		return readManifest(o.Manifest)
	}
	pi, perr := os.Stat(o.Pred)
	ti, terr := os.Stat(o.Truth)
	pdir, tdir := perr == nil && pi.IsDir(), terr == nil && ti.IsDir()
	switch {
	case pdir && tdir:
		return pairFolders(o.Pred, o.Truth)
	case pdir || tdir:
		if perr != nil {
			return nil, fmt.Errorf("evaluate: --pred %w", perr)
		}
		if terr != nil {
			return nil, fmt.Errorf("evaluate: --truth %w", terr)
		}
		return nil, fmt.Errorf("evaluate: --pred %s and --truth %s must both be files or both be folders", o.Pred, o.Truth)
	}
	// Two files (a missing one fails as its case, with the reader's message).
	return []evalCase{{name: caseName(o.Truth), pred: o.Pred, truth: o.Truth}}, nil
}

// evaluateCases compares every case, several at once, with a progress bar
// on o.Progress when set.
func evaluateCases(cases []evalCase, o EvaluateOptions) []metrics.CaseResult {
	var bar *progress.Bar
	if o.Progress != nil {
		bar = progress.New(o.Progress, "evaluate", len(cases))
	}
	load := func(i int) (*volume.Label, *volume.Label, error) { return loadCase(cases[i], o) }
	done := func(int, *metrics.Result, error) { bar.Add(1) } // Bar is safe for concurrent use
	res, errs := metrics.CompareAll(len(cases), o.Jobs, metrics.Options{Taus: o.Taus}, load, done)
	bar.Finish()
	out := make([]metrics.CaseResult, len(cases))
	for i, c := range cases {
		out[i] = metrics.NewCaseResult(c.name, res[i], errs[i], o.Taus)
		out[i].Pred, out[i].Truth = c.pred, c.truth
	}
	return out
}

// loadCase reads a case's masks as binary label maps on one grid.
func loadCase(c evalCase, o EvaluateOptions) (truth, pred *volume.Label, err error) {
	if c.pairErr != nil {
		return nil, nil, c.pairErr
	}
	if truth, err = readMask(c.truth, o.Label); err != nil {
		return nil, nil, fmt.Errorf("truth: %w", err)
	}
	if pred, err = readMask(c.pred, o.Label); err != nil {
		return nil, nil, fmt.Errorf("prediction: %w", err)
	}
	if err := metrics.CheckGrid(truth, pred); err != nil {
		if !o.ResampleToTruth {
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
