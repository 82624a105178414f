package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/backends"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/internal/progress"
	"github.com/covseg/covseg/model"
)

// Options configure Run.
type Options struct {
	// Config is the run's configuration. On Resume it must be the config
	// the run was started with (config.yaml in Dir).
	Config Config
	// Dir is the run folder. A new run refuses a folder that already holds
	// a checkpoint.
	Dir string
	// Resume continues the run in Dir from its last.ckpt.
	Resume bool
	// Backend runs the computation; nil means NewBackend(Config.Backend.Name).
	Backend backends.Backend
	// Train yields the training batches, Val the validation cases (each
	// item of a validation batch is one case). Val may be nil: then no
	// validation metrics and no best.ckpt.
	Train, Val Source
	// Log receives the progress bar and one summary line per epoch; nil
	// discards them.
	Log io.Writer
	// OnStep, if set, is called after every trained batch.
	OnStep func(StepRecord)
	// OnEpoch, if set, is called after every epoch's checkpoint is saved.
	OnEpoch func(EpochRecord)
	// Until, when not zero, budgets the run by the clock, so that it uses
	// a time budget fully on any machine (covseg demo): the one-cycle
	// schedule advances with the time elapsed since Run started, as a
	// fraction of the time to Until, whenever that is ahead of the updates
	// done, and the run ends after the epoch during which Until passes,
	// its schedule then complete. The phase's epochs are only a cap. It
	// needs a single phase, and such a run can't be resumed exactly (its
	// schedule depends on the clock), so Resume refuses it.
	Until time.Time
}

// Result is how a call to Run ended.
type Result struct {
	// State is the state saved last (in Dir/last.ckpt).
	State State
	// Interrupted is set when the context was cancelled: last.ckpt holds
	// the position reached, and Run with Resume continues from it.
	Interrupted bool
}

// runner holds one call of Run.
type runner struct {
	opt     Options
	cfg     Config
	dir     string
	log     io.Writer
	mcfg    model.Config
	ctx     *mlctx.Context
	eng     *Engine
	st      State
	steps   *stepLog
	started time.Time // start of the current stretch of training time
	t0      time.Time // when Run started (Options.Until's schedule)
}

// Run trains a model as opt.Config says, writing checkpoints, metrics and
// curves into opt.Dir (see the package documentation). Cancelling ctx
// (Ctrl-C) stops it cleanly after the current batch: it saves last.ckpt
// and returns with Result.Interrupted set and a nil error.
func Run(ctx context.Context, opt Options) (*Result, error) {
	if err := opt.Config.Validate(); err != nil {
		return nil, err
	}
	if opt.Train == nil || opt.Train.Len() < 1 {
		return nil, errors.New("train: no training batches")
	}
	if !opt.Until.IsZero() && (len(opt.Config.Phases) != 1 || opt.Resume) {
		return nil, errors.New("train: a run budgeted by the clock (Until) needs a single phase and can't be resumed")
	}
	r := &runner{opt: opt, cfg: opt.Config, dir: opt.Dir, log: opt.Log, t0: time.Now()}
	if r.log == nil {
		r.log = io.Discard
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	defer r.steps.close()
	if opt.Backend == nil {
		b, err := NewBackend(r.cfg.Backend.Name)
		if err != nil {
			return nil, err
		}
		opt.Backend = b
	}
	eng, err := NewEngine(opt.Backend, r.ctx, r.mcfg, r.cfg)
	if err != nil {
		return nil, err
	}
	r.eng = eng
	res, err := r.loop(ctx)
	if cerr := r.steps.close(); err == nil && cerr != nil {
		err = cerr
	}
	return res, err
}

// open prepares the run folder and the model: a new one, or the state of
// last.ckpt when resuming.
func (r *runner) open() error {
	if r.dir == "" {
		return errors.New("train: no run folder")
	}
	last := filepath.Join(r.dir, FileLast)
	hash := r.cfg.hash()
	if r.opt.Resume {
		mcfg, ctx, st, err := ReadCheckpoint(last)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("train: cannot resume %s: it holds no %s (the run stopped or was killed before its first checkpoint, or this is not a run folder); start it again with: covseg train --config %s -o %s",
				r.dir, FileLast, filepath.Join(r.dir, FileConfig), r.dir)
		}
		if err != nil {
			return fmt.Errorf("train: resuming %s: %w", r.dir, err)
		}
		if st.ConfigSHA256 != hash {
			return fmt.Errorf("train: resuming %s: the config differs from the one %s was trained with (edited %s?); an exact resume needs the same config", r.dir, last, FileConfig)
		}
		r.mcfg, r.ctx, r.st = mcfg, ctx, st
		steps, err := openStepLog(r.dir, st.Step)
		if err != nil {
			return err
		}
		r.steps = steps
		return nil
	}
	if _, err := os.Stat(last); err == nil {
		return fmt.Errorf("train: %s already holds a run (%s): resume it or choose another folder", r.dir, FileLast)
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	y, err := r.cfg.YAML()
	if err != nil {
		return err
	}
	err = atomicfile.Write(filepath.Join(r.dir, FileConfig), func(w io.Writer) error {
		_, err := w.Write(y)
		return err
	})
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	mcfg, ctx, err := NewModel(r.cfg)
	if err != nil {
		return err
	}
	r.mcfg, r.ctx = mcfg, ctx
	r.st = State{Version: stateVersion, ConfigSHA256: hash}
	steps, err := openStepLog(r.dir, -1)
	if err != nil {
		return err
	}
	r.steps = steps
	return nil
}

// NewModel creates the model a new run starts from: cfg.Model.Init's
// network variables, or a new network of cfg.Model.Width and Classes
// seeded by cfg.Seed with the encoder from cfg.Model.Pretrained. The
// model config records the data's grid and HU window.
func NewModel(cfg Config) (model.Config, *mlctx.Context, error) {
	var (
		mcfg model.Config
		ctx  *mlctx.Context
		err  error
	)
	if cfg.Model.Init != "" {
		if mcfg, ctx, err = model.Load(cfg.Model.Init); err != nil {
			return model.Config{}, nil, fmt.Errorf("train: model.init: %w", err)
		}
		var others []*mlctx.Variable
		for v := range ctx.IterVariables() {
			if v.Scope() != model.Scope {
				others = append(others, v)
			}
		}
		for _, v := range others {
			if err := ctx.DeleteVariable(v.Scope(), v.Name()); err != nil {
				return model.Config{}, nil, fmt.Errorf("train: model.init: %w", err)
			}
		}
	} else {
		mcfg = model.DefaultConfig()
		mcfg.Width, mcfg.Classes = cfg.Model.Width, cfg.Model.Classes
		mcfg.ClassNames = cfg.Model.classNames()
		mcfg.Encoder.Seed = cfg.Seed
		if ctx, err = model.NewContext(mcfg, cfg.Seed); err != nil {
			return model.Config{}, nil, fmt.Errorf("train: %w", err)
		}
		if cfg.Model.Pretrained != "" {
			if err := model.LoadPretrainedEncoder(ctx, &mcfg, cfg.Model.Pretrained); err != nil {
				return model.Config{}, nil, fmt.Errorf("train: model.pretrained: %w", err)
			}
		}
	}
	mcfg.Preprocess = cfg.Data.Preprocess.Spec(cfg.TotalEpochs() - 1)
	if err := mcfg.Validate(); err != nil {
		return model.Config{}, nil, fmt.Errorf("train: %w", err)
	}
	return mcfg, ctx, nil
}

// loop trains from r.st to the end or to an interruption.
func (r *runner) loop(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	if r.st.Done(cfg) {
		fmt.Fprintf(r.log, "%s: the run is already finished (%d epochs)\n", r.dir, cfg.TotalEpochs())
		return &Result{State: r.st}, nil
	}
	for !r.st.Done(cfg) {
		if err := r.eng.SetPhase(r.st.Phase); err != nil {
			return nil, err
		}
		if r.st.Epoch == 0 && r.st.Batch == 0 && r.st.Phase > 0 && cfg.Optimizer.ResetEachPhase {
			// Idempotent: a run resumed at the start of a phase resets again.
			if err := r.eng.ResetOptimizer(); err != nil {
				return nil, err
			}
		}
		interrupted, err := r.epoch(ctx)
		if err != nil {
			return nil, err
		}
		if interrupted {
			if err := r.saveLast(); err != nil {
				return nil, err
			}
			fmt.Fprintf(r.log, "interrupted: saved %s at epoch %d, batch %d (step %d); continue with --resume %s\n",
				filepath.Join(r.dir, FileLast), r.st.GlobalEpoch(cfg)+1, r.st.Batch, r.st.Step, r.dir)
			return &Result{State: r.st, Interrupted: true}, nil
		}
		if !r.st.Done(cfg) && r.clockPosition() >= 1 {
			// The budget's schedule ended in the epoch just saved.
			if err := r.validateLast(ctx); err != nil {
				return nil, err
			}
			r.st.Phase, r.st.Epoch = len(cfg.Phases), 0
			if err := r.saveLast(); err != nil {
				return nil, err
			}
			fmt.Fprintf(r.log, "the time budget's schedule is complete after %d of at most %d epochs\n", len(r.st.History), cfg.TotalEpochs())
		}
	}
	fmt.Fprintf(r.log, "finished %d epochs; best validation Dice %.4f at epoch %d\n", len(r.st.History), r.st.BestDice, r.st.BestEpoch)
	return &Result{State: r.st}, nil
}

// validateLast validates the epoch just saved if it skipped validation
// (validation.every) although the clock has ended the run: the budget ran
// out while that epoch saved, after it had decided not to validate. The
// run's last epoch always validates, with its BatchNorm statistics
// recomputed, since that is the network a clock-budgeted run leaves.
func (r *runner) validateLast(ctx context.Context) error {
	i := len(r.st.History) - 1
	if i < 0 || r.st.History[i].ValDice != nil {
		return nil
	}
	rec := r.st.History[i]
	if err := r.preciseBN(ctx, rec.Epoch-1); err != nil || ctx.Err() != nil {
		return err
	}
	val, cases, loss, err := r.validate(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	r.recordValidation(&rec, val, cases, loss)
	r.st.History[i] = rec
	return r.endEpoch(rec)
}

// recordValidation puts an epoch's validation figures in rec (none when no
// case was validated) and makes it the best epoch when its Dice is.
func (r *runner) recordValidation(rec *EpochRecord, dice float64, cases int, loss float64) {
	if cases == 0 {
		return
	}
	rec.ValCases, rec.ValDice = cases, &dice
	if finite(loss) {
		rec.ValLoss = &loss
	}
	if r.st.BestEpoch == 0 || dice > r.st.BestDice {
		r.st.BestDice, r.st.BestEpoch, rec.Best = dice, rec.Epoch, true
	}
}

// clockPosition is the fraction of Options.Until's budget spent since Run
// started, in [0, 1]; 0 when the run has no such budget.
func (r *runner) clockPosition() float64 {
	if r.opt.Until.IsZero() {
		return 0
	}
	total := r.opt.Until.Sub(r.t0)
	if total <= 0 {
		return 1
	}
	return min(1, float64(time.Since(r.t0))/float64(total))
}

// epoch trains the rest of the current epoch, validates, records and
// saves. It reports an interruption (nothing saved yet) instead of
// finishing.
func (r *runner) epoch(ctx context.Context) (interrupted bool, err error) {
	cfg := r.cfg
	ph := cfg.Phases[r.st.Phase]
	ge := r.st.GlobalEpoch(cfg)
	total := cfg.TotalEpochs()
	n := r.opt.Train.Len()
	label := fmt.Sprintf("epoch %d/%d (%s %d/%d)", ge+1, total, ph.Name, r.st.Epoch+1, ph.Epochs)
	r.started = time.Now()

	if r.st.Batch < n {
		bar := progress.New(r.log, label, n-r.st.Batch)
		stop, err := r.trainBatches(ctx, ge, n, bar)
		bar.Finish()
		if err != nil || stop {
			r.st.EpochSeconds += time.Since(r.started).Seconds()
			return stop, err
		}
	}
	var val, valLoss float64
	var valCases int
	if r.validates(ge) {
		if err := r.preciseBN(ctx, ge); err != nil || ctx.Err() != nil {
			r.st.EpochSeconds += time.Since(r.started).Seconds()
			return ctx.Err() != nil, err
		}
		val, valCases, valLoss, err = r.validate(ctx)
		if err != nil || ctx.Err() != nil {
			r.st.EpochSeconds += time.Since(r.started).Seconds()
			return ctx.Err() != nil, err
		}
	}
	r.st.EpochSeconds += time.Since(r.started).Seconds()

	rec := EpochRecord{
		Epoch: ge + 1, Phase: ph.Name, PhaseEpoch: r.st.Epoch + 1,
		TrainLoss: r.st.EpochLossSum / float64(n), ValCases: valCases,
		LR: r.st.LR, Steps: r.st.Step, Seconds: r.st.EpochSeconds,
	}
	r.recordValidation(&rec, val, valCases, valLoss)
	r.st.History = append(r.st.History, rec)
	r.st.Epoch++
	r.st.Batch, r.st.EpochLossSum, r.st.EpochSeconds = 0, 0, 0
	if r.st.Epoch == ph.Epochs {
		r.st.Phase++
		r.st.Epoch = 0
	}
	if err := r.endEpoch(rec); err != nil {
		return false, err
	}
	fmt.Fprintln(r.log, summary(rec, total, r.st))
	if r.opt.OnEpoch != nil {
		r.opt.OnEpoch(rec)
	}
	return false, nil
}

// validates reports whether global epoch ge, just trained, is one to
// validate (Config.Validation.Every): every Every-th epoch, the last of its
// phase, and the last of a clock-budgeted run.
func (r *runner) validates(ge int) bool {
	every := r.cfg.Validation.Every
	if every <= 1 || (ge+1)%every == 0 {
		return true
	}
	return r.st.Epoch+1 == r.cfg.Phases[r.st.Phase].Epochs || r.clockPosition() >= 1
}

// trainBatches trains batches r.st.Batch..n-1 of global epoch ge. It
// returns stop when ctx is cancelled.
func (r *runner) trainBatches(ctx context.Context, ge, n int, bar *progress.Bar) (stop bool, err error) {
	cfg := r.cfg
	ph := cfg.Phases[r.st.Phase]
	acc := cfg.Optimizer.Accumulate
	perEpoch := UpdatesPerEpoch(n, acc)
	sched := OneCycle{ScheduleConfig: cfg.Schedule, LRMax: ph.LR}
	totalUpdates := int64(perEpoch) * int64(ph.Epochs)

	batches, err := r.opt.Train.Epoch(ctx, ge, r.st.Batch)
	if err != nil {
		if ctx.Err() != nil {
			return true, nil
		}
		return false, fmt.Errorf("train: epoch %d: %w", ge+1, err)
	}
	defer batches.Close()
	for r.st.Batch < n {
		if ctx.Err() != nil {
			return true, nil
		}
		b, err := batches.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			if errors.Is(err, io.EOF) {
				return false, fmt.Errorf("train: epoch %d: the data source ended after %d batches, it said %d", ge+1, r.st.Batch, n)
			}
			return false, fmt.Errorf("train: epoch %d, batch %d: %w", ge+1, r.st.Batch+1, err)
		}
		i := r.st.Batch
		rec := StepRecord{Step: r.st.Step + 1, Epoch: ge + 1, Batch: i + 1}
		if i%acc == acc-1 || i == n-1 {
			u := int64(r.st.Epoch)*int64(perEpoch) + int64(i/acc)
			lr, beta1 := sched.At(max(position(u, totalUpdates), r.clockPosition()))
			loss, norm, err := r.eng.Step(b, lr, beta1)
			if err != nil {
				return false, err
			}
			if !finite(loss, norm) {
				return false, fmt.Errorf("train: step %d (epoch %d, batch %d): loss %v, gradient norm %v: training diverged; lower the learning rate or set optimizer.clip_grad_norm (last.ckpt holds the last good epoch)", rec.Step, ge+1, i+1, loss, norm)
			}
			rec.Loss, rec.Update, rec.LR, rec.Beta1, rec.GradNorm = loss, true, lr, beta1, norm
			r.st.Update++
			r.st.LR, r.st.Beta1 = lr, beta1
		} else {
			loss, err := r.eng.Accumulate(b)
			if err != nil {
				return false, err
			}
			if !finite(loss) {
				return false, fmt.Errorf("train: step %d (epoch %d, batch %d): loss %v: training diverged", rec.Step, ge+1, i+1, loss)
			}
			rec.Loss = loss
		}
		r.st.Batch++
		r.st.Step++
		r.st.EpochLossSum += rec.Loss
		if err := r.steps.add(rec); err != nil {
			return false, fmt.Errorf("train: %s: %w", FileSteps, err)
		}
		bar.SetSuffix(fmt.Sprintf("loss %.4f", rec.Loss))
		bar.Add(1)
		if r.opt.OnStep != nil {
			r.opt.OnStep(rec)
		}
	}
	return false, nil
}

// preciseBN recomputes the BatchNorm running statistics from the first
// batch_norm.precise_batches training batches of epoch ge, when set (see
// Engine.PreciseBN). The batches depend only on the seed and the epoch, so
// a resumed run recomputes the same statistics.
func (r *runner) preciseBN(ctx context.Context, ge int) error {
	k := min(r.cfg.BatchNorm.PreciseBatches, r.opt.Train.Len())
	if k == 0 {
		return nil
	}
	batches, err := r.opt.Train.Epoch(ctx, ge, 0)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("train: precise BatchNorm: %w", err)
	}
	defer batches.Close()
	var bs []Batch
	for len(bs) < k {
		b, err := batches.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("train: precise BatchNorm: %w", err)
		}
		bs = append(bs, b)
	}
	return r.eng.PreciseBN(bs)
}

// validate evaluates every validation case: the mean per-case Dice, the
// number of cases and the mean batch loss.
func (r *runner) validate(ctx context.Context) (dice float64, cases int, loss float64, err error) {
	ge := r.st.GlobalEpoch(r.cfg)
	if r.opt.Val == nil || r.opt.Val.Len() == 0 {
		return 0, 0, 0, nil
	}
	// The epoch matters to validation only through a progressive-resizing
	// schedule: cases are evaluated on the grid the epoch trained on.
	batches, err := r.opt.Val.Epoch(ctx, ge, 0)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, 0, nil
		}
		return 0, 0, 0, fmt.Errorf("train: validation: %w", err)
	}
	defer batches.Close()
	bar := progress.New(r.log, "validation", r.opt.Val.Len())
	defer bar.Finish()
	var diceSum, lossSum float64
	nb := 0
	for {
		b, err := batches.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0, 0, 0, nil
			}
			return 0, 0, 0, fmt.Errorf("train: validation: %w", err)
		}
		res, err := r.eng.Evaluate(b)
		if err != nil {
			return 0, 0, 0, err
		}
		for _, d := range res.Dice {
			diceSum += d
		}
		cases += len(res.Dice)
		lossSum += res.Loss
		nb++
		bar.Add(1)
	}
	if cases == 0 {
		return 0, 0, 0, nil
	}
	return diceSum / float64(cases), cases, lossSum / float64(nb), nil
}

// endEpoch writes the metrics, best.ckpt (when the epoch is the best so
// far), last.ckpt and the epoch's own checkpoint, in that order: if the
// process dies in between, resuming from the previous last.ckpt redoes the
// epoch and rewrites them all identically.
func (r *runner) endEpoch(rec EpochRecord) error {
	if err := writeMetrics(r.dir, r.st.History); err != nil {
		return err
	}
	if rec.Best {
		if err := saveWeights(filepath.Join(r.dir, FileBest), r.mcfg, r.ctx, r.st); err != nil {
			return err
		}
	}
	if err := r.saveLast(); err != nil {
		return err
	}
	if keep := r.cfg.Checkpoint.KeepEpochs; keep != 0 {
		if err := linkOrCopy(filepath.Join(r.dir, FileLast), filepath.Join(r.dir, epochFile(rec.Epoch))); err != nil {
			return err
		}
		if err := pruneEpochFiles(r.dir, keep); err != nil {
			return err
		}
	}
	return nil
}

// saveLast flushes the step log and writes last.ckpt.
func (r *runner) saveLast() error {
	if err := r.steps.flush(); err != nil {
		return err
	}
	return saveCheckpoint(filepath.Join(r.dir, FileLast), r.mcfg, r.ctx, r.st)
}

// summary is the one line printed after an epoch.
func summary(rec EpochRecord, total int, st State) string {
	s := fmt.Sprintf("epoch %d/%d (%s %d): train loss %.4f", rec.Epoch, total, rec.Phase, rec.PhaseEpoch, rec.TrainLoss)
	if rec.ValLoss != nil {
		s += fmt.Sprintf(", val loss %.4f", *rec.ValLoss)
	}
	if rec.ValDice != nil {
		s += fmt.Sprintf(", val Dice %.4f (best %.4f @%d)", *rec.ValDice, st.BestDice, st.BestEpoch)
	}
	return s + fmt.Sprintf(", lr %.2e, %s", rec.LR, (time.Duration(rec.Seconds*float64(time.Second))).Round(time.Second))
}
