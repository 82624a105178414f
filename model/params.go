package model

import (
	"fmt"
	"strings"
)

// Part is a section of the network, for parameter counts and for the
// trainer's parameter groups.
type Part int

// The parts of the network, in forward order.
const (
	PartEncoder Part = iota // stem.*, layer1..4.*: torchvision's r3d_18
	PartBridge              // bridge.*
	PartDecoder             // b1.*, b2.*, b3.*
	PartHead                // head_up.*, res.*, out.*
	numParts
)

// Parts lists every Part in order.
var Parts = [...]Part{PartEncoder, PartBridge, PartDecoder, PartHead}

func (p Part) String() string {
	switch p {
	case PartEncoder:
		return "encoder"
	case PartBridge:
		return "bridge"
	case PartDecoder:
		return "decoder"
	case PartHead:
		return "head"
	}
	return fmt.Sprintf("Part(%d)", int(p))
}

// PartOf returns the part a parameter belongs to from its PyTorch name.
func PartOf(name string) (Part, error) {
	first, _, _ := strings.Cut(name, ".")
	switch first {
	case "stem", "layer1", "layer2", "layer3", "layer4":
		return PartEncoder, nil
	case "bridge":
		return PartBridge, nil
	case "b1", "b2", "b3":
		return PartDecoder, nil
	case "head_up", "res", "out":
		return PartHead, nil
	}
	return 0, fmt.Errorf("model: %q is not a parameter name of %s", name, Arch)
}

// Kind is the role of a parameter tensor.
type Kind int

// Parameter kinds. Only KindRunningMean and KindRunningVar are not trained:
// they are BatchNorm's running statistics, updated in training mode.
const (
	KindConvWeight  Kind = iota // "<conv>.weight" [Out, In, kD, kH, kW]
	KindConvBias                // "<conv>.bias" [Out]
	KindBNWeight                // "<bn>.weight" [C], γ
	KindBNBias                  // "<bn>.bias" [C], β
	KindRunningMean             // "<bn>.running_mean" [C]
	KindRunningVar              // "<bn>.running_var" [C]
)

func (k Kind) String() string {
	return [...]string{"conv weight", "conv bias", "bn weight", "bn bias", "running mean", "running var"}[k]
}

// ParamSpec describes one tensor of the model's state.
type ParamSpec struct {
	Name  string // PyTorch name, e.g. "layer2.0.downsample.1.running_var"
	Shape []int
	Kind  Kind
	Part  Part
	// ZeroInit marks BN γ that starts at 0 (the ResBlock's last BN).
	ZeroInit bool
	// FanIn and FanOut of a convolution weight (In·k³ and Out·k³).
	FanIn, FanOut int
}

// Size is the number of elements.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Trainable reports whether the optimiser updates the tensor: all but the
// BatchNorm running statistics.
func (p ParamSpec) Trainable() bool {
	return p.Kind != KindRunningMean && p.Kind != KindRunningVar
}

// WeightDecay reports whether weight decay applies: only to convolution
// weights, never to BatchNorm parameters or biases (fastai's convention).
func (p ParamSpec) WeightDecay() bool { return p.Kind == KindConvWeight }

// NoWeightDecay reports whether the named parameter is exempt from weight
// decay (BatchNorm parameters and biases; running statistics are not trained
// at all). Unknown names report false.
func NoWeightDecay(name string) bool {
	return strings.HasSuffix(name, ".bias") || isBNName(name)
}

// isBNName tells BatchNorm tensors from convolution tensors by name alone.
func isBNName(name string) bool {
	if strings.HasSuffix(name, ".running_mean") || strings.HasSuffix(name, ".running_var") {
		return true
	}
	module, ok := strings.CutSuffix(name, ".weight")
	if !ok {
		module, ok = strings.CutSuffix(name, ".bias")
	}
	if !ok {
		return false
	}
	// BatchNorm modules: "stem.1", "<x>.conv1.1", "<x>.downsample.1",
	// "bridge.0", "<convlayer>.1", "<b>.skip_bn", "out.1".
	return strings.HasSuffix(module, ".1") || strings.HasSuffix(module, ".skip_bn") || module == "bridge.0"
}

// IsEncoderParam reports whether a parameter belongs to the encoder (stem.*,
// layer1..4.*), the group the trainer may freeze or give its own learning rate.
func IsEncoderParam(name string) bool {
	p, err := PartOf(name)
	return err == nil && p == PartEncoder
}

// ParamSpecs lists every tensor of the model's state (trainable parameters
// and BatchNorm running statistics) in forward order, as the architecture
// creates them. The names are the PyTorch names; see the package comment.
func ParamSpecs(cfg Config) ([]ParamSpec, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ops := &specOps{}
	x := shapeT{n: 1, c: cfg.InChannels, s: [3]int{8, 32, 32}}
	UNet[shapeT](ops, x, cfg)
	if ops.err != nil {
		return nil, ops.err
	}
	return ops.params, nil
}

// Counts is the number of elements of the trainable parameters of each part,
// and of the BatchNorm running statistics (buffers) of the whole model.
type Counts struct {
	Part    [numParts]int
	Total   int
	Buffers int
}

// CountParams counts the parameters of specs by part.
func CountParams(specs []ParamSpec) Counts {
	var c Counts
	for _, p := range specs {
		if !p.Trainable() {
			c.Buffers += p.Size()
			continue
		}
		c.Part[p.Part] += p.Size()
		c.Total += p.Size()
	}
	return c
}

// shapeT is the shape of an NCDHW tensor, the "tensor" of specOps.
type shapeT struct {
	n, c int
	s    [3]int
}

// specOps runs the architecture on shapes alone: it records the parameters
// and checks that channel counts and spatial shapes fit together.
type specOps struct {
	params []ParamSpec
	err    error
}

func (o *specOps) fail(format string, args ...any) {
	if o.err == nil {
		o.err = fmt.Errorf("model: architecture: "+format, args...)
	}
}

func (o *specOps) add(name string, kind Kind, shape ...int) *ParamSpec {
	part, err := PartOf(name)
	if err != nil {
		o.fail("%v", err)
	}
	o.params = append(o.params, ParamSpec{Name: name, Shape: shape, Kind: kind, Part: part})
	return &o.params[len(o.params)-1]
}

func (o *specOps) Conv3d(name string, x shapeT, spec ConvSpec) shapeT {
	if x.c != spec.In {
		o.fail("%s: input has %d channels, conv expects %d", name, x.c, spec.In)
	}
	k := spec.Kernel
	w := o.add(name+".weight", KindConvWeight, spec.Out, spec.In, k[0], k[1], k[2])
	w.FanIn = spec.In * k[0] * k[1] * k[2]
	w.FanOut = spec.Out * k[0] * k[1] * k[2]
	if spec.Bias {
		b := o.add(name+".bias", KindConvBias, spec.Out)
		b.FanIn = w.FanIn
	}
	y := shapeT{n: x.n, c: spec.Out}
	for i := range 3 {
		y.s[i] = ConvOutSize(x.s[i], spec.Kernel[i], spec.Stride[i], spec.Padding[i])
		if y.s[i] < 1 {
			o.fail("%s: input %v is too small", name, x.s)
		}
	}
	return y
}

func (o *specOps) BatchNorm3d(name string, x shapeT, spec BNSpec) shapeT {
	if x.c != spec.Channels {
		o.fail("%s: input has %d channels, BN expects %d", name, x.c, spec.Channels)
	}
	o.add(name+".weight", KindBNWeight, spec.Channels).ZeroInit = spec.ZeroGamma
	o.add(name+".bias", KindBNBias, spec.Channels)
	o.add(name+".running_mean", KindRunningMean, spec.Channels)
	o.add(name+".running_var", KindRunningVar, spec.Channels)
	return x
}

func (o *specOps) ReLU(x shapeT) shapeT { return x }

func (o *specOps) Add(a, b shapeT) shapeT {
	if a != b {
		o.fail("adding tensors of shapes %v and %v", a, b)
	}
	return a
}

func (o *specOps) Concat(xs ...shapeT) shapeT {
	y := xs[0]
	for _, x := range xs[1:] {
		if x.n != y.n || x.s != y.s {
			o.fail("concatenating tensors of shapes %v and %v", y, x)
		}
		y.c += x.c
	}
	return y
}

func (o *specOps) ResizeNearestLike(x, ref shapeT) shapeT {
	x.s = ref.s
	return x
}

// ConvOutSize is the output size of a convolution along one axis:
// ⌊(in + 2·pad − kernel) / stride⌋ + 1.
func ConvOutSize(in, kernel, stride, pad int) int {
	return (in+2*pad-kernel)/stride + 1
}
