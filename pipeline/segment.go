package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/eval/dicomreport"
	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/fsguard"
	"github.com/covseg/covseg/internal/progress"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomout"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// SegmentOptions configure SegmentBatch: what covseg segment's flags say.
type SegmentOptions struct {
	// Inputs are NIfTI files, folders holding one DICOM series, or batch
	// folders: a folder that holds NIfTI files, or only subfolders (two or
	// more), whose cases are its NIfTI files (not *_mask.nii[.gz] or
	// *_probs*.nii[.gz]) and its subfolders.
	Inputs []string
	// Out is a folder (created if needed), or with one case a .nii/.nii.gz
	// mask file.
	Out string
	// Model is an ONNX file (covseg model export) or a model file (.ckpt).
	Model string
	// Engine is infer.EngineORT (the default when empty) or
	// infer.EngineGoMLX.
	Engine string
	// Threads are ONNX Runtime's threads; 0 means one per physical core.
	Threads int
	// Series picks a DICOM series in each folder; with it every folder
	// input is one case.
	Series string
	// Infer are the segmentation options (mode, spacing, overlap, TTA);
	// nil means infer.DefaultOptions(). KeepProbs and Progress are set by
	// SegmentBatch.
	Infer *infer.Options
	// Probs, PNG and Report also write CASE_probs*.nii.gz, CASE_mask.png
	// and CASE_report.json/.md.
	Probs, PNG, Report bool
	// DICOMSEG and DICOMSC, for a case read from a DICOM series, also write
	// CASE_seg.dcm (a DICOM Segmentation on the series' own frames:
	// infiltrate, right and left lung) and CASE_sc.dcm (the report montage
	// with its figures burnt in, as a Secondary Capture) in its study. A
	// NIfTI case asked for them fails with a message.
	DICOMSEG, DICOMSC bool
	// Shard, "K/N", segments only worker K's share of N workers (package
	// shard: the cases sorted by name, every N-th from the K-th), for a
	// cluster array job; "" segments every case.
	Shard string
	// SkipExisting skips the cases whose outputs all exist already (a
	// retried or resumed batch; outputs are renamed into place whole).
	SkipExisting bool
	// Strict fails a case whose CT has NaN or infinite voxels; otherwise
	// they are read as volio.NonFiniteHU (air) with a warning on Log.
	Strict bool
	// Log receives the progress bar and a line per case (standard error in
	// the command); nil discards them.
	Log io.Writer
}

// SegmentResult is the outcome of SegmentBatch: a CaseResult per case, in
// input order, with the case's CT (Image), mask (Pred), predicted
// foreground volume and voxels, or its error. Figures that need a truth
// are undefined.
type SegmentResult struct {
	// Out is where the outputs went (SegmentOptions.Out).
	Out   string               `json:"out"`
	Cases []metrics.CaseResult `json:"cases"`
	// Skipped names the cases left out because their outputs existed.
	Skipped []string `json:"skipped,omitempty"`
	// Failed counts the cases with an error.
	Failed int `json:"failed"`
}

// WriteJSON writes the result as one indented JSON object with the keys
// out, cases (metrics.CaseResult) and failed.
func (r *SegmentResult) WriteJSON(w io.Writer) error { return encodeJSON(w, r) }

// segCase is one CT to segment and where its outputs go.
type segCase struct {
	name, in string
	// stem is the output path without "_mask.nii.gz" (or the file name the
	// user gave, without .nii/.nii.gz, when mask is that file).
	stem, mask string
}

func (c segCase) probsPath(class string) string {
	if class == "" {
		return c.stem + "_probs.nii.gz"
	}
	return c.stem + "_probs_" + class + ".nii.gz"
}

// SegmentBatch segments every case of o.Inputs with one model, loaded once,
// and writes the outputs o asks for. A case that fails (unreadable,
// corrupt) is reported on o.Log and skipped; the others are still written,
// and the error then says which failed. The result lists every case.
func SegmentBatch(ctx context.Context, o SegmentOptions) (*SegmentResult, error) {
	if o.Out == "" {
		return nil, errors.New("segment: -o OUT is required")
	}
	if o.Model == "" {
		return nil, errors.New("segment: --model is required (an ONNX file from covseg model export, or a model file .ckpt)")
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	opts := infer.DefaultOptions()
	if o.Infer != nil {
		opts = *o.Infer
	}
	opts.KeepProbs = o.Probs
	cases, batch, err := expandInputs(o.Inputs, o.Series)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	// Where the outputs go, and that none of them is an input or unwritable,
	// is settled before the model is loaded.
	if cases, err = shardCases(cases, o.Shard); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	if err := placeOutputs(cases, batch || o.Shard != "", o.Out); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	var skipped []string
	if o.SkipExisting {
		cases, skipped = skipFinished(log, cases, o)
	}
	if len(cases) == 0 {
		return &SegmentResult{Out: o.Out, Skipped: skipped}, nil
	}
	if err := guardSegmentOutputs(cases, o, nil); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	if o.Engine == "" {
		o.Engine = infer.EngineORT
	}
	eng, err := OpenEngine(o.Model, o.Engine, o.Threads, log)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	defer eng.Close()
	bar := progress.New(log, "segment", len(cases))
	var current string
	opts.Progress = func(done, total int) {
		bar.SetSuffix(fmt.Sprintf("%s: forward %d/%d", current, done, total))
		bar.Add(0)
	}
	seg, err := infer.New(eng, opts)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	if err := guardSegmentOutputs(cases, o, seg.Config().ClassNames); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	warn := func(msg string) { bar.Println("warning: " + msg) }
	fmt.Fprintf(log, "model %s: %s; %s mode; engine %s\n", o.Model, seg.Config(), seg.Mode(), eng.Name())
	res := &SegmentResult{Out: o.Out, Skipped: skipped}
	var failed []string
	for i, c := range cases {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("segment: interrupted: %w", err)
		}
		current = c.name
		bar.SetSuffix(c.name)
		cr, line := segmentOne(seg, c, o, warn)
		res.Cases = append(res.Cases, cr)
		if cr.Error != "" {
			failed = append(failed, c.name)
			bar.Println(fmt.Sprintf("[%d/%d] %s FAILED: %s", i+1, len(cases), c.name, cr.Error))
		} else {
			bar.Println(fmt.Sprintf("[%d/%d] %s", i+1, len(cases), line))
		}
		bar.SetSuffix("")
		bar.Add(1)
	}
	bar.Finish()
	res.Failed = len(failed)
	if len(failed) > 0 {
		return res, fmt.Errorf("segment: %d of %d case(s) failed: %s", len(failed), len(cases), strings.Join(failed, ", "))
	}
	return res, nil
}

// OpenEngine opens a model in the engine kind names (infer.EngineORT or
// infer.EngineGoMLX) with threads ONNX Runtime threads (0: one per
// physical core), warning on log that GoMLX is slow and saying how to do
// without ONNX Runtime when its library is missing.
func OpenEngine(modelPath, kind string, threads int, log io.Writer) (infer.Engine, error) {
	if kind == infer.EngineGoMLX {
		fmt.Fprintln(log, "warning: the GoMLX engine runs in pure Go and is many times slower than ONNX Runtime (minutes per CT at full width)")
	}
	if threads <= 0 {
		threads = PhysicalCores()
	}
	eng, err := infer.OpenEngine(modelPath, infer.EngineOptions{Kind: kind, Threads: threads, Version: Version})
	if errors.Is(err, ort.ErrNoLibrary) {
		return nil, fmt.Errorf("%w\n(or run with --engine gomlx and a model file .ckpt: pure Go, no library, but many times slower)", err)
	}
	return eng, err
}

// caseTiming says where the time of one case went.
type caseTiming struct {
	Read, Write time.Duration
	infer.Timing
}

func (t caseTiming) String() string {
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("read %s, preprocess %s, model %s (%d forward), resample %s, write %s",
		r(t.Read), r(t.Preprocess), r(t.Model), t.Forwards, r(t.Resample), r(t.Write))
}

// segmentOne reads, segments and writes one case and returns its result
// and summary line. A panic in any step becomes the case's error, so that
// one case cannot end a batch.
func segmentOne(seg *infer.Segmenter, c segCase, o SegmentOptions, warn func(string)) (cr metrics.CaseResult, line string) {
	cr = metrics.NewCaseResult(c.name, nil, nil, nil)
	cr.Image = c.in
	defer func() {
		if p := recover(); p != nil {
			cr.Error = fmt.Sprintf("%s: internal error: %v", c.in, p)
		}
	}()
	res, ct, tm, err := segmentCase(seg, c, outputs{series: o.Series, probs: o.Probs, png: o.PNG, report: o.Report,
		dicomSEG: o.DICOMSEG, dicomSC: o.DICOMSC, strict: o.Strict, warn: warn})
	if err != nil {
		cr.Error = err.Error()
		return cr, ""
	}
	cfg := seg.Config()
	vox := ct.Spacing()
	ml := vox[0] * vox[1] * vox[2] / 1000
	counts := make([]int, cfg.Classes+1)
	for _, l := range res.Mask.Data {
		counts[l]++
	}
	var parts []string
	for k := 1; k < len(counts) && k < len(cfg.ClassNames); k++ {
		parts = append(parts, fmt.Sprintf("%s %.1f mL", cfg.ClassNames[k], float64(counts[k])*ml))
	}
	if cfg.Classes == 1 {
		parts = append(parts, fmt.Sprintf("foreground %.1f mL", float64(counts[1])*ml))
	}
	fg := len(res.Mask.Data) - counts[0]
	cr.Pred, cr.PredML, cr.PredVoxels = c.mask, metrics.Value(float64(fg)*ml), &fg
	d := ct.Dims
	return cr, fmt.Sprintf("%s %dx%dx%d → %s: %s (%s)", c.name, d[0], d[1], d[2], c.mask, strings.Join(parts, ", "), tm)
}

// guardSegmentOutputs refuses, before any case is segmented, outputs that
// are one of the inputs (a CT, the model; by file identity, through links)
// or that cannot be written. classNames, once the model is open, names the
// per-class probability maps; before that only the class-less names are
// checked.
func guardSegmentOutputs(cases []segCase, o SegmentOptions, classNames []string) error {
	inputs := []string{o.Model}
	var outputs []string
	for _, c := range cases {
		inputs = append(inputs, c.in)
		outputs = append(outputs, c.mask)
		if o.Probs {
			outputs = append(outputs, c.probsPath(""))
			for k := 1; k < len(classNames); k++ {
				outputs = append(outputs, c.probsPath(fileSafe(classNames[k])))
			}
		}
		if o.PNG {
			outputs = append(outputs, c.stem+"_mask.png")
		}
		if o.Report {
			outputs = append(outputs, c.stem+"_report.json", c.stem+"_report.md")
		}
		if o.DICOMSEG {
			outputs = append(outputs, c.stem+"_seg.dcm")
		}
		if o.DICOMSC {
			outputs = append(outputs, c.stem+"_sc.dcm")
		}
	}
	if err := fsguard.RefuseSame(outputs, inputs); err != nil {
		return err
	}
	return fsguard.CheckOutputs(outputs...)
}

// DICOMSource is the DICOM series a CT was read from (src, as volio.Read
// returns it), for derived DICOM objects; a NIfTI input is refused.
func DICOMSource(in string, src *volio.Source) (*dicomout.Source, error) {
	if src == nil || src.Series == nil {
		return nil, fmt.Errorf("%s: DICOM SEG and SC output need a DICOM series as input, not a NIfTI file", in)
	}
	return dicomout.NewSource(src.Series)
}

// outputs says which files besides the mask a segmented case gets, and
// which DICOM series to read.
type outputs struct {
	series             string
	probs, png, report bool
	dicomSEG, dicomSC  bool
	// strict fails a CT with non-finite voxels; warn (may be nil) is told
	// when they are read as air instead.
	strict bool
	warn   func(string)
}

// segmentCase reads one CT, segments it and writes its mask and the
// outputs out asks for. It returns the result, the CT and the timing.
func segmentCase(seg *infer.Segmenter, c segCase, out outputs) (*infer.Result, *volume.Volume, caseTiming, error) {
	var tm caseTiming
	start := time.Now()
	ct, src, err := volio.Read(c.in, volio.Options{SeriesUID: out.series,
		Copies: volio.CopiesSegment(seg.Config().Classes, out.probs)})
	if err != nil {
		return nil, nil, tm, err
	}
	if src.NonFinite > 0 {
		if out.strict {
			return nil, nil, tm, fmt.Errorf("%s: %d voxels are NaN or infinite (--strict)", c.in, src.NonFinite)
		}
		n := volio.ReplaceNonFinite(ct, volio.NonFiniteHU)
		if out.warn != nil {
			out.warn(fmt.Sprintf("%s: %d voxels are NaN or infinite; they are read as %d HU (air)", c.in, n, volio.NonFiniteHU))
		}
	}
	tm.Read = time.Since(start)
	var dsrc *dicomout.Source
	if out.dicomSEG || out.dicomSC {
		// Before the model runs: a case that cannot have DICOM outputs
		// fails at once.
		if dsrc, err = DICOMSource(c.in, src); err != nil {
			return nil, nil, tm, err
		}
	}
	res, err := seg.Segment(ct)
	if err != nil {
		return nil, nil, tm, fmt.Errorf("%s: %w", c.in, err)
	}
	tm.Timing = res.Timing
	start = time.Now()
	if err := writeOutputs(seg, c, ct, res, out); err != nil {
		return nil, nil, tm, err
	}
	if dsrc != nil {
		// The infiltrate only: the report computes the lungs itself.
		if _, err := dicomreport.Write(c.stem, dsrc, ct, res.Infiltrate, nil, dicomreport.Options{
			SEG: out.dicomSEG, SC: out.dicomSC, Lungs: true, Version: Version,
		}); err != nil {
			return nil, nil, tm, err
		}
	}
	tm.Write = time.Since(start)
	return res, ct, tm, nil
}

func writeOutputs(seg *infer.Segmenter, c segCase, ct *volume.Volume, res *infer.Result, out outputs) error {
	if err := nifti.WriteLabel(c.mask, res.Mask); err != nil {
		return err
	}
	cfg := seg.Config()
	if out.probs {
		for k := 1; k < len(res.Probs); k++ {
			name := ""
			if len(res.Probs) > 2 {
				name = fileSafe(cfg.ClassNames[k])
			}
			if err := nifti.WriteVolume(c.probsPath(name), res.Probs[k], nifti.WriteOptions{}); err != nil {
				return err
			}
		}
	}
	if out.png {
		if err := writeMaskMontage(c.stem+"_mask.png", ct, res.Mask, cfg.ClassNames); err != nil {
			return err
		}
	}
	if out.report {
		if err := writeCaseReport(c.stem+"_report.json", c.name, ct, res.Mask, cfg.ClassNames); err != nil {
			return err
		}
	}
	return nil
}

// maskColours are the outline colours of classes 1, 2, ... in a --png
// montage.
var maskColours = []color.RGBA{
	{255, 40, 40, 255}, {40, 220, 40, 255}, {60, 140, 255, 255}, {255, 200, 0, 255}, {230, 60, 230, 255},
}

// writeMaskMontage writes 12 axial slices of ct with each class of mask
// outlined (and lightly filled) in its own colour, named in the legend.
func writeMaskMontage(path string, ct *volume.Volume, mask *volume.Label, classNames []string) error {
	styles := map[uint8]montage.Style{}
	for k := 1; k < len(classNames) && k < 256; k++ {
		styles[uint8(k)] = montage.Style{Name: classNames[k], Color: maskColours[(k-1)%len(maskColours)], Outline: true, Fill: 0.25}
	}
	img, err := montage.Render(ct, []montage.Overlay{{Label: mask, Styles: styles}}, montage.Options{Slices: 12})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return montage.WritePNG(path, img)
}

// fileSafe keeps letters, digits, '-' and '_' of a class name for a file
// name.
func fileSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// expandInputs turns covseg segment's inputs into cases. An input is a
// NIfTI file, a folder holding one DICOM series, or a batch folder: a
// folder that holds NIfTI files, or only subfolders (two or more), whose
// cases are its NIfTI files (not *_mask.nii[.gz] or *_probs*.nii[.gz]) and
// its subfolders. With series set, every folder is one DICOM case. batch is
// true when the cases must go into a folder; two cases of one name are an
// error.
func expandInputs(args []string, series string) ([]segCase, bool, error) {
	var cases []segCase
	batch := len(args) > 1
	for _, in := range args {
		st, err := os.Stat(in)
		if err != nil {
			return nil, false, err
		}
		if !st.IsDir() || series != "" {
			cases = append(cases, segCase{name: volio.CaseName(in), in: in})
			continue
		}
		inner, err := folderCases(in)
		if err != nil {
			return nil, false, err
		}
		if inner == nil {
			cases = append(cases, segCase{name: volio.CaseName(in), in: in})
			continue
		}
		batch = true
		cases = append(cases, inner...)
	}
	seen := map[string]string{}
	for _, c := range cases {
		if prev, ok := seen[c.name]; ok {
			return nil, false, fmt.Errorf("two cases are named %q (%s and %s); their outputs would collide: segment them separately", c.name, prev, c.in)
		}
		seen[c.name] = c.in
	}
	return cases, batch, nil
}

// folderCases returns the cases of a batch folder, or nil when dir is one
// DICOM series.
func folderCases(dir string) ([]segCase, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var niftis, dirs []segCase
	others := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(dir, name)
		st, err := os.Stat(p) // follows links
		if err != nil {
			continue
		}
		switch {
		case st.IsDir():
			dirs = append(dirs, segCase{name: volio.CaseName(p), in: p})
		case nifti.IsNIfTIName(name):
			if !isOutputName(name) {
				niftis = append(niftis, segCase{name: volio.CaseName(p), in: p})
			}
		default:
			others++
		}
	}
	if len(niftis) == 0 && (others > 0 || len(dirs) < 2) {
		return nil, nil
	}
	if len(niftis)+len(dirs) == 0 {
		return nil, fmt.Errorf("%s holds no CT: no NIfTI file, no subfolder", dir)
	}
	return append(niftis, dirs...), nil
}

// isOutputName reports whether a NIfTI file name is a mask or probability
// map rather than a CT.
func isOutputName(name string) bool {
	stem := strings.ToLower(volio.CaseName(name))
	return strings.HasSuffix(stem, "_mask") || strings.Contains(stem, "_probs")
}

// placeOutputs decides where each case's outputs go: OUT/CASE_mask.nii.gz,
// or OUT itself for a single case when OUT is a NIfTI file name.
func placeOutputs(cases []segCase, batch bool, out string) error {
	if !batch && len(cases) == 1 && nifti.IsNIfTIName(out) {
		if st, err := os.Stat(out); err == nil && st.IsDir() {
			return fmt.Errorf("%s is a folder", out)
		}
		cases[0].mask = out
		cases[0].stem, _ = nifti.TrimExt(out)
		return nil
	}
	if nifti.IsNIfTIName(out) {
		return fmt.Errorf("-o %s: with %d cases OUT must be a folder", out, len(cases))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for i := range cases {
		cases[i].stem = filepath.Join(out, cases[i].name)
		cases[i].mask = cases[i].stem + "_mask.nii.gz"
	}
	return nil
}
