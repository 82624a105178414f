package model

import "fmt"

// Features are the outputs of the encoder's stages: the stem and layer1..4 of
// torchvision's r3d_18. The decoder takes layer1..3 as skips and layer4 as
// its input.
type Features[T any] struct {
	Stem, Layer1, Layer2, Layer3, Layer4 T
}

// Encoder is torchvision's r3d_18 without avgpool and fc: a stem of
// Conv3d(in→64, kernel (3,7,7), stride (1,2,2), padding (1,3,3)) + BN + ReLU,
// then layer1..layer4 of two BasicBlocks each (64, 128, 256, 512 channels,
// scaled by cfg.Width); layer2..4 halve every spatial size.
//
// cfg must be valid (Config.Validate); x is [N, cfg.InChannels, D, H, W].
func Encoder[T any](ops Ops[T], x T, cfg Config) Features[T] {
	ch := cfg.channels()
	var f Features[T]
	s := ops.Conv3d("stem.0", x, ConvSpec{
		In: cfg.InChannels, Out: ch.enc[0],
		Kernel: [3]int{3, 7, 7}, Stride: [3]int{1, 2, 2}, Padding: [3]int{1, 3, 3},
	})
	f.Stem = ops.ReLU(ops.BatchNorm3d("stem.1", s, BNSpec{Channels: ch.enc[0]}))
	y := f.Stem
	in := ch.enc[0]
	outs := [4]*T{&f.Layer1, &f.Layer2, &f.Layer3, &f.Layer4}
	for i, out := range ch.enc {
		stride := 2
		if i == 0 {
			stride = 1
		}
		name := fmt.Sprintf("layer%d", i+1)
		y = basicBlock(ops, name+".0", y, in, out, stride)
		y = basicBlock(ops, name+".1", y, out, out, 1)
		*outs[i] = y
		in = out
	}
	return f
}

// basicBlock is torchvision's BasicBlock with Conv3DSimple: conv1 (3x3x3,
// stride) + BN + ReLU, conv2 (3x3x3) + BN, plus the identity or, when the
// shape changes, a 1x1x1 strided conv + BN; then ReLU.
func basicBlock[T any](ops Ops[T], name string, x T, in, out, stride int) T {
	s := [3]int{stride, stride, stride}
	y := ops.Conv3d(name+".conv1.0", x, conv3(in, out, s, 1))
	y = ops.ReLU(ops.BatchNorm3d(name+".conv1.1", y, BNSpec{Channels: out}))
	y = ops.Conv3d(name+".conv2.0", y, conv3(out, out, [3]int{1, 1, 1}, 1))
	y = ops.BatchNorm3d(name+".conv2.1", y, BNSpec{Channels: out})
	res := x
	if stride != 1 || in != out {
		res = ops.Conv3d(name+".downsample.0", x, ConvSpec{
			In: in, Out: out, Kernel: [3]int{1, 1, 1}, Stride: s,
		})
		res = ops.BatchNorm3d(name+".downsample.1", res, BNSpec{Channels: out})
	}
	return ops.ReLU(ops.Add(y, res))
}

// conv3 is a 3x3x3 convolution without bias.
func conv3(in, out int, stride [3]int, pad int) ConvSpec {
	return ConvSpec{
		In: in, Out: out, Kernel: [3]int{3, 3, 3}, Stride: stride,
		Padding: [3]int{pad, pad, pad},
	}
}

// convLayer is fastai's ConvLayer: 3x3x3 conv (no bias) + BN, then ReLU if
// relu. PyTorch names: "<name>.0" for the conv, "<name>.1" for the BN.
func convLayer[T any](ops Ops[T], name string, x T, in, out, pad int, relu bool, zeroGamma bool) T {
	y := ops.Conv3d(name+".0", x, conv3(in, out, [3]int{1, 1, 1}, pad))
	y = ops.BatchNorm3d(name+".1", y, BNSpec{Channels: out, ZeroGamma: zeroGamma})
	if relu {
		y = ops.ReLU(y)
	}
	return y
}

// Bridge joins encoder and decoder: BN → ReLU → ConvLayer 512→1024 →
// ConvLayer 1024→512 (at full width).
func Bridge[T any](ops Ops[T], x T, cfg Config) T {
	ch := cfg.channels()
	y := ops.ReLU(ops.BatchNorm3d("bridge.0", x, BNSpec{Channels: ch.enc[3]}))
	y = convLayer(ops, "bridge.2", y, ch.enc[3], ch.bridge, 1, true, false)
	return convLayer(ops, "bridge.3", y, ch.bridge, ch.enc[3], 1, true, false)
}

// unetBlock is faimed3d's U-Net block: up = ConvLayer with padding 2 (its
// stride-1 transposed convolution, which grows every dimension by 2), resized
// to the skip's shape by nearest neighbour; then ReLU(concat[up, BN(skip)])
// through two ConvLayers.
func unetBlock[T any](ops Ops[T], name string, x, skip T, upIn, skipIn, nf int) T {
	up := convLayer(ops, name+".up", x, upIn, upIn/2, 2, true, false)
	up = ops.ResizeNearestLike(up, skip)
	s := ops.BatchNorm3d(name+".skip_bn", skip, BNSpec{Channels: skipIn})
	y := ops.ReLU(ops.Concat(up, s))
	y = convLayer(ops, name+".conv1", y, upIn/2+skipIn, nf, 1, true, false)
	return convLayer(ops, name+".conv2", y, nf, nf, 1, true, false)
}

// Decoder runs the three U-Net blocks on the bridge's output y with the
// encoder's layer3, layer2 and layer1 as skips.
func Decoder[T any](ops Ops[T], y T, f Features[T], cfg Config) T {
	ch := cfg.channels()
	skips := [3]T{f.Layer3, f.Layer2, f.Layer1}
	for i := range 3 {
		y = unetBlock(ops, fmt.Sprintf("b%d", i+1), y, skips[i], ch.upIn[i], ch.skip[i], ch.nf[i])
	}
	return y
}

// Head brings the decoder's output y back to the input's resolution: a 3x3x3
// conv with padding 2 and bias, nearest resize to x's D, H, W, concat with x,
// a ResBlock (ConvLayer, then conv + BN with γ starting at 0, identity added,
// ReLU), a 1x1x1 conv to the classes and a BN. It returns the logits.
func Head[T any](ops Ops[T], y, x T, cfg Config) T {
	ch := cfg.channels()
	y = ops.Conv3d("head_up", y, ConvSpec{
		In: ch.head, Out: ch.head, Kernel: [3]int{3, 3, 3}, Stride: [3]int{1, 1, 1},
		Padding: [3]int{2, 2, 2}, Bias: true,
	})
	y = ops.ResizeNearestLike(y, x)
	y = ops.Concat(y, x)
	r := convLayer(ops, "res.c1", y, ch.res, ch.res, 1, true, false)
	r = convLayer(ops, "res.c2", r, ch.res, ch.res, 1, false, true)
	y = ops.ReLU(ops.Add(y, r))
	y = ops.Conv3d("out.0", y, ConvSpec{
		In: ch.res, Out: cfg.Classes, Kernel: [3]int{1, 1, 1}, Stride: [3]int{1, 1, 1},
	})
	return ops.BatchNorm3d("out.1", y, BNSpec{Channels: cfg.Classes})
}

// UNet is the whole network: Encoder, Bridge, Decoder and Head. x is
// [N, cfg.InChannels, D, H, W] with any D, H, W ≥ 1; the logits are
// [N, cfg.Classes, D, H, W]. cfg must be valid (Config.Validate).
func UNet[T any](ops Ops[T], x T, cfg Config) T {
	f := Encoder(ops, x, cfg)
	y := Bridge(ops, f.Layer4, cfg)
	y = Decoder(ops, y, f, cfg)
	return Head(ops, y, x, cfg)
}
