// Package preprocess turns a case (a CT and its lesion mask) into what the
// network trains on, and caches the result.
//
// Two ways are offered. The paper's (ModeResize, the default): the whole
// volume, reoriented to canonical RAS+, is resized to a fixed grid (20x224x224
// by default; a schedule can change the grid by epoch, the paper's
// progressive resizing), the image trilinearly and the mask by nearest
// neighbour (faimed3d's January 2021 code resized masks trilinearly and
// truncated them, which shrinks lesions; that is not repeated here). And
// nnU-Net's (ModePatch): the volume resampled to a target voxel spacing, from
// which RandomPatch cuts fixed-size patches, a fraction of them centred on a
// lesion voxel.
//
// Intensities: a HU window (−1024…600 HU by default) clips the CT, then
// either maps the window linearly to 0…1 (ScaleWindow) or the clipped
// volume's own range to 0…1 (ScaleMinMax, the paper's per-volume scaling).
//
// Axes. Grids and patch sizes are given in the network's order D×H×W
// (NCDHW). After canonical reorientation voxel (i, j, k) runs x (towards the
// patient's right), y (anterior), z (superior), and the network axes are
//
//	D = k (slices, z)   H = j (y)   W = i (x)
//
// so volume.Dims{W, H, D}. As volumes store i fastest, a volume's Data is
// exactly the row-major D×H×W array the network takes: no transpose.
package preprocess

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/covseg/covseg/volume"
)

// Grid is a size in the network's axis order: depth (slices), height,
// width. In YAML it reads and writes as "20x224x224" (a [20, 224, 224] list
// reads too).
type Grid [3]int

// DefaultGrid is the paper's input size.
var DefaultGrid = Grid{20, 224, 224}

// Dims returns the grid as volume dims (i, j, k) = (W, H, D).
func (g Grid) Dims() volume.Dims { return volume.Dims{g[2], g[1], g[0]} }

// GridOf returns the grid of volume dims (i, j, k): (k, j, i).
func GridOf(d volume.Dims) Grid { return Grid{d[2], d[1], d[0]} }

// String writes DxHxW.
func (g Grid) String() string { return fmt.Sprintf("%dx%dx%d", g[0], g[1], g[2]) }

// Valid checks that every size is positive and the grid is not absurd.
func (g Grid) Valid() error {
	if err := g.Dims().Valid(); err != nil {
		return fmt.Errorf("grid %s: %w", g, err)
	}
	if g[0]*g[1]*g[2] > 1<<28 {
		return fmt.Errorf("grid %s: more than %d voxels", g, 1<<28)
	}
	return nil
}

// ParseGrid reads "DxHxW".
func ParseGrid(s string) (Grid, error) {
	var g Grid
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "x")
	if len(parts) != 3 {
		return g, fmt.Errorf("grid %q: want DxHxW, e.g. 20x224x224", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return g, fmt.Errorf("grid %q: want positive whole numbers DxHxW", s)
		}
		g[i] = n
	}
	return g, g.Valid()
}

// UnmarshalYAML reads "DxHxW" or [D, H, W].
func (g *Grid) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, err := ParseGrid(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*g = v
		return nil
	}
	var xs []int
	if err := n.Decode(&xs); err != nil || len(xs) != 3 {
		return fmt.Errorf("line %d: a grid is DxHxW or a list of three sizes", n.Line)
	}
	*g = Grid{xs[0], xs[1], xs[2]}
	return g.Valid()
}

// MarshalYAML writes "DxHxW".
func (g Grid) MarshalYAML() (any, error) { return g.String(), nil }

// Mode chooses how volumes become network inputs.
type Mode string

// The modes.
const (
	// ModeResize resizes the whole volume to the grid (the paper).
	ModeResize Mode = "resize"
	// ModePatch resamples to a spacing and trains on patches (nnU-Net).
	ModePatch Mode = "patch"
)

// Scaling chooses how windowed HU become 0…1.
type Scaling string

// The scalings.
const (
	// ScaleWindow maps the window's bounds to 0 and 1.
	ScaleWindow Scaling = "window"
	// ScaleMinMax maps each clipped volume's own range to 0…1.
	ScaleMinMax Scaling = "minmax"
)

// Labels says what the labels of a case's mask mean.
type Labels string

// The label meanings.
const (
	// LabelsBinary (the default, also when empty): every label above 0 is
	// lesion, class 1 — RICORD's, MosMedData's and Coronacases' infection
	// masks, whatever values they use.
	LabelsBinary Labels = "binary"
	// LabelsClasses: each label is a class index for a network with more
	// than two classes — 0 background, 1 the lesion (the class on which
	// lesion-centred patches are centred), 2 and on further classes, such
	// as the rest of the lungs (pipeline.DemoConfig.LungClass), which
	// shows the network where the lungs end beside lesions that touch the
	// chest wall. Masks are read as they are; the trainer refuses a label
	// outside its classes.
	LabelsClasses Labels = "classes"
)

// Stage is one step of a progressive-resizing schedule: from epoch From
// (counted from 0) on, volumes are resized to Grid.
type Stage struct {
	From int  `yaml:"from_epoch"`
	Grid Grid `yaml:"grid"`
}

// Config holds every preprocessing setting; the trainer's YAML embeds it.
type Config struct {
	Mode Mode `yaml:"mode"`
	// Grid is the resize target (ModeResize) when Schedule is empty or
	// before its first stage.
	Grid Grid `yaml:"grid"`
	// Schedule changes the grid by epoch (progressive resizing), e.g.
	// 20x112x112 from epoch 0, 20x224x224 from epoch 10.
	Schedule []Stage `yaml:"schedule,omitempty"`
	// WindowLo and WindowHi clip the HU values.
	WindowLo float64 `yaml:"window_lo"`
	WindowHi float64 `yaml:"window_hi"`
	Scaling  Scaling `yaml:"scaling"`
	// Spacing is the target voxel size in mm for ModePatch, in network
	// order: between slices (z), rows (y), columns (x).
	Spacing [3]float64 `yaml:"spacing"`
	// Patch is the patch size for ModePatch, D×H×W.
	Patch Grid `yaml:"patch"`
	// LesionFraction is the share of patches centred on a lesion voxel
	// (nnU-Net's oversampling of the foreground, 1/3 there).
	LesionFraction float64 `yaml:"lesion_fraction"`
	// Labels is what the masks' labels mean: LabelsBinary when empty.
	Labels Labels `yaml:"labels,omitempty"`
}

// DefaultConfig is the paper's preprocessing, with nnU-Net-like patch
// settings ready for ModePatch.
func DefaultConfig() Config {
	return Config{
		Mode:           ModeResize,
		Grid:           DefaultGrid,
		WindowLo:       volume.DefaultWindowLo,
		WindowHi:       volume.DefaultWindowHi,
		Scaling:        ScaleWindow,
		Spacing:        [3]float64{5, 1.5, 1.5},
		Patch:          Grid{32, 160, 160},
		LesionFraction: 1.0 / 3,
	}
}

// Validate checks a configuration.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeResize:
		if err := c.Grid.Valid(); err != nil {
			return fmt.Errorf("preprocess: %w", err)
		}
		for i, s := range c.Schedule {
			if err := s.Grid.Valid(); err != nil {
				return fmt.Errorf("preprocess: schedule stage %d: %w", i, err)
			}
			if s.From < 0 || (i > 0 && s.From <= c.Schedule[i-1].From) {
				return fmt.Errorf("preprocess: schedule stage %d starts at epoch %d: stages must start at increasing epochs >= 0", i, s.From)
			}
		}
	case ModePatch:
		if err := c.Patch.Valid(); err != nil {
			return fmt.Errorf("preprocess: patch: %w", err)
		}
		for _, s := range c.Spacing {
			if !(s > 0 && s <= 100) {
				return fmt.Errorf("preprocess: spacing %v: each must be in (0, 100] mm", c.Spacing)
			}
		}
		if !(c.LesionFraction >= 0 && c.LesionFraction <= 1) {
			return fmt.Errorf("preprocess: lesion_fraction %g: want [0, 1]", c.LesionFraction)
		}
	default:
		return fmt.Errorf("preprocess: mode %q: want %s or %s", c.Mode, ModeResize, ModePatch)
	}
	if !(c.WindowLo < c.WindowHi) || c.WindowLo < -1e5 || c.WindowHi > 1e5 {
		return fmt.Errorf("preprocess: window [%g, %g]: want lo < hi, finite", c.WindowLo, c.WindowHi)
	}
	if c.Scaling != ScaleWindow && c.Scaling != ScaleMinMax {
		return fmt.Errorf("preprocess: scaling %q: want %s or %s", c.Scaling, ScaleWindow, ScaleMinMax)
	}
	if c.Labels != "" && c.Labels != LabelsBinary && c.Labels != LabelsClasses {
		return fmt.Errorf("preprocess: labels %q: want %s or %s", c.Labels, LabelsBinary, LabelsClasses)
	}
	return nil
}

// GridAt returns the resize grid of an epoch: that of the last schedule
// stage started at or before it, or Grid.
func (c Config) GridAt(epoch int) Grid {
	g := c.Grid
	for _, s := range c.Schedule {
		if s.From <= epoch {
			g = s.Grid
		}
	}
	return g
}

// InputGrid returns the size of the network input at an epoch: the resize
// grid, or the patch size in ModePatch.
func (c Config) InputGrid(epoch int) Grid {
	if c.Mode == ModePatch {
		return c.Patch
	}
	return c.GridAt(epoch)
}
