// Package model defines covseg's network: the 3D U-Net of Bressem et al. 2021
// with torchvision's R3D-18 as encoder.
//
// The architecture is written once, against the small Ops interface below,
// and every engine implements Ops: GoMLX (training and the pure-Go fallback)
// and the ONNX graph builder (export for ONNX Runtime). There are no two
// hand-kept copies of the network.
//
// Tensors are NCDHW. Parameters are named as PyTorch names them, so state
// dicts map one to one: the encoder with torchvision's r3d_18 names
// ("stem.0.weight", "layer1.0.conv1.0.weight", "layer2.0.downsample.1.running_mean",
// ...), the decoder with the names of ../shared/bench/torch_unet3d.py
// ("bridge.2.0.weight", "b1.up.0.weight", "b1.skip_bn.bias", "head_up.bias",
// "res.c2.1.weight", "out.1.running_var", ...).
package model

// ConvSpec describes a 3D convolution. Dilation is always 1 and groups 1.
// Axes of the 3-element arrays are D, H, W.
type ConvSpec struct {
	In, Out int
	Kernel  [3]int
	Stride  [3]int
	Padding [3]int // symmetric zero padding
	Bias    bool
}

// BNSpec describes a BatchNorm3d: eps 1e-5, momentum 0.1, PyTorch semantics
// (batch statistics in training with the unbiased variance in the running
// average; running statistics at inference).
type BNSpec struct {
	Channels int
	// ZeroGamma initialises the scale to 0 instead of 1 (fastai's ResBlock
	// trick); it only matters when the parameter is created.
	ZeroGamma bool
}

// Ops is what the network needs from an engine. T is the engine's handle of
// a tensor (a *graph.Node for GoMLX, a value name for ONNX).
//
// name is the PyTorch module path of the layer; the engine appends
// ".weight", ".bias", ".running_mean" and ".running_var" to find or create
// the parameters.
type Ops[T any] interface {
	// Conv3d: weight "<name>.weight" [Out, In, kD, kH, kW]; bias "<name>.bias" [Out] if spec.Bias.
	Conv3d(name string, x T, spec ConvSpec) T
	// BatchNorm3d: "<name>.weight", "<name>.bias", "<name>.running_mean", "<name>.running_var", each [Channels].
	BatchNorm3d(name string, x T, spec BNSpec) T
	// ReLU is max(x, 0).
	ReLU(x T) T
	// Add is the elementwise sum of two tensors of the same shape.
	Add(a, b T) T
	// Concat joins tensors along the channel axis (1).
	Concat(xs ...T) T
	// ResizeNearestLike resizes the spatial axes (D, H, W) of x to those of
	// ref by PyTorch's "nearest": src = floor(dst * in / out). It returns x
	// unchanged when the shapes already agree.
	ResizeNearestLike(x, ref T) T
}
