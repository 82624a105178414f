package pipeline

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

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/engine/onnx"
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

// ReproduceOptions configure Reproduce: what covseg reproduce's flags say.
type ReproduceOptions struct {
	// RICORD is RICORD 1a's folder of DICOM series and RICORDAnnotations
	// its MD.ai export; Coronacases and MosMed are those collections'
	// folders. Each is optional with Model; without it RICORD is the
	// training data.
	RICORD, RICORDAnnotations, Coronacases, MosMed string
	// Model is a trained model (.ckpt or .onnx); empty trains one.
	Model string
	// Out is the output folder.
	Out string
	// Config is a training config (YAML) whose fields override the paper's
	// recipe.
	Config string
	// Engine is infer.EngineORT or infer.EngineGoMLX.
	Engine string
	// ValFraction is the share of RICORD's patients in the tuning set and
	// SplitSeed the seed of that split.
	ValFraction float64
	SplitSeed   uint64
	// TauMM is the NSD tolerance in mm.
	TauMM float64
	// Threads are ONNX Runtime's threads; 0 means one per core.
	Threads int
	// TTA averages over the 8 mirrorings.
	TTA bool
	// Log receives the progress of the data preparation and training
	// (stdout in the command, stderr with --json); Progress the
	// segmentation's progress bar and failures (stderr). nil discards.
	Log, Progress io.Writer
}

// DefaultReproduceOptions are the command's defaults.
func DefaultReproduceOptions() ReproduceOptions {
	return ReproduceOptions{
		Out: "covseg-reproduce", Engine: infer.EngineORT,
		ValFraction: dataset.DefaultSplit.Val, SplitSeed: dataset.DefaultSplit.Seed, TauMM: 1,
	}
}

func (f ReproduceOptions) check() error {
	if (f.RICORD == "") != (f.RICORDAnnotations == "") {
		return errors.New("reproduce: --ricord and --ricord-annotations go together")
	}
	if f.Model == "" && f.RICORD == "" {
		return errors.New("reproduce: training needs RICORD (--ricord and --ricord-annotations), or give a trained --model")
	}
	if f.RICORD == "" && f.Coronacases == "" && f.MosMed == "" {
		return errors.New("reproduce: name at least one data set")
	}
	if f.Model != "" && f.Config != "" {
		return errors.New("reproduce: --config configures training, which --model skips")
	}
	if !(f.ValFraction > 0 && f.ValFraction < 1) {
		return fmt.Errorf("reproduce: --val-fraction %v: want a fraction between 0 and 1", f.ValFraction)
	}
	if !(f.TauMM >= 0) || f.TauMM > 1000 {
		return fmt.Errorf("reproduce: --tau %v: want 0 to 1000 mm", f.TauMM)
	}
	if f.Engine != infer.EngineORT && f.Engine != infer.EngineGoMLX {
		return fmt.Errorf("reproduce: --engine %q: want %s or %s", f.Engine, infer.EngineORT, infer.EngineGoMLX)
	}
	return nil
}

// Reproduce runs Bressem et al. 2021's protocol on the data sets o names:
// it prepares the data and OUT/manifest.csv, trains with the paper's recipe
// into OUT/run unless o.Model names a model, segments the RICORD tuning
// cases and the test sets into OUT/pred/DATASET/, compares each mask with
// its truth, and writes the table as OUT/results.md, OUT/results.json and
// OUT/cases.csv. The result is also returned, to print.
func Reproduce(ctx context.Context, f ReproduceOptions) (*ReproduceResult, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	start := time.Now()
	log := f.Log
	if log == nil {
		log = io.Discard
	}
	progress := f.Progress
	if progress == nil {
		progress = io.Discard
	}
	if err := os.MkdirAll(f.Out, 0o755); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	m, err := reproduceManifest(f, log)
	if err != nil {
		return nil, err
	}
	res := &ReproduceResult{Version: Version, Manifest: filepath.Join(f.Out, "manifest.csv"), TauMM: f.TauMM}
	if err := dataset.WriteManifest(res.Manifest, m); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	PrintSplits(log, m)

	res.Model = f.Model
	if res.Model == "" {
		tr, err := reproduceTrain(ctx, f, res.Manifest, log)
		if err != nil {
			return nil, err
		}
		res.Model, res.Training = tr.model, tr
	} else {
		res.Training = &ReproduceTraining{Skipped: "--model " + f.Model}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reproduce: interrupted: %w", err)
	}
	if err := reproduceEvaluate(ctx, f, m, res, progress); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	if err := res.writeFiles(f.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// reproduceManifest prepares the data: RICORD converted (or reused) and
// split by patient into train and val, Coronacases and MosMedData as test
// sets.
func reproduceManifest(f ReproduceOptions, log io.Writer) (*dataset.Manifest, error) {
	var parts []*dataset.Manifest
	if f.RICORD != "" {
		m, err := reproduceRICORD(f, log)
		if err != nil {
			return nil, err
		}
		parts = append(parts, m)
	}
	if f.Coronacases != "" {
		m, err := dataset.DiscoverCoronacases(f.Coronacases, dataset.DiscoverOptions{})
		if err != nil {
			return nil, fmt.Errorf("reproduce: %w", err)
		}
		parts = append(parts, m)
	}
	if f.MosMed != "" {
		m, err := dataset.DiscoverMosMed(f.MosMed, dataset.DiscoverOptions{})
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
		Val: f.ValFraction, Seed: f.SplitSeed,
		Whole: map[string]dataset.Split{dataset.Coronacases: dataset.Test, dataset.MosMed: dataset.Test},
	}
	if err := dataset.AssignSplits(all.Entries, split); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	return all, nil
}

// reproduceRICORD converts RICORD into OUT/data/ricord, or reads the
// conversion a previous run left there.
func reproduceRICORD(f ReproduceOptions, log io.Writer) (*dataset.Manifest, error) {
	dir := filepath.Join(f.Out, "data", "ricord")
	if _, err := os.Stat(filepath.Join(dir, "manifest.csv")); err == nil {
		fmt.Fprintf(log, "RICORD: reusing the conversion in %s (delete it to convert again)\n", dir)
		m, err := dataset.DiscoverPairs(dir, dataset.RICORD)
		if err != nil {
			return nil, fmt.Errorf("reproduce: %w", err)
		}
		return m, nil
	}
	fmt.Fprintf(log, "RICORD: converting %s with %s into %s\n", f.RICORD, f.RICORDAnnotations, dir)
	res, err := dataset.ConvertRICORD(dataset.RICORDOptions{
		DICOM: f.RICORD, Annotations: f.RICORDAnnotations, Out: dir, KeepGoing: true,
		Split: dataset.SplitConfig{Val: f.ValFraction, Seed: f.SplitSeed},
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

// ReproduceTraining says how the model was trained.
type ReproduceTraining struct {
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
func reproduceTrain(ctx context.Context, f ReproduceOptions, manifest string, log io.Writer) (*ReproduceTraining, error) {
	start := time.Now()
	dir := filepath.Join(f.Out, "run")
	cfg := train.DefaultConfig()
	var err error
	if f.Config != "" {
		if cfg, err = train.ReadConfig(f.Config); err != nil {
			return nil, err
		}
		if cfg, err = AbsConfigPaths(cfg, f.Config); err != nil {
			return nil, err
		}
	}
	if cfg.Data.Manifest != "" {
		fmt.Fprintf(log, "note: the config's data.manifest %s is replaced by %s\n", cfg.Data.Manifest, manifest)
	}
	if cfg.Data.Manifest, err = filepath.Abs(manifest); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	tr := &ReproduceTraining{Run: dir, Config: filepath.Join(dir, train.FileConfig)}
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
	trainSrc, valSrc, err := LoadTrainData(cfg, dir, log)
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
		return nil, fmt.Errorf("reproduce: %w (run covseg reproduce again with the same arguments to resume)", ErrInterrupted)
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
func reproduceEngine(f ReproduceOptions, res *ReproduceResult, log io.Writer) (infer.Engine, error) {
	path := res.Model
	if f.Engine == infer.EngineORT && !strings.HasSuffix(strings.ToLower(path), ".onnx") {
		onnxPath := filepath.Join(f.Out, "model.onnx")
		if _, err := infer.ExportCheckpoint(path, onnxPath, Version, onnx.Options{}); err != nil {
			return nil, fmt.Errorf("reproduce: %w", err)
		}
		fmt.Fprintf(log, "exported %s to %s\n", path, onnxPath)
		res.ONNX, path = onnxPath, onnxPath
	}
	threads := f.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	eng, err := infer.OpenEngine(path, infer.EngineOptions{Kind: f.Engine, Threads: threads, Version: Version})
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
func reproduceEvaluate(ctx context.Context, f ReproduceOptions, m *dataset.Manifest, res *ReproduceResult, stderr io.Writer) error {
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
	opts.TTA = f.TTA
	seg, err := infer.New(eng, opts)
	if err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	res.Engine, res.Mode, res.TTA = eng.Name(), seg.Mode(), f.TTA
	var todo []dataset.Entry
	for _, e := range m.Entries {
		if e.Mask != "" && ((e.Dataset == dataset.RICORD && e.Split == dataset.Val) || e.Split == dataset.Test) {
			todo = append(todo, e)
		}
	}
	bar := progress.New(stderr, "segment", len(todo))
	defer bar.Finish()
	byName := map[string]*ReproduceRow{}
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
func reproduceCase(seg *infer.Segmenter, e dataset.Entry, f ReproduceOptions) metrics.CaseResult {
	taus := []float64{f.TauMM}
	sc := segCase{name: e.Case, in: e.Image, stem: filepath.Join(f.Out, "pred", e.Dataset, e.Case)}
	sc.mask = sc.stem + "_mask.nii.gz"
	r, pred, err := reproduceCompare(seg, e, sc, taus)
	c := metrics.NewCaseResult(e.Case, r, err, taus)
	c.Dataset, c.Split, c.Image, c.Truth, c.Pred = e.Dataset, string(e.Split), e.Image, e.Mask, pred
	return c
}

// reproduceCompare segments one case into sc's mask and compares it with
// the truth; pred is the mask's path once written.
func reproduceCompare(seg *infer.Segmenter, e dataset.Entry, sc segCase, taus []float64) (r *metrics.Result, pred string, err error) {
	if err := os.MkdirAll(filepath.Dir(sc.mask), 0o755); err != nil {
		return nil, "", err
	}
	out, _, _, err := segmentCase(seg, sc, outputs{})
	if err != nil {
		return nil, "", err
	}
	truth, err := readMask(e.Mask, 0)
	if err != nil {
		return nil, sc.mask, err
	}
	r, err = metrics.Compare(truth, out.Infiltrate, metrics.Options{Taus: taus})
	if err != nil {
		return nil, sc.mask, fmt.Errorf("%s against %s: %v", sc.mask, e.Mask, err)
	}
	return r, sc.mask, nil
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
