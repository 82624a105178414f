package infer

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/covseg/covseg/data/preprocess"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
)

// Geometry modes of Options.Mode.
const (
	// ModeResize resizes the whole volume to the model's grid, D×H×W, and
	// the prediction back: the paper's way. One forward pass per volume.
	ModeResize = "resize"
	// ModeSliding resamples the volume to a target spacing and slides
	// patches of the model's grid over it with overlap, blending their
	// predictions with Gaussian weights: nnU-Net's way.
	ModeSliding = "sliding"
)

// DefaultOverlap is nnU-Net's overlap of neighbouring patches: half a patch.
const DefaultOverlap = 0.5

// MaxOverlap bounds Options.Overlap: beyond it the number of patches
// explodes for no gain.
const MaxOverlap = 0.95

// Options control how a volume is segmented.
type Options struct {
	// Mode is ModeResize or ModeSliding; empty follows the model's
	// configuration (resize for model.ModeResize, sliding for
	// model.ModeSpacing).
	Mode string
	// Spacing is the voxel size D, H, W in mm that sliding mode resamples
	// to; zero takes the model's (model.Preprocess.Spacing).
	Spacing [3]float64
	// Overlap is the fraction of a patch that neighbouring patches share in
	// sliding mode, 0 to MaxOverlap (DefaultOverlap is nnU-Net's). The step
	// between patches is at most patch·(1 − Overlap) voxels, shrunk so that
	// the patches cover the volume evenly.
	Overlap float64
	// TTA averages the softmax over the eight mirrorings of the input
	// (none, and every combination of the D, H and W axes), each prediction
	// flipped back before averaging: eight forward passes per patch.
	TTA bool
	// KeepProbs returns the class probabilities on the input's grid too.
	KeepProbs bool
	// Progress, when set, is called after every forward pass with the
	// number done and the total for the volume.
	Progress func(done, total int)
}

// DefaultOptions are the options `covseg segment` starts from: the model's
// mode, nnU-Net's overlap, no test-time augmentation.
func DefaultOptions() Options { return Options{Overlap: DefaultOverlap} }

// Timing says where the time of one Segment call went.
type Timing struct {
	// Preprocess is reorientation, intensity normalisation and the resize
	// or resampling to the network's grid.
	Preprocess time.Duration
	// Model is the network's forward passes, with softmax, flips and patch
	// blending.
	Model time.Duration
	// Resample is the probabilities' way back onto the input's grid:
	// resize, argmax and the reorientation undone.
	Resample time.Duration
	// Forwards counts the network's forward passes.
	Forwards int
}

// Result is the segmentation of one volume.
type Result struct {
	// Mask holds a class index per voxel (0 = background) on the input's
	// grid: its dims and affine are exactly the input volume's.
	Mask *volume.Label
	// Infiltrate is what reports, DICOM SEG and scores count as infiltrate
	// (InfiltrateMask): Mask itself unless the model has a lung class.
	Infiltrate *volume.Label
	// Probs are the class probabilities on the input's grid, one volume per
	// class (two for a one-logit model: background and foreground); nil
	// unless Options.KeepProbs.
	Probs []*volume.Volume
	// Grid is the network grid the volume was resized or resampled to
	// (i, j, k of the reoriented volume: W, H, D).
	Grid volume.Dims
	// Patches is the number of patches (1 in resize mode).
	Patches int
	Timing  Timing
}

// Segmenter segments volumes with one engine and one set of options.
type Segmenter struct {
	eng  Engine
	cfg  model.Config
	opts Options
	mode string
	// spec is the model's preprocessing with the options' geometry: the
	// mode, and in sliding mode the target spacing (D, H, W).
	spec model.Preprocess
}

// New returns a Segmenter running eng with opts, checked against the
// model's configuration.
func New(eng Engine, opts Options) (*Segmenter, error) {
	cfg := eng.Config()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if cfg.InChannels != 1 {
		return nil, fmt.Errorf("infer: the model takes %d input channels; a CT volume has 1", cfg.InChannels)
	}
	s := &Segmenter{eng: eng, cfg: cfg, opts: opts, mode: opts.Mode, spec: cfg.Preprocess}
	if s.mode == "" {
		s.mode = ModeResize
		if cfg.Preprocess.Mode == model.ModeSpacing {
			s.mode = ModeSliding
		}
	}
	switch s.mode {
	case ModeResize:
		s.spec.Mode, s.spec.Spacing = model.ModeResize, [3]float64{}
	case ModeSliding:
		sp := opts.Spacing
		if sp == ([3]float64{}) {
			sp = cfg.Preprocess.Spacing
		}
		if sp == ([3]float64{}) {
			g := cfg.Preprocess.Grid
			return nil, fmt.Errorf("infer: sliding mode needs a target spacing: the model was trained on whole volumes resized to %dx%dx%d and records none", g[0], g[1], g[2])
		}
		for _, x := range sp {
			if !(x > 0) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("infer: spacing %v: want positive finite millimetres", sp)
			}
		}
		s.spec.Mode, s.spec.Spacing = model.ModeSpacing, sp
		if !(opts.Overlap >= 0 && opts.Overlap <= MaxOverlap) {
			return nil, fmt.Errorf("infer: overlap %v: want 0 to %v", opts.Overlap, MaxOverlap)
		}
	default:
		return nil, fmt.Errorf("infer: mode %q, want %q or %q", opts.Mode, ModeResize, ModeSliding)
	}
	return s, nil
}

// Mode returns the geometry mode in use, ModeResize or ModeSliding.
func (s *Segmenter) Mode() string { return s.mode }

// Config returns the model's configuration.
func (s *Segmenter) Config() model.Config { return s.cfg }

// Segment predicts a mask for v, a CT volume in HU with its RAS+ affine.
// v is not changed.
func (s *Segmenter) Segment(v *volume.Volume) (*Result, error) {
	if err := v.Dims.Valid(); err != nil || len(v.Data) != v.Dims.Len() {
		return nil, fmt.Errorf("infer: malformed volume: %d voxels for dims %v", len(v.Data), v.Dims)
	}
	res := &Result{}
	start := time.Now()
	in, err := preprocess.MakeInput(v, s.spec)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	x, plan := in.Image, in.Plan
	res.Grid = x.Dims
	res.Timing.Preprocess = time.Since(start)

	start = time.Now()
	dhw := [3]int{x.Dims[2], x.Dims[1], x.Dims[0]}
	var probs []float32
	if s.mode == ModeResize {
		res.Patches = 1
		probs, err = s.predict(x.Data, dhw, &res.Timing.Forwards, 1)
	} else {
		probs, res.Patches, err = s.slide(x.Data, dhw, in.Pad, &res.Timing.Forwards)
	}
	if err != nil {
		return nil, err
	}
	res.Timing.Model = time.Since(start)

	start = time.Now()
	if err := s.back(res, plan, x, probs); err != nil {
		return nil, err
	}
	res.Timing.Resample = time.Since(start)
	res.Infiltrate = InfiltrateMask(res.Mask, s.cfg.ClassNames)
	return res, nil
}

// IsLungClass reports whether a class name is the lungs (a network trained
// with a lung class: data.preprocess.labels classes, model.class_names
// background, infiltrate, lung), not an infiltrate.
func IsLungClass(name string) bool {
	n := strings.ToLower(name)
	return n == "lung" || n == "lungs"
}

// InfiltrateMask returns the infiltrate of a class mask predicted by a
// model with these class names: mask itself when every class but the
// background is infiltrate (the paper's two classes, or several kinds of
// infiltrate), else a copy (same grid and affine) with 1 where the class is
// neither the background nor a lung class and 0 elsewhere.
func InfiltrateMask(mask *volume.Label, classNames []string) *volume.Label {
	var lung [256]bool
	found := false
	for k, n := range classNames {
		if k > 0 && k < len(lung) && IsLungClass(n) {
			lung[k], found = true, true
		}
	}
	if !found {
		return mask
	}
	out := mask.Clone()
	for i, x := range out.Data {
		if x != 0 && !lung[x] {
			out.Data[i] = 1
		} else {
			out.Data[i] = 0
		}
	}
	return out
}

// Input returns the network's input for v as Segment prepares it, with
// preprocess.MakeInput (the preprocessing training runs too): v reoriented
// to the model's orientation, its intensities scaled, and resized to the
// model's grid (resize mode) or resampled to the target spacing (sliding
// mode, before patches are cut). Its Data is the row-major D×H×W array the
// network reads.
func (s *Segmenter) Input(v *volume.Volume) (*volume.Volume, error) {
	in, err := preprocess.MakeInput(v, s.spec)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	return in.Image, nil
}

// back resizes the class probabilities (on x's grid) onto the reoriented
// input's grid, labels them and undoes the reorientation.
func (s *Segmenter) back(res *Result, plan volume.Reorientation, x *volume.Volume, probs []float32) error {
	n := x.Dims.Len()
	chs := make([]*volume.Volume, len(probs)/n)
	for c := range chs {
		chs[c] = &volume.Volume{Dims: x.Dims, Affine: x.Affine, Data: probs[c*n : (c+1)*n]}
	}
	back, err := volume.ResizeChannels(chs, plan.DstDims, volume.Linear)
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	for _, b := range back {
		// The resize maps the field of view onto itself, so the grid is the
		// reoriented input's; say so exactly rather than up to rounding.
		b.Affine = plan.DstAffine
	}
	mask, err := volume.ArgMax(back)
	if err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	if res.Mask, err = plan.UndoLabel(mask); err != nil {
		return fmt.Errorf("infer: %w", err)
	}
	if !s.opts.KeepProbs {
		return nil
	}
	res.Probs = make([]*volume.Volume, len(back))
	for c, b := range back {
		if res.Probs[c], err = plan.Undo(b); err != nil {
			return fmt.Errorf("infer: %w", err)
		}
	}
	return nil
}

// mirrors lists the flips of one prediction: none, or all eight with TTA.
func (s *Segmenter) mirrors() []int {
	if !s.opts.TTA {
		return []int{0}
	}
	return []int{0, flipW, flipH, flipW | flipH, flipD, flipD | flipW, flipD | flipH, flipD | flipH | flipW}
}

// predict returns the class probabilities [C][D][H][W] of one input
// [D][H][W], averaged over the mirrorings. forwards counts the passes;
// total is the number of inputs the caller will predict, for Progress.
func (s *Segmenter) predict(x []float32, dhw [3]int, forwards *int, total int) ([]float32, error) {
	mirrors := s.mirrors()
	var acc []float32
	for _, m := range mirrors {
		in := x
		if m != 0 {
			in = flip(x, 1, dhw, m)
		}
		logits, _, err := s.eng.Run(in, [5]int{1, 1, dhw[0], dhw[1], dhw[2]})
		if err != nil {
			return nil, err
		}
		c := len(logits) / len(x)
		p := softmax(logits, c)
		if m != 0 {
			p = flip(p, len(p)/len(x), dhw, m)
		}
		if acc == nil {
			acc = p
		} else {
			for i, v := range p {
				acc[i] += v
			}
		}
		*forwards++
		if s.opts.Progress != nil {
			s.opts.Progress(*forwards, total*len(mirrors))
		}
	}
	if len(mirrors) > 1 {
		inv := 1 / float32(len(mirrors))
		for i := range acc {
			acc[i] *= inv
		}
	}
	return acc, nil
}
