package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/model"
)

// A checkpoint is a model file (model.Save) holding the network, the
// optimiser state (ScopeMoment1, ScopeMoment2, ScopeStep, and ScopeAccum
// with gradient accumulation) and the run's State as JSON bytes in the
// uint8 variable ScopeRun/"state": one file, written atomically, so the
// weights and the position in the schedule can never disagree.
const (
	ScopeRun  = "/train"
	stateName = "state"

	stateVersion = 1
	maxStateSize = 64 << 20
)

// Run folder file names.
const (
	FileConfig      = "config.yaml"
	FileLast        = "last.ckpt"
	FileBest        = "best.ckpt"
	FileMetricsJSON = "metrics.jsonl"
	FileMetricsCSV  = "metrics.csv"
	FileSteps       = "steps.jsonl"
	FileCurves      = "curves.png"
)

// State is where a run stands: enough, with the checkpoint's variables and
// the run's config, to continue exactly where it stopped.
type State struct {
	Version int `json:"version"`
	// ConfigSHA256 is the hash of the run's resolved config (config.yaml).
	ConfigSHA256 string `json:"config_sha256"`
	// Phase is the index of the current phase; len(Phases) when the run is
	// finished.
	Phase int `json:"phase"`
	// Epoch is the current epoch within the phase (0-based) and Batch the
	// number of its batches already trained.
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
	// Step counts the batches trained in the whole run, Update the
	// optimiser updates.
	Step   int64 `json:"step"`
	Update int64 `json:"update"`
	// EpochLossSum is the sum of the current epoch's batch losses so far,
	// EpochSeconds its training time so far.
	EpochLossSum float64 `json:"epoch_loss_sum"`
	EpochSeconds float64 `json:"epoch_seconds"`
	// LR and Beta1 are the values of the last update.
	LR    float64 `json:"lr"`
	Beta1 float64 `json:"beta1"`
	// BestDice is the best validation Dice so far, at BestEpoch (1-based;
	// 0 before any validation).
	BestDice  float64 `json:"best_dice"`
	BestEpoch int     `json:"best_epoch"`
	// History has one record per finished epoch.
	History []EpochRecord `json:"history"`
}

// EpochRecord summarises one epoch; metrics.jsonl and metrics.csv hold one
// per line.
type EpochRecord struct {
	Epoch      int     `json:"epoch"` // 1-based over all phases
	Phase      string  `json:"phase"`
	PhaseEpoch int     `json:"phase_epoch"` // 1-based within the phase
	TrainLoss  float64 `json:"train_loss"`
	// ValLoss and ValDice are absent without validation cases, and ValLoss
	// also when it is not finite.
	ValLoss  *float64 `json:"val_loss,omitempty"`
	ValDice  *float64 `json:"val_dice,omitempty"`
	ValCases int      `json:"val_cases"`
	LR       float64  `json:"lr"`
	Steps    int64    `json:"steps"`
	Seconds  float64  `json:"seconds"`
	Best     bool     `json:"best"`
}

// StepRecord describes one trained batch; steps.jsonl holds one per line.
type StepRecord struct {
	Step  int64   `json:"step"`  // 1-based over the run
	Epoch int     `json:"epoch"` // 1-based over the run
	Batch int     `json:"batch"` // 1-based within the epoch
	Loss  float64 `json:"loss"`
	// Update is set on the batch that ends an accumulation window, with the
	// learning rate, β1 and gradient norm (before clipping) of the update.
	Update   bool    `json:"update"`
	LR       float64 `json:"lr,omitempty"`
	Beta1    float64 `json:"beta1,omitempty"`
	GradNorm float64 `json:"grad_norm,omitempty"`
}

// GlobalEpoch is the 0-based index of the state's epoch over all phases.
func (s State) GlobalEpoch(cfg Config) int {
	n := s.Epoch
	for i := 0; i < s.Phase && i < len(cfg.Phases); i++ {
		n += cfg.Phases[i].Epochs
	}
	return n
}

// Done reports whether every phase is finished.
func (s State) Done(cfg Config) bool { return s.Phase >= len(cfg.Phases) }

// setState stores st in ctx under ScopeRun.
func setState(ctx *mlctx.Context, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("train: encoding the run state: %w", err)
	}
	t := tensors.FromFlatDataAndDimensions(b, len(b))
	if v := ctx.GetVariableByScopeAndName(ScopeRun, stateName); v != nil {
		return v.SetValue(t)
	}
	ctx.InAbsPath(ScopeRun).Checked(false).VariableWithValue(stateName, t).SetTrainable(false)
	return nil
}

// getState reads the State stored in ctx.
func getState(ctx *mlctx.Context) (State, error) {
	v := ctx.GetVariableByScopeAndName(ScopeRun, stateName)
	if v == nil {
		return State{}, errors.New("no run state: not a training checkpoint")
	}
	if v.DType() != dtypes.Uint8 || v.Shape().Rank() != 1 || v.Shape().Size() > maxStateSize {
		return State{}, fmt.Errorf("run state variable is %s, want uint8 JSON bytes", v.Shape())
	}
	t, err := v.Value()
	if err != nil {
		return State{}, err
	}
	b, err := tensors.CopyFlatData[uint8](t)
	if err != nil {
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("run state: %w", err)
	}
	if st.Version != stateVersion {
		return State{}, fmt.Errorf("run state version %d, this covseg reads %d", st.Version, stateVersion)
	}
	return st, nil
}

// ReadCheckpoint loads a checkpoint: the model config, the context with all
// its variables, and the run state.
func ReadCheckpoint(path string) (model.Config, *mlctx.Context, State, error) {
	mcfg, ctx, err := model.Load(path)
	if err != nil {
		return model.Config{}, nil, State{}, err
	}
	st, err := getState(ctx)
	if err != nil {
		return model.Config{}, nil, State{}, fmt.Errorf("train: %s: %w", path, err)
	}
	return mcfg, ctx, st, nil
}

// saveCheckpoint writes st and every variable of ctx to path (atomically).
func saveCheckpoint(path string, mcfg model.Config, ctx *mlctx.Context, st State) error {
	if err := setState(ctx, st); err != nil {
		return err
	}
	if err := model.Save(path, mcfg, ctx); err != nil {
		return fmt.Errorf("train: checkpoint %w", err)
	}
	return nil
}

// saveWeights writes a model file with the network's variables and st, but
// no optimiser state (best.ckpt: what inference and export need).
func saveWeights(path string, mcfg model.Config, ctx *mlctx.Context, st State) error {
	out := mlctx.New()
	for v := range ctx.IterVariables() {
		if v.Scope() != model.Scope {
			continue
		}
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("train: %s: %w", v.ScopeAndName(), err)
		}
		out.InAbsPath(model.Scope).Checked(false).VariableWithValue(v.Name(), t).SetTrainable(v.Trainable)
	}
	return saveCheckpoint(path, mcfg, out, st)
}

// linkOrCopy makes dst hold the content of src (a hard link where the file
// system allows, a copy otherwise), atomically.
func linkOrCopy(src, dst string) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".link")
	os.Remove(tmp)
	if err := os.Link(src, tmp); err == nil {
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("train: %w", err)
		}
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer in.Close()
	return atomicfile.Write(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// epochFile names the checkpoint of a 1-based global epoch.
func epochFile(epoch int) string { return fmt.Sprintf("epoch_%03d.ckpt", epoch) }

// pruneEpochFiles removes epoch checkpoints beyond the keep most recent.
func pruneEpochFiles(dir string, keep int) error {
	if keep < 0 {
		return nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "epoch_*.ckpt"))
	if err != nil {
		return err
	}
	sort.Slice(names, func(i, j int) bool { return epochOf(names[i]) < epochOf(names[j]) })
	for len(names) > keep {
		if err := os.Remove(names[0]); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		names = names[1:]
	}
	return nil
}

// epochOf reads the epoch number of an epoch_NNN.ckpt path (-1 if none).
func epochOf(path string) int {
	var n int
	s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "epoch_"), ".ckpt")
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return -1
	}
	return n
}
