package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/internal/progress"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/train"
)

// The paper's mean Dice per test set (Bressem et al. 2021, table 2).
var paperDice = map[string]float64{
	dataset.RICORD:      0.679,
	dataset.Coronacases: 0.648,
	dataset.MosMed:      0.405,
}

// reproduceFlags are the options of "covseg reproduce".
type reproduceFlags struct {
	ricord, ricordAnn, coronacases, mosmed string
	modelPath, out, config, engine         string
	valFraction, tau                       float64
	seed                                   uint64
	threads                                int
	json, tta                              bool
}

func newReproduceCmd() *cobra.Command {
	var f reproduceFlags
	cmd := &cobra.Command{
		Use:   "reproduce --ricord DICOMDIR --ricord-annotations MDAI.json --coronacases DIR --mosmed DIR [--model M] [-o OUT] [--config train.yaml]",
		Short: "The paper's protocol end to end: train on RICORD, test on Coronacases and MosMedData, print the table beside the paper's",
		Long: `Run Bressem et al. 2021's protocol on the public data sets a user downloads:

 1. Prepare the data: RICORD 1a's DICOM series and MD.ai export become NIfTI
    pairs (as covseg data ricord does; OUT/data/ricord, reused when it is
    there), split by patient into training and a tuning (validation) set of
    --val-fraction; the Coronacases collection's ten coronacases_org volumes
    (the radiopaedia ones left out, as the authors did: they are not in HU)
    and the MosMedData studies with masks are test sets. OUT/manifest.csv
    lists them all.
 2. Train with the paper's recipe (covseg train's defaults, or --config's
    fields over them; the manifest is always OUT/manifest.csv) into OUT/run,
    unless --model names a trained model. A run folder that holds a run is
    resumed (with its own config.yaml). The model is OUT/run/best.ckpt, the
    epoch of the best tuning Dice.
 3. Segment the RICORD tuning cases and both test sets as covseg segment
    does (the model's own mode and preprocessing; ONNX Runtime, after one
    export to OUT/model.onnx) into OUT/pred/DATASET/, and compare each mask
    with its truth as covseg evaluate does.
 4. Print the table: dataset | cases | the paper's mean Dice | covseg's mean
    Dice ± SD | mean normalised surface Dice at --tau mm | mean HD95, with the
    run's settings, and write it as OUT/results.md and OUT/results.json
    (per case in OUT/cases.csv). --json prints the JSON on standard output.

Without --model, RICORD is required (it is the training data). With --model,
each data set is optional, and the table has the rows of those given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := interruptible(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			return runReproduce(ctx, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.ricord, "ricord", "", "RICORD 1a: folder of its DICOM series (searched recursively)")
	fl.StringVar(&f.ricordAnn, "ricord-annotations", "", "RICORD 1a: the MD.ai export (JSON)")
	fl.StringVar(&f.coronacases, "coronacases", "", "folder of the Coronacases collection (Zenodo 3757476)")
	fl.StringVar(&f.mosmed, "mosmed", "", "folder of MosMedData (COVID19_1110)")
	fl.StringVar(&f.modelPath, "model", "", "a trained model (.ckpt or .onnx): skip training")
	fl.StringVarP(&f.out, "output", "o", "covseg-reproduce", "output folder")
	fl.StringVar(&f.config, "config", "", "training config (YAML; fields override the paper's recipe)")
	fl.Float64Var(&f.valFraction, "val-fraction", dataset.DefaultSplit.Val, "fraction of RICORD's patients in the tuning (validation) set")
	fl.Uint64Var(&f.seed, "split-seed", dataset.DefaultSplit.Seed, "seed of RICORD's split")
	fl.Float64Var(&f.tau, "tau", 1, "tolerance of the normalised surface Dice in mm")
	fl.StringVar(&f.engine, "engine", infer.EngineORT, "inference engine: ort (ONNX Runtime) or gomlx (pure Go, slow)")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime threads (default: one per core)")
	fl.BoolVar(&f.tta, "tta", false, "test-time augmentation: average over the 8 mirrorings (8x slower; the paper did not)")
	fl.BoolVar(&f.json, "json", false, "print the results as JSON on standard output (progress on standard error)")
	return cmd
}

func (f reproduceFlags) check() error {
	if (f.ricord == "") != (f.ricordAnn == "") {
		return errors.New("reproduce: --ricord and --ricord-annotations go together")
	}
	if f.modelPath == "" && f.ricord == "" {
		return errors.New("reproduce: training needs RICORD (--ricord and --ricord-annotations), or give a trained --model")
	}
	if f.ricord == "" && f.coronacases == "" && f.mosmed == "" {
		return errors.New("reproduce: name at least one data set")
	}
	if f.modelPath != "" && f.config != "" {
		return errors.New("reproduce: --config configures training, which --model skips")
	}
	if !(f.valFraction > 0 && f.valFraction < 1) {
		return fmt.Errorf("reproduce: --val-fraction %v: want a fraction between 0 and 1", f.valFraction)
	}
	if !(f.tau >= 0) || f.tau > 1000 {
		return fmt.Errorf("reproduce: --tau %v: want 0 to 1000 mm", f.tau)
	}
	if f.engine != infer.EngineORT && f.engine != infer.EngineGoMLX {
		return fmt.Errorf("reproduce: --engine %q: want %s or %s", f.engine, infer.EngineORT, infer.EngineGoMLX)
	}
	return nil
}

func runReproduce(ctx context.Context, f reproduceFlags, stdout, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	start := time.Now()
	log := stdout
	if f.json {
		log = stderr
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	m, err := reproduceManifest(f, log)
	if err != nil {
		return err
	}
	res := &reproduceResult{Version: Version, Manifest: filepath.Join(f.out, "manifest.csv"), TauMM: f.tau}
	if err := dataset.WriteManifest(res.Manifest, m); err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	printSplits(log, m)

	res.Model = f.modelPath
	if res.Model == "" {
		tr, err := reproduceTrain(ctx, f, res.Manifest, log)
		if err != nil {
			return err
		}
		res.Model, res.Training = tr.model, tr
	} else {
		res.Training = &reproduceTraining{Skipped: "--model " + f.modelPath}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reproduce: interrupted: %w", err)
	}
	if err := reproduceEvaluate(ctx, f, m, res, stderr); err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	return res.write(f, stdout)
}

// reproduceManifest prepares the data: RICORD converted (or reused) and
// split by patient into train and val, Coronacases and MosMedData as test
// sets.
func reproduceManifest(f reproduceFlags, log io.Writer) (*dataset.Manifest, error) {
	var parts []*dataset.Manifest
	if f.ricord != "" {
		m, err := reproduceRICORD(f, log)
		if err != nil {
			return nil, err
		}
		parts = append(parts, m)
	}
	if f.coronacases != "" {
		m, err := dataset.DiscoverCoronacases(f.coronacases, dataset.DiscoverOptions{})
		if err != nil {
			return nil, fmt.Errorf("reproduce: %w", err)
		}
		parts = append(parts, m)
	}
	if f.mosmed != "" {
		m, err := dataset.DiscoverMosMed(f.mosmed, dataset.DiscoverOptions{})
		if err != nil {
			return nil, fmt.Errorf("reproduce: %w", err)
		}
		parts = append(parts, m)
	}
	all, err := dataset.Merge(parts...)
	if err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	split := dataset.SplitConfig{
		Val: f.valFraction, Seed: f.seed,
		Whole: map[string]dataset.Split{dataset.Coronacases: dataset.Test, dataset.MosMed: dataset.Test},
	}
	if err := dataset.AssignSplits(all.Entries, split); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	return all, nil
}

// reproduceRICORD converts RICORD into OUT/data/ricord, or reads the
// conversion a previous run left there.
func reproduceRICORD(f reproduceFlags, log io.Writer) (*dataset.Manifest, error) {
	dir := filepath.Join(f.out, "data", "ricord")
	if _, err := os.Stat(filepath.Join(dir, "manifest.csv")); err == nil {
		fmt.Fprintf(log, "RICORD: reusing the conversion in %s (delete it to convert again)\n", dir)
		m, err := dataset.DiscoverPairs(dir, dataset.RICORD)
		if err != nil {
			return nil, fmt.Errorf("reproduce: %w", err)
		}
		return m, nil
	}
	fmt.Fprintf(log, "RICORD: converting %s with %s into %s\n", f.ricord, f.ricordAnn, dir)
	res, err := dataset.ConvertRICORD(dataset.RICORDOptions{
		DICOM: f.ricord, Annotations: f.ricordAnn, Out: dir, KeepGoing: true,
		Split: dataset.SplitConfig{Val: f.valFraction, Seed: f.seed},
	})
	if res != nil {
		for _, e := range res.Failed {
			fmt.Fprintln(log, "RICORD: skipped:", e)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	fmt.Fprintf(log, "RICORD: %d annotated series\n", len(res.Series))
	return res.Manifest, nil
}

// reproduceTraining says how the model was trained.
type reproduceTraining struct {
	Skipped   string  `json:"skipped,omitempty"`
	Run       string  `json:"run,omitempty"`
	Config    string  `json:"config,omitempty"`
	Resumed   bool    `json:"resumed,omitempty"`
	Epochs    int     `json:"epochs,omitempty"`
	Phases    string  `json:"phases,omitempty"`
	BestEpoch int     `json:"best_epoch,omitempty"`
	BestDice  float64 `json:"best_tuning_dice,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
	model     string
}

// reproduceTrain trains with the paper's recipe as covseg train does, on
// the reproduce manifest, into OUT/run (resuming a run found there).
func reproduceTrain(ctx context.Context, f reproduceFlags, manifest string, log io.Writer) (*reproduceTraining, error) {
	start := time.Now()
	dir := filepath.Join(f.out, "run")
	cfg := train.DefaultConfig()
	var err error
	if f.config != "" {
		if cfg, err = train.ReadConfig(f.config); err != nil {
			return nil, err
		}
		if cfg, err = absPaths(cfg, f.config); err != nil {
			return nil, err
		}
	}
	if cfg.Data.Manifest != "" {
		fmt.Fprintf(log, "note: the config's data.manifest %s is replaced by %s\n", cfg.Data.Manifest, manifest)
	}
	if cfg.Data.Manifest, err = filepath.Abs(manifest); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	tr := &reproduceTraining{Run: dir, Config: filepath.Join(dir, train.FileConfig)}
	if _, err := os.Stat(filepath.Join(dir, train.FileLast)); err == nil {
		saved, err := train.ReadConfig(tr.Config)
		if err != nil {
			return nil, err
		}
		want, _ := cfg.YAML()
		have, _ := saved.YAML()
		if string(want) != string(have) {
			return nil, fmt.Errorf("reproduce: %s holds a run with another config (%s): remove it, or give the same --config", dir, tr.Config)
		}
		tr.Resumed = true
		fmt.Fprintf(log, "resuming the training run in %s\n", dir)
	}
	tr.Epochs = cfg.TotalEpochs()
	var ph []string
	for _, p := range cfg.Phases {
		s := fmt.Sprintf("%s %d epochs at lr %g", p.Name, p.Epochs, p.LR)
		if p.FreezeEncoder {
			s += " (encoder frozen)"
		}
		ph = append(ph, s)
	}
	tr.Phases = strings.Join(ph, ", then ")
	trainSrc, valSrc, err := loadTrainData(cfg, dir, log)
	if err != nil {
		return nil, err
	}
	backend, err := train.NewBackend(cfg.Backend.Name)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "training with the paper's recipe on %s: %s; run folder %s\n", backend.Name(), tr.Phases, dir)
	out, err := train.Run(ctx, train.Options{
		Config: cfg, Dir: dir, Resume: tr.Resumed, Backend: backend, Train: trainSrc, Val: valSrc, Log: log,
	})
	if err != nil {
		return nil, err
	}
	if out.Interrupted {
		return nil, fmt.Errorf("reproduce: %w (run covseg reproduce again with the same arguments to resume)", errInterrupted)
	}
	tr.BestEpoch, tr.BestDice = out.State.BestEpoch, out.State.BestDice
	tr.model = filepath.Join(dir, train.FileBest)
	if out.State.BestEpoch == 0 {
		// No tuning cases: the last epoch's network.
		tr.model = filepath.Join(dir, train.FileLast)
	}
	tr.Seconds = time.Since(start).Seconds()
	return tr, nil
}

// reproduceEngine opens the model for segmentation: a model file is
// exported to OUT/model.onnx once for ONNX Runtime.
func reproduceEngine(f reproduceFlags, res *reproduceResult, log io.Writer) (infer.Engine, error) {
	path := res.Model
	if f.engine == infer.EngineORT && !strings.HasSuffix(strings.ToLower(path), ".onnx") {
		onnxPath := filepath.Join(f.out, "model.onnx")
		if err := exportDemoModel(path, onnxPath); err != nil {
			return nil, fmt.Errorf("reproduce: %w", err)
		}
		fmt.Fprintf(log, "exported %s to %s\n", path, onnxPath)
		res.ONNX, path = onnxPath, onnxPath
	}
	threads := f.threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	eng, err := infer.OpenEngine(path, infer.EngineOptions{Kind: f.engine, Threads: threads, Version: Version})
	if errors.Is(err, ort.ErrNoLibrary) {
		return nil, fmt.Errorf("reproduce: %w\n(or run with --engine gomlx: pure Go, no library, but many times slower)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	return eng, nil
}

// reproduceEvaluate segments the RICORD tuning cases and the test sets and
// compares every mask with its truth.
func reproduceEvaluate(ctx context.Context, f reproduceFlags, m *dataset.Manifest, res *reproduceResult, stderr io.Writer) error {
	mcfg, err := reproduceModelConfig(res.Model)
	if err != nil {
		return err
	}
	res.ModelConfig = mcfg.String()
	p := mcfg.Preprocess
	res.Preprocess = fmt.Sprintf("%s to %dx%dx%d, HU window %g..%g, orientation %s", p.Mode, p.Grid[0], p.Grid[1], p.Grid[2], p.WindowLow, p.WindowHigh, p.Orientation)
	eng, err := reproduceEngine(f, res, stderr)
	if err != nil {
		return err
	}
	defer eng.Close()
	opts := infer.DefaultOptions()
	opts.TTA = f.tta
	seg, err := infer.New(eng, opts)
	if err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	res.Engine, res.Mode, res.TTA = eng.Name(), seg.Mode(), f.tta
	var todo []dataset.Entry
	for _, e := range m.Entries {
		if e.Mask != "" && ((e.Dataset == dataset.RICORD && e.Split == dataset.Val) || e.Split == dataset.Test) {
			todo = append(todo, e)
		}
	}
	bar := progress.New(stderr, "segment", len(todo))
	defer bar.Finish()
	byName := map[string]*reproduceRow{}
	for _, e := range todo {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reproduce: interrupted: %w", err)
		}
		row := byName[e.Dataset]
		if row == nil {
			row = res.row(e.Dataset)
			byName[e.Dataset] = row
		}
		c := reproduceCase(seg, e, f)
		if c.Error != "" {
			bar.Println(fmt.Sprintf("%s %s FAILED: %s", e.Dataset, e.Case, c.Error))
		}
		row.PerCase = append(row.PerCase, c)
		bar.SetSuffix(e.Case)
		bar.Add(1)
	}
	for _, row := range res.Rows {
		row.summarize()
	}
	return nil
}

// reproduceModelConfig reads a model's configuration (a model file or an
// exported ONNX model's metadata).
func reproduceModelConfig(path string) (model.Config, error) {
	if strings.HasSuffix(strings.ToLower(path), ".onnx") {
		eng, err := infer.OpenEngine(path, infer.EngineOptions{Threads: 1})
		if err != nil {
			return model.Config{}, fmt.Errorf("reproduce: %w", err)
		}
		defer eng.Close()
		return eng.Config(), nil
	}
	cfg, _, err := model.Load(path)
	if err != nil {
		return model.Config{}, fmt.Errorf("reproduce: %w", err)
	}
	return cfg, nil
}

// reproduceCase segments one case as covseg segment does, writes its mask
// to OUT/pred/DATASET/CASE_mask.nii.gz and compares it with the truth as
// covseg evaluate does (voxels > 0).
func reproduceCase(seg *infer.Segmenter, e dataset.Entry, f reproduceFlags) reproduceCaseResult {
	c := reproduceCaseResult{Case: e.Case, Split: string(e.Split), Image: e.Image, Truth: e.Mask}
	sc := segCase{name: e.Case, in: e.Image, stem: filepath.Join(f.out, "pred", e.Dataset, e.Case)}
	sc.mask = sc.stem + "_mask.nii.gz"
	if err := os.MkdirAll(filepath.Dir(sc.mask), 0o755); err != nil {
		c.Error = err.Error()
		return c
	}
	out, _, _, err := segmentCase(seg, sc, segmentFlags{})
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.Pred = sc.mask
	truth, err := readMask(e.Mask, 0)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	r, err := metrics.Compare(truth, out.Mask, metrics.Options{Taus: []float64{f.tau}})
	if err != nil {
		c.Error = fmt.Sprintf("%s against %s: %v", sc.mask, e.Mask, err)
		return c
	}
	c.result = r
	c.Dice, c.NSD, c.HD95 = r.Dice, r.NSD[0], r.HD95
	c.TruthML, c.PredML = r.TruthML, r.PredML
	return c
}

// encodeJSON writes v as indented JSON.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONFile writes v as indented JSON to path, atomically.
func writeJSONFile(path string, v any) error {
	return atomicfile.Write(path, func(w io.Writer) error { return encodeJSON(w, v) })
}
