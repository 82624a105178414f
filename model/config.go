package model

import (
	"fmt"
	"math"
	"strings"
)

// Arch names the network this package builds. It is saved with every model
// so that a file of another network is refused instead of misread.
const Arch = "r3d18-unet3d"

// Config is everything needed to rebuild a model and to feed it: the
// architecture options, the class names and the preprocessing it was (or will
// be) trained with. It is saved with the weights; the training, inference and
// export code read it from there rather than from flags.
type Config struct {
	// Arch must be the constant Arch.
	Arch string `json:"arch"`
	// Classes is the number of output channels (logits), background included.
	// The paper segments infiltrates against background: 2.
	Classes int `json:"classes"`
	// ClassNames has one name per class, index 0 being the background.
	ClassNames []string `json:"class_names"`
	// InChannels is the number of input channels: 1 for CT. torchvision's
	// pretrained stem has 3 (RGB); for 1 it is summed over them.
	InChannels int `json:"in_channels"`
	// Width scales every channel count of the network: the stem has 64·Width
	// channels (which must be a whole number), layer1..4 64, 128, 256 and 512
	// times Width, and the decoder follows from those exactly as at full
	// width. Width 1 is the paper's network (95.3 M parameters); smaller
	// widths are for tests and demos and cannot use the pretrained encoder.
	Width float64 `json:"width"`
	// Preprocess says how a CT becomes the network's input.
	Preprocess Preprocess `json:"preprocess"`
	// Encoder records where the encoder's initial weights came from.
	Encoder EncoderSource `json:"encoder"`
}

// Preprocess describes how a CT volume becomes the network's input tensor
// [N, InChannels, D, H, W], and so how predictions map back to it.
//
// The network's axes D, H and W are the volume's k, j and i axes (i varies
// fastest, as in the volume package), after the volume has been reoriented to
// Orientation.
type Preprocess struct {
	// WindowLow and WindowHigh are the HU window: intensities are clipped to
	// [WindowLow, WindowHigh] and mapped linearly onto [0, 1].
	WindowLow  float64 `json:"window_low"`
	WindowHigh float64 `json:"window_high"`
	// Normalize says how clipped HU become [0, 1]: NormNone maps the
	// window's ends, NormMinMax the volume's own clipped range (its lowest
	// and highest HU within the window; the paper's per-volume min–max
	// scaling). preprocess.MakeInput carries it out, in training and in
	// inference alike.
	Normalize string `json:"normalize"`
	// Orientation is the axis code (nibabel's convention: the direction each
	// of i, j, k points to, e.g. "LPS" = i towards the patient's Left, j
	// Posterior, k Superior) that volumes are reoriented to before anything
	// else. "LPS" is the order in which DICOM axial slices are displayed.
	Orientation string `json:"orientation"`
	// Mode is ModeResize (the paper's way: the whole volume is resampled to
	// Grid, and the prediction back to the volume's grid) or ModeSpacing
	// (nnU-Net's way: the volume is resampled to Spacing and patches of Grid
	// voxels slide over it).
	Mode string `json:"mode"`
	// Grid is the input size D, H, W in voxels: the whole volume in
	// ModeResize, the patch in ModeSpacing. The paper uses 20 x 224 x 224.
	Grid [3]int `json:"grid"`
	// Spacing is the voxel size along D, H, W in millimetres for
	// ModeSpacing; unused (zero) in ModeResize.
	Spacing [3]float64 `json:"spacing,omitempty"`
}

// Normalisation modes of Preprocess.Normalize.
const (
	NormNone   = "none"
	NormMinMax = "minmax"
)

// Geometry modes of Preprocess.Mode.
const (
	ModeResize  = "resize"
	ModeSpacing = "spacing"
)

// EncoderSource records where the encoder's weights came from.
type EncoderSource struct {
	// Kind is "random" (initialised here, Seed says how) or "torchvision"
	// (read from a state_dict file such as r3d_18-b3b3357e.pth).
	Kind string `json:"kind"`
	// File is the base name of the weights file, SHA256 its checksum.
	File   string `json:"file,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Seed is the seed of the random initialisation of whatever the file did
	// not provide (the decoder, always).
	Seed uint64 `json:"seed"`
}

// Encoder source kinds.
const (
	SourceRandom      = "random"
	SourceTorchvision = "torchvision"
)

// DefaultConfig returns the paper's network: 2 classes, one CT channel, full
// width, HU window -1024..600 mapped to 0..1, the whole volume resized to
// 20 x 224 x 224.
func DefaultConfig() Config {
	return Config{
		Arch:       Arch,
		Classes:    2,
		ClassNames: []string{"background", "infiltrate"},
		InChannels: 1,
		Width:      1,
		Preprocess: Preprocess{
			WindowLow:   -1024,
			WindowHigh:  600,
			Normalize:   NormNone,
			Orientation: "LPS",
			Mode:        ModeResize,
			Grid:        [3]int{20, 224, 224},
		},
		Encoder: EncoderSource{Kind: SourceRandom},
	}
}

// DefaultClassNames names n classes: "background", "infiltrate" for two,
// "background", "class1", ... otherwise.
func DefaultClassNames(n int) []string {
	if n == 2 {
		return []string{"background", "infiltrate"}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("class%d", i)
	}
	if n > 0 {
		names[0] = "background"
	}
	return names
}

// maxChannels bounds channel counts so that absurd configurations (from a
// corrupt file, say) are refused before anything is allocated.
const maxChannels = 1 << 14

// Validate reports the first problem with c, or nil.
func (c Config) Validate() error {
	if c.Arch != Arch {
		return fmt.Errorf("model: architecture %q, want %q", c.Arch, Arch)
	}
	if c.Classes < 1 || c.Classes > 1024 {
		return fmt.Errorf("model: %d classes, want 1..1024", c.Classes)
	}
	if len(c.ClassNames) != c.Classes {
		return fmt.Errorf("model: %d class names for %d classes", len(c.ClassNames), c.Classes)
	}
	if c.InChannels < 1 || c.InChannels > 64 {
		return fmt.Errorf("model: %d input channels, want 1..64", c.InChannels)
	}
	if _, err := c.base(); err != nil {
		return err
	}
	return c.Preprocess.Validate()
}

// base returns the stem's channel count, 64·Width, which must be whole.
func (c Config) base() (int, error) {
	b := 64 * c.Width
	r := math.Round(b)
	if !(c.Width > 0) || math.Abs(b-r) > 1e-9 || r < 1 || 16*r > maxChannels {
		return 0, fmt.Errorf("model: width %v: 64·width must be a whole number from 1 to %d", c.Width, maxChannels/16)
	}
	return int(r), nil
}

// Validate reports the first problem with p, or nil.
func (p Preprocess) Validate() error {
	if !(p.WindowHigh > p.WindowLow) || math.IsInf(p.WindowLow, 0) || math.IsInf(p.WindowHigh, 0) {
		return fmt.Errorf("model: HU window [%v, %v] is empty or not finite", p.WindowLow, p.WindowHigh)
	}
	switch p.Normalize {
	case NormNone, NormMinMax:
	default:
		return fmt.Errorf("model: normalisation %q, want %q or %q", p.Normalize, NormNone, NormMinMax)
	}
	if err := validAxcodes(p.Orientation); err != nil {
		return err
	}
	for i, n := range p.Grid {
		if n < 1 || n > 4096 {
			return fmt.Errorf("model: input grid %v: size %d of axis %d not in 1..4096", p.Grid, n, i)
		}
	}
	switch p.Mode {
	case ModeResize:
	case ModeSpacing:
		for _, s := range p.Spacing {
			if !(s > 0) || math.IsInf(s, 0) {
				return fmt.Errorf("model: spacing mode needs positive voxel sizes, got %v", p.Spacing)
			}
		}
	default:
		return fmt.Errorf("model: geometry mode %q, want %q or %q", p.Mode, ModeResize, ModeSpacing)
	}
	return nil
}

// validAxcodes checks a three-letter orientation code such as "LPS" or "RAS":
// one of L/R, one of P/A and one of I/S, in any order.
func validAxcodes(code string) error {
	if len(code) != 3 {
		return fmt.Errorf("model: orientation %q is not three axis letters like \"LPS\"", code)
	}
	seen := map[byte]bool{}
	for i := 0; i < 3; i++ {
		c := code[i]
		var axis byte
		switch c {
		case 'L', 'R':
			axis = 'x'
		case 'P', 'A':
			axis = 'y'
		case 'I', 'S':
			axis = 'z'
		default:
			return fmt.Errorf("model: orientation %q: %q is not one of L, R, P, A, I, S", code, c)
		}
		if seen[axis] {
			return fmt.Errorf("model: orientation %q names an axis twice", code)
		}
		seen[axis] = true
	}
	return nil
}

// channels are the channel counts of every stage, derived from Width exactly
// as torch_unet3d.py derives them at full width.
type channels struct {
	enc            [4]int // layer1..layer4 (the stem has enc[0])
	bridge         int    // the bridge's inner width
	upIn, skip, nf [3]int // U-Net blocks b1..b3: input, skip and output channels
	head           int    // output of b3, width of head_up
	res            int    // head + input channels
}

func (c Config) channels() channels {
	b, err := c.base()
	if err != nil {
		panic(err) // callers validate first; Encoder and UNet document it
	}
	var ch channels
	ch.enc = [4]int{b, 2 * b, 4 * b, 8 * b}
	ch.bridge = 16 * b
	up := ch.enc[3]
	skips := [3]int{ch.enc[2], ch.enc[1], ch.enc[0]}
	for i := range 3 {
		ni := up/2 + skips[i]
		nf := ni
		if i == 2 { // the last block halves: fastai's final_div=False
			nf = ni / 2
		}
		ch.upIn[i], ch.skip[i], ch.nf[i] = up, skips[i], nf
		up = nf
	}
	ch.head = up
	ch.res = up + c.InChannels
	return ch
}

// String is a one-line summary of the architecture.
func (c Config) String() string {
	return fmt.Sprintf("%s width %v (stem %v ch), %d input channel(s), %d classes (%s)",
		c.Arch, c.Width, 64*c.Width, c.InChannels, c.Classes, strings.Join(c.ClassNames, ", "))
}
