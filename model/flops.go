package model

import "fmt"

// ConvFLOPs counts the floating-point operations of the convolutions of one
// forward pass of the network on an input of batch n and spatial size
// D×H×W: two (a multiply and an add) per multiply-add, summed over every
// Conv3d, as ../shared/bench/torch_unet3d.py counts them
// (2 · output elements · input channels · kernel volume). BatchNorms,
// ReLUs, additions and resizes are left out: they are a fraction of a
// percent of the total. The paper's network on 1×1×20×224×224 takes about
// 3.98 TFLOP.
func ConvFLOPs(cfg Config, n, d, h, w int) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	if n < 1 || d < 1 || h < 1 || w < 1 {
		return 0, fmt.Errorf("model: FLOPs of an empty input %dx%dx%dx%d", n, d, h, w)
	}
	ops := &flopOps{}
	UNet[shapeT](ops, shapeT{n: n, c: cfg.InChannels, s: [3]int{d, h, w}}, cfg)
	if ops.err != nil {
		return 0, ops.err
	}
	return ops.flops, nil
}

// flopOps is specOps that also counts convolution FLOPs.
type flopOps struct {
	specOps
	flops int64
}

func (o *flopOps) Conv3d(name string, x shapeT, spec ConvSpec) shapeT {
	y := o.specOps.Conv3d(name, x, spec)
	k := int64(spec.Kernel[0] * spec.Kernel[1] * spec.Kernel[2])
	out := int64(y.n) * int64(y.c) * int64(y.s[0]) * int64(y.s[1]) * int64(y.s[2])
	o.flops += 2 * out * int64(spec.In) * k
	return y
}
