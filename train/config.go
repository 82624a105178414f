package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/covseg/covseg/data/augment"
	"github.com/covseg/covseg/data/preprocess"
	"github.com/covseg/covseg/model"
)

// Config is everything a training run needs, read from YAML. Its zero value
// is not useful: start from DefaultConfig, whose numbers are the paper's
// recipe (faimed3d's COVID-19 example), and override what you need.
type Config struct {
	// Seed seeds the model's initialisation and the data order and
	// augmentation of every epoch.
	Seed uint64 `yaml:"seed"`
	// Data says where the cases are and how they become input tensors.
	Data DataConfig `yaml:"data"`
	// Model is the network to train.
	Model ModelConfig `yaml:"model"`
	// Backend picks the engine and the compute dtype.
	Backend BackendConfig `yaml:"backend"`
	// Loss weighs the soft Dice and cross-entropy terms.
	Loss LossConfig `yaml:"loss"`
	// Optimizer configures AdamW, gradient accumulation and clipping.
	Optimizer OptimizerConfig `yaml:"optimizer"`
	// Schedule is the one-cycle policy applied within every phase.
	Schedule ScheduleConfig `yaml:"schedule"`
	// Phases run one after the other, each a fastai fit_one_cycle: the
	// paper's are 3 epochs with the encoder frozen at lr 1e-2, then 50
	// epochs unfrozen at lr 1e-3.
	Phases []Phase `yaml:"phases"`
	// Checkpoint configures what the run folder keeps.
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
	// BatchNorm configures how the BatchNorm running statistics that
	// inference uses are estimated. Omitted from the YAML (and the config's
	// hash) when zero, so older run folders still resume.
	BatchNorm BatchNormConfig `yaml:"batch_norm,omitempty"`
	// Validation says how often the run validates. Omitted from the YAML
	// (and the config's hash) when zero, so older run folders still resume.
	Validation ValidationConfig `yaml:"validation,omitempty"`
}

// ValidationConfig says when the run validates.
type ValidationConfig struct {
	// Every, when above 1, validates (after recomputing the BatchNorm
	// statistics, when batch_norm.precise_batches asks for it) only after
	// every Every-th epoch and after the last epoch of each phase and of a
	// clock-budgeted run, saving the time of the others: best.ckpt is then
	// the best of the validated epochs, and the other epochs' records have
	// no validation figures. 0 or 1 validates after every epoch.
	Every int `yaml:"every,omitempty"`
}

// maxValidationEvery bounds ValidationConfig.Every.
const maxValidationEvery = 10000

// BatchNormConfig says how the running statistics are estimated.
type BatchNormConfig struct {
	// PreciseBatches, when above 0, recomputes every BatchNorm's running
	// mean and variance before each validation from this many training
	// batches (the first of the epoch's order) in training mode, pooled
	// (Engine.PreciseBN). 0 keeps PyTorch's running averages (momentum
	// 0.1), the paper's recipe, which suits large batches of whole volumes
	// but lags behind with small batches of patches.
	PreciseBatches int `yaml:"precise_batches,omitempty"`
}

// maxPreciseBatches bounds BatchNormConfig.PreciseBatches.
const maxPreciseBatches = 4096

// DataConfig describes the training data: where the cases are, how they
// are preprocessed (the preprocess package), augmented (the augment
// package) and batched (the loader package).
type DataConfig struct {
	// Manifest is the CSV listing the cases (image, mask, split, dataset;
	// see the dataset package). A relative path is taken from the config
	// file's folder (covseg train writes it absolute into the run folder's
	// config.yaml).
	Manifest string `yaml:"manifest"`
	// Cache is the folder of preprocessed cases (zstd files), which later
	// runs with the same settings reuse; empty means <run folder>/cache.
	Cache string `yaml:"cache"`
	// CacheMemoryMB bounds the preprocessed cases kept in memory.
	CacheMemoryMB int `yaml:"cache_memory_mb"`
	// BatchSize is the number of cases per training step.
	BatchSize int `yaml:"batch_size"`
	// Workers prepare batches in parallel, Prefetch of them at most ahead
	// of training (0: the loader's default, 2).
	Workers  int `yaml:"workers"`
	Prefetch int `yaml:"prefetch"`
	// Preprocess turns a CT and its mask into the network's input: the
	// paper's whole-volume resize to 20x224x224 by default.
	Preprocess preprocess.Config `yaml:"preprocess"`
	// Augment is applied to training cases only.
	Augment augment.Config `yaml:"augment"`
}

// ModelConfig says which network to train and how to initialise it.
type ModelConfig struct {
	// Init is a covseg model file to start from (from `covseg model init`,
	// or a previous run's best.ckpt). Only its network variables are used.
	// Empty: a new model of Width and Classes, the encoder from Pretrained.
	Init string `yaml:"init"`
	// Width multiplies every channel count (1 = the paper's network).
	Width float64 `yaml:"width"`
	// Classes is the number of output classes, background included.
	Classes int `yaml:"classes"`
	// Pretrained is torchvision's r3d_18 state_dict (.pth, Kinetics-400)
	// for the encoder of a new model; empty leaves the encoder random.
	Pretrained string `yaml:"pretrained"`
	// ClassNames names a new model's classes, background first (e.g.
	// background, infiltrate, lung with data.preprocess.labels: classes);
	// empty means model.DefaultClassNames.
	ClassNames []string `yaml:"class_names,omitempty"`
}

// classNames is the class names of a new model.
func (m ModelConfig) classNames() []string {
	if len(m.ClassNames) > 0 {
		return m.ClassNames
	}
	return model.DefaultClassNames(m.Classes)
}

// BackendConfig picks the engine.
type BackendConfig struct {
	// Name is a GoMLX backend configuration ("xla:cuda", "covcpu", ...).
	// Empty means the GOMLX_BACKEND environment variable, or covseg's CPU
	// backend when that is unset.
	Name string `yaml:"name"`
	// DType is the compute dtype: "float32" or "bfloat16" (mixed
	// precision: float32 weights, optimiser and BatchNorm statistics).
	DType string `yaml:"dtype"`
}

// LossConfig weighs the loss terms: DiceWeight·(1 − soft Dice) +
// CEWeight·cross-entropy.
type LossConfig struct {
	DiceWeight float64 `yaml:"dice_weight"`
	CEWeight   float64 `yaml:"ce_weight"`
	// DiceClass is the class whose Dice is optimised and reported.
	DiceClass int `yaml:"dice_class"`
	// DiceSmooth is added to the numerator and denominator of the soft
	// Dice, (2·Σpt + s)/(Σp + Σt + s). faimed3d's example uses 0: the
	// softmax is never exactly 0, so Σp > 0 and the ratio is defined.
	DiceSmooth float64 `yaml:"dice_smooth"`
}

// OptimizerConfig configures AdamW (fastai's Adam with decoupled weight
// decay) and how gradients reach it.
type OptimizerConfig struct {
	// Beta2 is the decay of the squared-gradient average (fastai's sqr_mom).
	// β1 follows the schedule.
	Beta2 float64 `yaml:"beta2"`
	// Eps is added to √v̂.
	Eps float64 `yaml:"eps"`
	// WeightDecay is the decoupled weight decay: p ← p·(1 − lr·wd).
	WeightDecay float64 `yaml:"weight_decay"`
	// DecayBNAndBias applies weight decay to BatchNorm parameters and
	// biases too (fastai's wd_bn_bias); the recipe exempts them.
	DecayBNAndBias bool `yaml:"decay_bn_and_bias"`
	// Accumulate sums the gradients of this many batches before one update.
	Accumulate int `yaml:"accumulate"`
	// ClipGradNorm scales the (accumulated) gradients down so their global
	// L2 norm is at most this (PyTorch's clip_grad_norm_); 0 disables.
	ClipGradNorm float64 `yaml:"clip_grad_norm"`
	// ResetEachPhase starts every phase with fresh optimiser state. fastai
	// keeps it (the same Learner.opt across fit_one_cycle calls).
	ResetEachPhase bool `yaml:"reset_each_phase"`
}

// ScheduleConfig is fastai's fit_one_cycle: the learning rate rises from
// lr/Div to lr along a cosine over the first PctStart of the updates, then
// falls to lr/DivFinal along a cosine; β1 moves from Beta1Max to Beta1Min and
// back, inversely.
type ScheduleConfig struct {
	PctStart float64 `yaml:"pct_start"`
	Div      float64 `yaml:"div"`
	DivFinal float64 `yaml:"div_final"`
	Beta1Max float64 `yaml:"beta1_max"`
	Beta1Min float64 `yaml:"beta1_min"`
}

// Phase is one fit_one_cycle.
type Phase struct {
	Name   string  `yaml:"name"`
	Epochs int     `yaml:"epochs"`
	LR     float64 `yaml:"lr"`
	// EncoderLRMult scales the encoder's learning rate (discriminative
	// learning rates); 1 trains every group at LR.
	EncoderLRMult float64 `yaml:"encoder_lr_mult"`
	// FreezeEncoder leaves the encoder's convolutions untrained. Its
	// BatchNorm running statistics still update.
	FreezeEncoder bool `yaml:"freeze_encoder"`
	// TrainFrozenBN still trains the BatchNorm γ and β of a frozen encoder
	// (fastai's train_bn=True, the default of faimed3d's unet_learner_3d).
	TrainFrozenBN bool `yaml:"train_frozen_bn"`
}

// CheckpointConfig says what the run folder keeps besides last.ckpt and
// best.ckpt.
type CheckpointConfig struct {
	// KeepEpochs keeps epoch_NNN.ckpt of the most recent epochs: 0 none,
	// -1 all.
	KeepEpochs int `yaml:"keep_epochs"`
}

// Dtype names accepted by BackendConfig.DType.
const (
	DTypeFloat32  = "float32"
	DTypeBFloat16 = "bfloat16"
)

// DefaultConfig returns the paper's recipe: the full-width network with
// 2 classes on whole volumes resized to 20x224x224 and windowed to
// −1024..600 HU (the data packages' defaults, augmentation included), batch
// size 1,
// loss (1 − Dice) + CE, AdamW (β2 0.99, eps 1e-5, weight decay 1e-4 except
// on BatchNorm and biases), one-cycle (25 % warm-up, div 25, div_final
// 1e5, β1 0.95→0.85→0.95), 3 epochs frozen at 1e-2 then 50 unfrozen at 1e-3.
func DefaultConfig() Config {
	return Config{
		Seed: 0,
		Data: DataConfig{
			CacheMemoryMB: 1024,
			BatchSize:     1,
			Preprocess:    preprocess.DefaultConfig(),
			Augment:       augment.DefaultConfig(),
		},
		Model:   ModelConfig{Width: 1, Classes: 2},
		Backend: BackendConfig{DType: DTypeFloat32},
		Loss:    LossConfig{DiceWeight: 1, CEWeight: 1, DiceClass: 1},
		Optimizer: OptimizerConfig{
			Beta2: 0.99, Eps: 1e-5, WeightDecay: 1e-4, Accumulate: 1,
		},
		Schedule: ScheduleConfig{PctStart: 0.25, Div: 25, DivFinal: 1e5, Beta1Max: 0.95, Beta1Min: 0.85},
		Phases: []Phase{
			{Name: "frozen", Epochs: 3, LR: 1e-2, EncoderLRMult: 1, FreezeEncoder: true, TrainFrozenBN: true},
			{Name: "unfrozen", Epochs: 50, LR: 1e-3, EncoderLRMult: 1},
		},
	}
}

// ReadConfig reads a YAML config: fields it sets override DefaultConfig,
// unknown fields are errors (a typo must not silently train with a
// default).
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("train: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("train: %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses YAML over DefaultConfig and validates the result. A
// phases list, when given, replaces the default phases as a whole; fields a
// phase leaves out take the defaults of a Phase (EncoderLRMult 1).
func ParseConfig(b []byte) (Config, error) {
	cfg := DefaultConfig()
	var raw struct {
		Phases []yaml.Node `yaml:"phases"`
	}
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return Config{}, err
	}
	if raw.Phases != nil {
		cfg.Phases = nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	if len(cfg.Data.Preprocess.Schedule) == 0 {
		cfg.Data.Preprocess.Schedule = nil // omitted when written: keep round trips equal
	}
	if raw.Phases != nil {
		// Decoded again one by one so that each phase starts from its
		// defaults (and a null entry is an empty phase, refused below).
		cfg.Phases = make([]Phase, len(raw.Phases))
		for i, n := range raw.Phases {
			p := Phase{EncoderLRMult: 1}
			if err := n.Decode(&p); err != nil {
				return Config{}, fmt.Errorf("phase %d: %w", i+1, err)
			}
			cfg.Phases[i] = p
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// YAML returns the config as YAML, as ReadConfig reads it, with a comment
// on each field.
func (c Config) YAML() ([]byte, error) {
	var root yaml.Node
	if err := root.Encode(c); err != nil {
		return nil, fmt.Errorf("train: config to YAML: %w", err)
	}
	annotate(&root, "")
	root.HeadComment = "covseg train config: every field is optional, a missing one takes the value shown\n(the paper's recipe). Relative paths are relative to this file's folder."
	return encodeYAML(&root)
}

// canonicalYAML is the config as YAML without comments, the form its hash
// is taken of (comment wording may change between versions).
func (c Config) canonicalYAML() ([]byte, error) { return encodeYAML(c) }

func encodeYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("train: config to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("train: config to YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// fieldComments explain the config's fields in the printed YAML, by path.
var fieldComments = map[string]string{
	"seed":                        "model initialisation, data order and augmentation",
	"data.manifest":               "CSV of cases: image, mask, split (train/val/test), dataset",
	"data.cache":                  "folder of preprocessed cases; empty: <run folder>/cache",
	"data.cache_memory_mb":        "preprocessed cases kept in memory",
	"data.batch_size":             "cases per batch",
	"data.workers":                "batches prepared in parallel (0: 2)",
	"data.prefetch":               "batches prepared ahead of training (0: 2)",
	"data.preprocess":             "see the preprocess package: resize (the paper) or patch (nnU-Net)",
	"data.preprocess.scaling":     "window: the HU window onto 0..1; minmax: each volume's own clipped range (the paper's)",
	"data.preprocess.labels":      "binary (default): every mask label > 0 is lesion; classes: labels are class indices (1 lesion, 2.. e.g. lung)",
	"data.augment":                "training only; p is each transform's probability",
	"model.init":                  "start from this covseg model file (only its network)",
	"model.width":                 "channel multiplier; 1 = the paper's network",
	"model.classes":               "output classes, background included",
	"model.pretrained":            "torchvision r3d_18 .pth (Kinetics-400) for the encoder",
	"model.class_names":           "names of a new model's classes, background first (default: background, infiltrate)",
	"backend.name":                "GoMLX backend: empty = $GOMLX_BACKEND or covseg's CPU backend; xla:cuda",
	"backend.dtype":               "float32, or bfloat16 (mixed precision, XLA backends only)",
	"loss.dice_weight":            "loss = dice_weight·(1 − soft Dice) + ce_weight·cross-entropy",
	"loss.dice_class":             "class whose Dice is optimised and reported",
	"loss.dice_smooth":            "added to the Dice's numerator and denominator",
	"optimizer.beta2":             "AdamW; β1 follows the schedule",
	"optimizer.weight_decay":      "decoupled: p ← p·(1 − lr·wd)",
	"optimizer.decay_bn_and_bias": "also decay BatchNorm parameters and biases",
	"optimizer.accumulate":        "batches whose gradients are summed before an update",
	"optimizer.clip_grad_norm":    "clip the global gradient norm; 0 = off",
	"optimizer.reset_each_phase":  "fresh optimiser state at each phase (fastai keeps it)",
	"schedule.pct_start":          "one-cycle: share of the updates warming up",
	"schedule.div":                "the warm-up starts at lr/div",
	"schedule.div_final":          "and the phase ends at lr/div_final",
	"schedule.beta1_max":          "β1 starts and ends here",
	"schedule.beta1_min":          "and is lowest at the top of the warm-up",
	"phases":                      "fit_one_cycle runs, one after the other",
	"checkpoint.keep_epochs":      "keep epoch_NNN.ckpt of the last N epochs (-1 all, 0 none)",
	"batch_norm.precise_batches":  "recompute BatchNorm statistics from N training batches before each validation (0: PyTorch's running averages)",
}

// annotate sets the comments of fieldComments on the keys of a mapping
// node tree; path is the dotted path of n.
func annotate(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			annotate(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			if c, ok := fieldComments[key]; ok {
				if v := n.Content[i+1]; v.Style&yaml.FlowStyle != 0 {
					v.LineComment = c // a key's comment is lost before a flow sequence
				} else {
					n.Content[i].LineComment = c
				}
			}
			annotate(n.Content[i+1], key)
		}
	}
}

// hash identifies the config a checkpoint was written under.
func (c Config) hash() string {
	b, err := c.canonicalYAML()
	if err != nil {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TotalEpochs is the number of epochs over all phases.
func (c Config) TotalEpochs() int {
	n := 0
	for _, p := range c.Phases {
		n += p.Epochs
	}
	return n
}

// finite reports whether every value is a finite number.
func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// Validate reports the first problem with c, or nil.
func (c Config) Validate() error {
	d := c.Data
	if err := d.Preprocess.Validate(); err != nil {
		return fmt.Errorf("train: data.%w", err)
	}
	if err := d.Augment.Validate(); err != nil {
		return fmt.Errorf("train: data.%w", err)
	}
	if d.BatchSize < 1 || d.BatchSize > 1024 {
		return fmt.Errorf("train: data.batch_size %d not in 1..1024", d.BatchSize)
	}
	if d.Workers < 0 || d.Workers > 256 || d.Prefetch < 0 || d.Prefetch > 256 || d.CacheMemoryMB < 0 || d.CacheMemoryMB > 1<<24 {
		return fmt.Errorf("train: data: workers %d, prefetch %d (0..256) or cache_memory_mb %d out of range", d.Workers, d.Prefetch, d.CacheMemoryMB)
	}
	m := c.Model
	if m.Init == "" {
		probe := model.DefaultConfig()
		probe.Width, probe.Classes = m.Width, m.Classes
		probe.ClassNames = m.classNames()
		if err := probe.Validate(); err != nil {
			return fmt.Errorf("train: model: %w", err)
		}
		if m.Classes < 2 {
			return fmt.Errorf("train: model.classes %d: segmentation needs background and at least one class", m.Classes)
		}
	}
	switch c.Backend.DType {
	case DTypeFloat32, DTypeBFloat16:
	default:
		return fmt.Errorf("train: backend.dtype %q, want %q or %q", c.Backend.DType, DTypeFloat32, DTypeBFloat16)
	}
	l := c.Loss
	if !finite(l.DiceWeight, l.CEWeight, l.DiceSmooth) || l.DiceWeight < 0 || l.CEWeight < 0 || l.DiceWeight+l.CEWeight == 0 || l.DiceSmooth < 0 {
		return fmt.Errorf("train: loss: weights %v, %v and smooth %v must be finite and ≥ 0, not both weights 0", l.DiceWeight, l.CEWeight, l.DiceSmooth)
	}
	if l.DiceClass < 1 || (m.Init == "" && l.DiceClass >= m.Classes) {
		return fmt.Errorf("train: loss.dice_class %d: want a foreground class 1..classes-1", l.DiceClass)
	}
	o := c.Optimizer
	if !finite(o.Beta2, o.Eps, o.WeightDecay, o.ClipGradNorm) || !(o.Beta2 >= 0 && o.Beta2 < 1) || !(o.Eps > 0) || o.WeightDecay < 0 || o.ClipGradNorm < 0 {
		return fmt.Errorf("train: optimizer: beta2 %v must be in [0, 1), eps %v > 0, weight_decay %v and clip_grad_norm %v ≥ 0", o.Beta2, o.Eps, o.WeightDecay, o.ClipGradNorm)
	}
	if o.Accumulate < 1 || o.Accumulate > 1<<16 {
		return fmt.Errorf("train: optimizer.accumulate %d not in 1..65536", o.Accumulate)
	}
	s := c.Schedule
	if !finite(s.PctStart, s.Div, s.DivFinal, s.Beta1Max, s.Beta1Min) || s.PctStart < 0 || s.PctStart >= 1 || !(s.Div > 0) || !(s.DivFinal > 0) ||
		s.Beta1Max < 0 || s.Beta1Max >= 1 || s.Beta1Min < 0 || s.Beta1Min >= 1 {
		return fmt.Errorf("train: schedule: pct_start %v must be in [0, 1), div %v and div_final %v > 0, beta1 %v and %v in [0, 1)", s.PctStart, s.Div, s.DivFinal, s.Beta1Max, s.Beta1Min)
	}
	if len(c.Phases) == 0 {
		return errors.New("train: no phases")
	}
	for i, p := range c.Phases {
		if p.Epochs < 1 || p.Epochs > 100000 {
			return fmt.Errorf("train: phase %d (%s): %d epochs, want 1..100000", i+1, p.Name, p.Epochs)
		}
		if !finite(p.LR, p.EncoderLRMult) || !(p.LR > 0) || p.EncoderLRMult < 0 {
			return fmt.Errorf("train: phase %d (%s): lr %v must be > 0 and encoder_lr_mult %v ≥ 0", i+1, p.Name, p.LR, p.EncoderLRMult)
		}
	}
	if e := c.Validation.Every; e < 0 || e > maxValidationEvery {
		return fmt.Errorf("train: validation.every %d: want 0 or 1 (every epoch) to %d", e, maxValidationEvery)
	}
	if b := c.BatchNorm.PreciseBatches; b < 0 || b > maxPreciseBatches {
		return fmt.Errorf("train: batch_norm.precise_batches %d: want 0 (PyTorch's running averages) to %d", b, maxPreciseBatches)
	}
	if c.Checkpoint.KeepEpochs < -1 {
		return fmt.Errorf("train: checkpoint.keep_epochs %d: want -1 (all), 0 (none) or a count", c.Checkpoint.KeepEpochs)
	}
	return nil
}
