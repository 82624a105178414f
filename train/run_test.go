package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/covseg/covseg/model"
)

// runConfig is tinyConfig with accumulation over 2 batches (so an
// interruption can fall inside a window), clipping and every epoch kept.
func runConfig() Config {
	cfg := tinyConfig()
	cfg.Optimizer.Accumulate = 2
	cfg.Optimizer.ClipGradNorm = 1
	cfg.Checkpoint.KeepEpochs = -1
	// Precise BatchNorm statistics before each validation: resuming must
	// recompute the same ones.
	cfg.BatchNorm.PreciseBatches = 2
	return cfg
}

// runTiny trains runConfig on 3 training and 2 validation cases in dir,
// cancelling the context after the step numbered stopAt (0: never). It
// returns the steps it trained and the result.
func runTiny(t *testing.T, dir string, resume bool, stopAt int64) ([]StepRecord, *Result, string) {
	t.Helper()
	tr, val := tinySources(t, 3, 11)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var steps []StepRecord
	var log bytes.Buffer
	res, err := Run(ctx, Options{
		Config: runConfig(), Dir: dir, Resume: resume, Backend: testBackend(),
		Train: tr, Val: val, Log: &log,
		OnStep: func(r StepRecord) {
			steps = append(steps, r)
			if r.Step == stopAt {
				cancel()
			}
		},
	})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	return steps, res, log.String()
}

// modelValues reads every variable of a checkpoint as float32 values
// (optimiser state included), keyed by scope and name.
func modelValues(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	_, ctx, _, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if v.Scope() == ScopeRun {
			continue
		}
		out[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](v.MustValue())
	}
	return out
}

// TestResumeExact: a run interrupted twice — inside an accumulation window
// of phase 1, then at the first batch of phase 2 — and resumed each time
// trains exactly the steps of an uninterrupted run: the same losses,
// learning rates, β1 and gradient norms, bit for bit, and ends with the
// same weights and optimiser state, bit for bit. Bit-exactness holds
// because the resumed process rebuilds the same graphs on the same backend
// from the exact float32 bits of the checkpoint and the batch position,
// and the CPU backend's kernels are deterministic; a GPU backend with
// non-deterministic reductions would only agree to rounding.
func TestResumeExact(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	full, resA, _ := runTiny(t, dirA, false, 0)
	if resA.Interrupted || len(full) != 6 {
		t.Fatalf("uninterrupted run: interrupted %v after %d steps", resA.Interrupted, len(full))
	}

	part1, res, log := runTiny(t, dirB, false, 1)
	if !res.Interrupted || res.State.Step != 1 || res.State.Batch != 1 {
		t.Fatalf("first stop: interrupted %v at step %d batch %d", res.Interrupted, res.State.Step, res.State.Batch)
	}
	if !strings.Contains(log, "--resume "+dirB) {
		t.Errorf("the log does not say how to resume:\n%s", log)
	}
	part2, res, _ := runTiny(t, dirB, true, 4)
	if !res.Interrupted || res.State.Step != 4 || res.State.Phase != 1 {
		t.Fatalf("second stop: interrupted %v at step %d phase %d", res.Interrupted, res.State.Step, res.State.Phase)
	}
	part3, res, _ := runTiny(t, dirB, true, 0)
	if res.Interrupted || !res.State.Done(runConfig()) {
		t.Fatalf("resumed run did not finish: %+v", res.State)
	}
	resumed := slices.Concat(part1, part2, part3)
	if len(resumed) != len(full) {
		t.Fatalf("resumed run trained %d steps, the uninterrupted one %d", len(resumed), len(full))
	}
	for i := range full {
		if resumed[i] != full[i] {
			t.Errorf("step %d: resumed %+v, uninterrupted %+v", i+1, resumed[i], full[i])
		}
	}
	a, b := modelValues(t, filepath.Join(dirA, FileLast)), modelValues(t, filepath.Join(dirB, FileLast))
	if len(a) != len(b) {
		t.Fatalf("%d and %d variables", len(a), len(b))
	}
	for name, va := range a {
		if !slices.Equal(va, b[name]) {
			t.Errorf("%s differs after resuming", name)
		}
	}
	// The metrics agree too, but for the times.
	_, _, stA, _ := ReadCheckpoint(filepath.Join(dirA, FileLast))
	_, _, stB, _ := ReadCheckpoint(filepath.Join(dirB, FileLast))
	for i := range stA.History {
		ra, rb := stA.History[i], stB.History[i]
		ra.Seconds, rb.Seconds = 0, 0
		if !reflect.DeepEqual(ra, rb) {
			t.Errorf("epoch %d: %+v vs %+v", i+1, ra, rb)
		}
	}
	// steps.jsonl of the resumed run holds each step once.
	if la, lb := readLines(t, filepath.Join(dirA, FileSteps)), readLines(t, filepath.Join(dirB, FileSteps)); !slices.Equal(la, lb) {
		t.Errorf("steps.jsonl differs:\n%s\nvs\n%s", strings.Join(la, "\n"), strings.Join(lb, "\n"))
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestRunFolder checks the files a finished run leaves and how the folder
// is guarded.
func TestRunFolder(t *testing.T) {
	dir := t.TempDir()
	_, res, log := runTiny(t, dir, false, 0)
	cfg := runConfig()

	// config.yaml reads back as the run's config.
	got, err := ReadConfig(filepath.Join(dir, FileConfig))
	if err != nil || !reflect.DeepEqual(got, cfg) {
		t.Errorf("config.yaml: %v\n%+v\nwant %+v", err, got, cfg)
	}
	// last.ckpt: finished, with optimiser state.
	_, ctx, st, err := ReadCheckpoint(filepath.Join(dir, FileLast))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done(cfg) || st.Step != 6 || st.Update != 4 || len(st.History) != 2 || !reflect.DeepEqual(st, res.State) {
		t.Errorf("last.ckpt state %+v", st)
	}
	if ctx.GetVariableByScopeAndName(ScopeMoment2, "out.0.weight") == nil || ctx.GetVariableByScopeAndName(ScopeAccum, "out.0.weight") == nil {
		t.Error("last.ckpt lacks the optimiser state")
	}
	// best.ckpt: the network and its state, no optimiser.
	_, best, bst, err := ReadCheckpoint(filepath.Join(dir, FileBest))
	if err != nil {
		t.Fatal(err)
	}
	for v := range best.IterVariables() {
		if v.Scope() != model.Scope && v.Scope() != ScopeRun {
			t.Errorf("best.ckpt holds %s", v.ScopeAndName())
			break
		}
	}
	if bst.BestEpoch < 1 || !st.History[bst.BestEpoch-1].Best {
		t.Errorf("best.ckpt from epoch %d, history %+v", bst.BestEpoch, st.History)
	}
	for _, e := range []int{1, 2} {
		if _, err := os.Stat(filepath.Join(dir, epochFile(e))); err != nil {
			t.Error(err)
		}
	}
	// Metrics: one JSON line per epoch, a CSV with a header, one step line
	// per batch, a PNG.
	var recs []EpochRecord
	for _, line := range readLines(t, filepath.Join(dir, FileMetricsJSON)) {
		var r EpochRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 || recs[0].ValDice == nil || recs[1].Phase != "unfrozen" || recs[1].Steps != 6 || recs[0].ValCases != 2 {
		t.Errorf("metrics.jsonl: %+v", recs)
	}
	f, err := os.Open(filepath.Join(dir, FileMetricsCSV))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 3 || rows[0][5] != "val_dice" || rows[2][0] != "2" {
		t.Errorf("metrics.csv: %v %v", rows, err)
	}
	if n := len(readLines(t, filepath.Join(dir, FileSteps))); n != 6 {
		t.Errorf("steps.jsonl has %d lines, want 6", n)
	}
	pf, err := os.Open(filepath.Join(dir, FileCurves))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(pf)
	pf.Close()
	if err != nil || img.Bounds().Dx() < 100 {
		t.Errorf("curves.png: %v", err)
	}
	if !strings.Contains(log, "epoch 2/2 (unfrozen 1): train loss") || !strings.Contains(log, "val Dice") {
		t.Errorf("no epoch summary in the log:\n%s", log)
	}
	// No leftover temporary files.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}

	// A new run into the folder is refused; resuming the finished run does
	// nothing; a changed config cannot resume.
	tr, val := tinySources(t, 3, 11)
	if _, err := Run(context.Background(), Options{Config: cfg, Dir: dir, Backend: testBackend(), Train: tr, Val: val}); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("second run into %s: %v", dir, err)
	}
	r2, err := Run(context.Background(), Options{Config: cfg, Dir: dir, Resume: true, Backend: testBackend(), Train: tr, Val: val})
	if err != nil || r2.State.Step != 6 {
		t.Errorf("resuming a finished run: %v", err)
	}
	other := cfg
	other.Optimizer.WeightDecay = 0.5
	if _, err := Run(context.Background(), Options{Config: other, Dir: dir, Resume: true, Backend: testBackend(), Train: tr, Val: val}); err == nil || !strings.Contains(err.Error(), "config differs") {
		t.Errorf("resuming with another config: %v", err)
	}
}

// TestInterruptBeforeStart: a context cancelled before the first batch
// (Ctrl-C during start-up) still leaves a resumable last.ckpt at step 0.
func TestInterruptBeforeStart(t *testing.T) {
	dir := t.TempDir()
	tr, val := tinySources(t, 3, 11)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, Options{Config: runConfig(), Dir: dir, Backend: testBackend(), Train: tr, Val: val})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.State.Step != 0 {
		t.Fatalf("result %+v", res)
	}
	_, _, st, err := ReadCheckpoint(filepath.Join(dir, FileLast))
	if err != nil || st.Step != 0 || st.Phase != 0 {
		t.Fatalf("last.ckpt: %+v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileMetricsJSON)); !os.IsNotExist(err) {
		t.Errorf("metrics written without a finished epoch: %v", err)
	}
}

// TestMemorySource: epochs are permutations drawn from (seed, epoch), the
// same whenever asked, and skipping starts at the right batch.
func TestMemorySource(t *testing.T) {
	cases := tinyCases(5, 9)
	s, err := NewMemorySource(cases, 2, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len %d, want 3", s.Len())
	}
	if !slices.Equal(s.Order(4), s.Order(4)) || slices.Equal(s.Order(4), s.Order(5)) && slices.Equal(s.Order(5), s.Order(6)) {
		t.Error("orders are not a function of the epoch")
	}
	order := s.Order(4)
	b, err := s.Epoch(context.Background(), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	first, err := b.Next(context.Background())
	if err != nil || first.Shape[0] != 1 || first.Cases[0] != cases[order[4]].Name {
		t.Errorf("after skipping 2 batches: %v %v, want case %s", first.Cases, err, cases[order[4]].Name)
	}
	if _, err := b.Next(context.Background()); err == nil {
		t.Error("no end of epoch")
	}
	if _, err := NewMemorySource([]Case{{Name: "x", Grid: [3]int{2, 2, 2}, Image: make([]float32, 7), Mask: make([]uint8, 8)}}, 1, false, 0); err == nil {
		t.Error("a case with too few values accepted")
	}
}

// TestPruneEpochFiles keeps the most recent epoch checkpoints.
func TestPruneEpochFiles(t *testing.T) {
	dir := t.TempDir()
	for _, e := range []int{1, 2, 10, 3} {
		os.WriteFile(filepath.Join(dir, epochFile(e)), nil, 0o644)
	}
	if err := pruneEpochFiles(dir, 2); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "epoch_*.ckpt"))
	if len(names) != 2 || filepath.Base(names[0]) != "epoch_003.ckpt" || filepath.Base(names[1]) != "epoch_010.ckpt" {
		t.Errorf("kept %v", names)
	}
}

// TestResumeWithoutCheckpoint: resuming a folder that holds no last.ckpt (a
// run killed before its first checkpoint) says so and how to start again,
// instead of a bare "no such file or directory".
func TestResumeWithoutCheckpoint(t *testing.T) {
	dir := t.TempDir()
	tr, val := tinySources(t, 3, 11)
	_, err := Run(context.Background(), Options{Config: runConfig(), Dir: dir, Resume: true, Backend: testBackend(), Train: tr, Val: val})
	if err == nil || !strings.Contains(err.Error(), "holds no last.ckpt") || !strings.Contains(err.Error(), "covseg train --config") {
		t.Errorf("resuming a folder without a checkpoint: %v", err)
	}
}

// TestRunUntil: a run budgeted by the clock ends after the epoch during
// which its time runs out, its schedule then complete (a budget already
// spent: one epoch, every update at the schedule's final learning rate);
// with time to spare the phase's epochs cap it and the schedule follows
// the updates, as without a budget. Several phases, or resuming, are
// refused.
func TestRunUntil(t *testing.T) {
	cfg := tinyConfig()
	cfg.Phases = []Phase{{Name: "only", Epochs: 3, LR: 1e-2, EncoderLRMult: 1}}
	run := func(until time.Time) ([]StepRecord, *Result, string) {
		t.Helper()
		tr, val := tinySources(t, 3, 11)
		var steps []StepRecord
		var log bytes.Buffer
		dir := t.TempDir()
		res, err := Run(context.Background(), Options{
			Config: cfg, Dir: dir, Backend: testBackend(), Train: tr, Val: val, Log: &log, Until: until,
			OnStep: func(r StepRecord) { steps = append(steps, r) },
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		_, _, st, err := ReadCheckpoint(filepath.Join(dir, FileLast))
		if err != nil || !st.Done(cfg) || len(st.History) != len(res.State.History) {
			t.Fatalf("last.ckpt: done %v, %d epochs, want %d: %v", st.Done(cfg), len(st.History), len(res.State.History), err)
		}
		return steps, res, log.String()
	}

	steps, res, log := run(time.Now().Add(-time.Second))
	final := cfg.Phases[0].LR / cfg.Schedule.DivFinal
	if res.Interrupted || !res.State.Done(cfg) || len(res.State.History) != 1 || len(steps) != 3 {
		t.Fatalf("spent budget: interrupted %v, done %v, %d epochs, %d steps; want one epoch of 3 steps\n%s",
			res.Interrupted, res.State.Done(cfg), len(res.State.History), len(steps), log)
	}
	for _, s := range steps {
		if relErr(s.LR, final) > 1e-9 {
			t.Errorf("spent budget: step %d at lr %g, want the final %g", s.Step, s.LR, final)
		}
	}
	if !strings.Contains(log, "schedule is complete after 1 of at most 3 epochs") {
		t.Errorf("log does not say the budget ended the schedule:\n%s", log)
	}

	steps, res, _ = run(time.Now().Add(time.Hour))
	if len(res.State.History) != 3 || len(steps) != 9 {
		t.Fatalf("ample budget: %d epochs, %d steps; want the cap, 3 epochs of 3", len(res.State.History), len(steps))
	}
	sched := OneCycle{ScheduleConfig: cfg.Schedule, LRMax: cfg.Phases[0].LR}
	for i, s := range steps {
		want, _ := sched.At(position(int64(i), 9))
		// The clock is at most a fraction of a per cent into the hour.
		if relErr(s.LR, want) > 0.02 {
			t.Errorf("ample budget: step %d at lr %g, want the updates' %g", s.Step, s.LR, want)
		}
	}

	r := &runner{opt: Options{Until: time.Now().Add(10 * time.Second)}, t0: time.Now().Add(-10 * time.Second)}
	if p := r.clockPosition(); p < 0.49 || p > 0.51 {
		t.Errorf("half the budget spent: position %g", p)
	}
	two := tinyConfig()
	tr, val := tinySources(t, 3, 11)
	for _, o := range []Options{
		{Config: two, Dir: t.TempDir(), Backend: testBackend(), Train: tr, Val: val, Until: time.Now()},
		{Config: cfg, Dir: t.TempDir(), Backend: testBackend(), Train: tr, Val: val, Until: time.Now(), Resume: true},
	} {
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "single phase") {
			t.Errorf("phases %d, resume %v: err %v", len(o.Config.Phases), o.Resume, err)
		}
	}
}

// TestValidationEvery checks validation.every: with 2, a phase of 5 epochs
// validates after epochs 2, 4 and 5 (its last), and the next phase's
// single epoch too; a clock-budgeted run validates the epoch that ends it.
func TestValidationEvery(t *testing.T) {
	cfg := tinyConfig()
	cfg.Validation.Every = 2
	cfg.Phases = []Phase{{Name: "a", Epochs: 5, LR: 1e-2, EncoderLRMult: 1}, {Name: "b", Epochs: 1, LR: 1e-3, EncoderLRMult: 1}}
	run := func(cfg Config, until time.Time) []EpochRecord {
		t.Helper()
		tr, val := tinySources(t, 2, 11)
		var log bytes.Buffer
		res, err := Run(context.Background(), Options{
			Config: cfg, Dir: t.TempDir(), Backend: testBackend(), Train: tr, Val: val, Log: &log, Until: until,
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		return res.State.History
	}
	validated := func(h []EpochRecord) []int {
		var e []int
		for _, r := range h {
			if r.ValDice != nil {
				e = append(e, r.Epoch)
			}
		}
		return e
	}
	if got, want := validated(run(cfg, time.Time{})), []int{2, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("validated epochs %v, want %v", got, want)
	}
	one := cfg
	one.Validation.Every = 4
	one.Phases = cfg.Phases[:1]
	if got, want := validated(run(one, time.Now().Add(-time.Second))), []int{1}; !slices.Equal(got, want) {
		t.Errorf("spent clock budget: validated epochs %v, want %v (the one that ends the run)", got, want)
	}
	// The clock passes Until while an epoch that skipped validation saves
	// (OnEpoch sleeps past it): the run ends there and validates it.
	late := one
	late.Validation.Every = 100
	until := time.Now().Add(3 * time.Second)
	tr, val := tinySources(t, 2, 11)
	var log bytes.Buffer
	res, err := Run(context.Background(), Options{
		Config: late, Dir: t.TempDir(), Backend: testBackend(), Train: tr, Val: val, Log: &log, Until: until,
		OnEpoch: func(rec EpochRecord) {
			if rec.ValDice == nil {
				time.Sleep(time.Until(until) + 10*time.Millisecond)
			}
		},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	h := res.State.History
	if len(h) == 0 || h[len(h)-1].ValDice == nil || res.State.BestEpoch != len(h) {
		t.Errorf("clock passed while saving: %d epochs, last validated %v, best epoch %d; want the last validated and best\n%s",
			len(h), len(h) > 0 && h[len(h)-1].ValDice != nil, res.State.BestEpoch, log.String())
	}

	bad := cfg
	bad.Validation.Every = -1
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "validation.every") {
		t.Errorf("validation.every -1: %v", err)
	}
}
