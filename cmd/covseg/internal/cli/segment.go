package cli

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/progress"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// segmentFlags are the options of "covseg segment".
type segmentFlags struct {
	out, modelPath, engine, mode, spacing, series string
	shard                                         string
	skipExisting                                  bool
	overlap                                       float64
	threads                                       int
	tta, probs, png, report                       bool
}

func newSegmentCmd() *cobra.Command {
	var f segmentFlags
	cmd := &cobra.Command{
		Use:   "segment IN... -o OUT --model MODEL",
		Short: "Segment CTs (NIfTI files or DICOM folders) into masks on their own grids",
		Long: `Segment each CT with the model and write a uint8 mask NIfTI with exactly the
CT's dims and affine (0 = background, 1.. = the model's classes).

IN is a NIfTI file, a folder holding one DICOM series, or a folder of cases:
a folder that holds NIfTI files, or only subfolders (two or more), is a batch
whose cases are its NIfTI files and its subfolders (each a DICOM series). Files
named *_mask.nii[.gz] or *_probs*.nii[.gz] are skipped (masks, and this
command's own outputs). With --series, every folder IN is one DICOM case.

A batch loads the model once and shows a progress bar and a line per case. A
case that fails (unreadable, corrupt) is reported and skipped; the others are
still written. The exit status is 1 when any case failed, 0 otherwise.

OUT is a folder (created if needed) holding CASE_mask.nii.gz per case, CASE
being the file name without .nii/.nii.gz or the DICOM folder's name; with one
case, OUT may instead be a file name ending in .nii or .nii.gz.

The model is an ONNX file from "covseg model export" or a model file (.ckpt),
which ONNX Runtime runs after exporting it to a temporary ONNX file (export it
once to skip that). ONNX Runtime's library comes from COVSEG_ORT_LIB or
third_party/onnxruntime/ (scripts/setup fetches it). --engine gomlx runs a
.ckpt in pure Go instead: no library needed, but many times slower.

Each CT is reoriented as the model was trained (its metadata says how), its
HU windowed and normalised likewise, then:
  --mode resize   the whole volume is resized to the model's grid (D×H×W)
                  and the prediction back: the paper's way, one forward pass.
  --mode sliding  the volume is resampled to a spacing (the model's, or
                  --spacing D,H,W in mm) and patches of the model's grid slide
                  over it, overlapping by --overlap and blended with Gaussian
                  weights (σ = 1/8 patch): nnU-Net's way.
The default is the model's own mode. --tta averages the softmax over the 8
mirrorings of the input (8 times the work). The class probabilities go back
onto the CT's grid (trilinear) before the argmax.

--probs also writes CASE_probs.nii.gz, the float32 probability of class 1
(CASE_probs_NAME.nii.gz per class when the model has more than two).
--png writes CASE_mask.png, 12 axial slices in the radiological view with
each class of the mask outlined in its colour and named in a legend.
--report writes CASE_report.json and CASE_report.md: the severity report of
covseg report (lung and infiltrate volumes, percent involved, MosMedData category).

--shard K/N segments worker K's share of N (1 ≤ K ≤ N): the cases sorted by
name, every N-th starting at the K-th, so that the N tasks of a Kubernetes
Indexed Job (K = JOB_COMPLETION_INDEX+1) or a Slurm job array split a folder
with no coordination; every task must see the same inputs. OUT is then always
a folder. --skip-existing skips the cases whose outputs all exist (after the
split), so a retried task does only what is left.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSegment(cmd.OutOrStdout(), cmd.ErrOrStderr(), args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "output", "o", "", "output folder, or with one case a .nii/.nii.gz mask file")
	fl.StringVar(&f.modelPath, "model", "", "model: ONNX file (covseg model export) or model file (.ckpt)")
	fl.StringVar(&f.engine, "engine", infer.EngineORT, "inference engine: ort (ONNX Runtime) or gomlx (pure Go, slow)")
	fl.StringVar(&f.mode, "mode", "", "resize (whole volume to the model grid) or sliding (patches at a spacing); default: the model's")
	fl.StringVar(&f.spacing, "spacing", "", "target spacing D,H,W in mm for sliding mode (default: the model's)")
	fl.Float64Var(&f.overlap, "overlap", infer.DefaultOverlap, "fraction of a patch shared by neighbouring patches (sliding mode)")
	fl.BoolVar(&f.tta, "tta", false, "test-time augmentation: average over the 8 mirrorings (8x slower)")
	fl.BoolVar(&f.probs, "probs", false, "also write the class probability map(s) as float32 NIfTI")
	fl.BoolVar(&f.png, "png", false, "also write a PNG montage of axial slices with the mask outlined")
	fl.BoolVar(&f.report, "report", false, "also write the severity report per case (JSON and Markdown)")
	fl.StringVar(&f.series, "series", "", "DICOM SeriesInstanceUID to read from each folder IN")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime threads (default: one per physical core)")
	fl.StringVar(&f.shard, "shard", "", "segment only shard K/N of the cases (sorted by name, every N-th from the K-th): one worker of a cluster array job")
	fl.BoolVar(&f.skipExisting, "skip-existing", false, "skip cases whose outputs all exist (a retried or resumed batch)")
	return cmd
}

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

func runSegment(stdout, stderr io.Writer, args []string, f segmentFlags) error {
	if f.out == "" {
		return errors.New("segment: -o OUT is required")
	}
	if f.modelPath == "" {
		return errors.New("segment: --model is required (an ONNX file from covseg model export, or a model file .ckpt)")
	}
	opts := infer.DefaultOptions()
	opts.Mode, opts.Overlap, opts.TTA, opts.KeepProbs = f.mode, f.overlap, f.tta, f.probs
	if f.spacing != "" {
		if err := parseFloats(f.spacing, 3, func(v []float64) { copy(opts.Spacing[:], v) }); err != nil {
			return fmt.Errorf("segment: --spacing: %w", err)
		}
	}
	cases, batch, err := expandInputs(args, f.series)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	if cases, err = shardCases(cases, f.shard); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	if f.shard != "" || f.skipExisting {
		if err := placeOutputs(cases, batch || f.shard != "", f.out); err != nil {
			return fmt.Errorf("segment: %w", err)
		}
		if f.skipExisting {
			cases = skipFinished(stderr, cases, f)
		}
		if len(cases) == 0 {
			fmt.Fprintf(stdout, "segment: nothing to do (shard %q)\n", f.shard)
			return nil
		}
	}
	eng, err := openEngine(stderr, f)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	defer eng.Close()
	bar := progress.New(stderr, "segment", len(cases))
	var current string
	opts.Progress = func(done, total int) {
		bar.SetSuffix(fmt.Sprintf("%s: forward %d/%d", current, done, total))
		bar.Add(0)
	}
	seg, err := infer.New(eng, opts)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	if err := placeOutputs(cases, batch || f.shard != "", f.out); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	fmt.Fprintf(stderr, "model %s: %s; %s mode; engine %s\n", f.modelPath, seg.Config(), seg.Mode(), eng.Name())
	var failed []string
	for i, c := range cases {
		current = c.name
		bar.SetSuffix(c.name)
		line, err := segmentOne(seg, c, f)
		if err != nil {
			failed = append(failed, c.name)
			bar.Println(fmt.Sprintf("[%d/%d] %s FAILED: %v", i+1, len(cases), c.name, err))
		} else {
			bar.Println(fmt.Sprintf("[%d/%d] %s", i+1, len(cases), line))
		}
		bar.SetSuffix("")
		bar.Add(1)
	}
	bar.Finish()
	fmt.Fprintf(stdout, "segmented %d of %d case(s) into %s\n", len(cases)-len(failed), len(cases), f.out)
	if len(failed) > 0 {
		return fmt.Errorf("segment: %d of %d case(s) failed: %s", len(failed), len(cases), strings.Join(failed, ", "))
	}
	return nil
}

// openEngine opens the model in the engine the flags name, saying how to
// get ONNX Runtime when its library is missing.
func openEngine(stderr io.Writer, f segmentFlags) (infer.Engine, error) {
	if f.engine == infer.EngineGoMLX {
		fmt.Fprintln(stderr, "warning: the GoMLX engine runs in pure Go and is many times slower than ONNX Runtime (minutes per CT at full width)")
	}
	threads := f.threads
	if threads <= 0 {
		threads = physicalCores()
	}
	eng, err := infer.OpenEngine(f.modelPath, infer.EngineOptions{Kind: f.engine, Threads: threads, Version: Version})
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

// segmentOne reads, segments and writes one case and returns its summary
// line. A panic in any step becomes the case's error, so that one case
// cannot end a batch.
func segmentOne(seg *infer.Segmenter, c segCase, f segmentFlags) (line string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: internal error: %v", c.in, p)
		}
	}()
	res, ct, tm, err := segmentCase(seg, c, f)
	if err != nil {
		return "", err
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
	d := ct.Dims
	return fmt.Sprintf("%s %dx%dx%d → %s: %s (%s)", c.name, d[0], d[1], d[2], c.mask, strings.Join(parts, ", "), tm), nil
}

// segmentCase reads one CT, segments it and writes the outputs the flags
// ask for. It returns the result, the CT and the timing.
func segmentCase(seg *infer.Segmenter, c segCase, f segmentFlags) (*infer.Result, *volume.Volume, caseTiming, error) {
	var tm caseTiming
	start := time.Now()
	ct, _, err := volio.Read(c.in, volio.Options{SeriesUID: f.series})
	if err != nil {
		return nil, nil, tm, err
	}
	tm.Read = time.Since(start)
	res, err := seg.Segment(ct)
	if err != nil {
		return nil, nil, tm, fmt.Errorf("%s: %w", c.in, err)
	}
	tm.Timing = res.Timing
	start = time.Now()
	if err := writeOutputs(seg, c, ct, res, f); err != nil {
		return nil, nil, tm, err
	}
	tm.Write = time.Since(start)
	return res, ct, tm, nil
}

func writeOutputs(seg *infer.Segmenter, c segCase, ct *volume.Volume, res *infer.Result, f segmentFlags) error {
	if err := nifti.WriteLabel(c.mask, res.Mask); err != nil {
		return err
	}
	cfg := seg.Config()
	if f.probs {
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
	if f.png {
		if err := writeMaskMontage(c.stem+"_mask.png", ct, res.Mask, cfg.ClassNames); err != nil {
			return err
		}
	}
	if f.report {
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

// expandInputs turns the command's arguments into cases (see the command's
// help for the rules). batch is true when the cases must go into a folder.
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
		case isNIfTIName(name):
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

func isNIfTIName(name string) bool {
	l := strings.ToLower(name)
	return strings.HasSuffix(l, ".nii") || strings.HasSuffix(l, ".nii.gz")
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
	if !batch && len(cases) == 1 && isNIfTIName(out) {
		if st, err := os.Stat(out); err == nil && st.IsDir() {
			return fmt.Errorf("%s is a folder", out)
		}
		cases[0].mask = out
		cases[0].stem = strings.TrimSuffix(out, filepath.Ext(out))
		cases[0].stem = strings.TrimSuffix(cases[0].stem, ".nii")
		cases[0].stem = strings.TrimSuffix(cases[0].stem, ".NII")
		return nil
	}
	if isNIfTIName(out) {
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
