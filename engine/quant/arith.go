// Package quant turns covseg's float32 ONNX models into int8 models in the
// QDQ format (QuantizeLinear/DequantizeLinear pairs around each
// convolution, residual addition and skip concatenation) that ONNX
// Runtime's CPU provider fuses into integer kernels: ORT 1.30 runs every 3D
// convolution but the float output layer as com.microsoft:QLinearConv
// (channels-last), and QLinearAdd, QLinearConcat and uint8 Gathers
// between them (see TestQuantizeCovsegNetwork).
//
// Weights are int8, symmetric (zero point 0) and per output channel, with
// the range [-127, 127] so that a product of two int8 values never needs
// the -128 corner. Activations are uint8, asymmetric and per tensor, their
// ranges calibrated on CTs through covseg's preprocessing: ONNX Runtime's
// x86 integer GEMM (MLAS) multiplies uint8 activations by int8 weights
// (u8s8, AVX2 vpmaddubsw or AVX512-VNNI vpdpbusd); a ReLU before the
// quantisation gives a zero point of 0 and ONNX Runtime removes the ReLU.
// Biases are int32 with scale input scale × weight scale, as QLinearConv
// wants.
//
// The arithmetic follows the ONNX QuantizeLinear definition:
// q = saturate(round_half_even(x / scale) + zero_point).
package quant

import "math"

// Int8Max is the largest magnitude of a symmetric int8 weight.
const Int8Max = 127

// Params are the scale and zero point of one quantised tensor (or channel).
type Params struct {
	Scale float32
	Zero  int32
}

// RoundHalfEven rounds x to the nearest integer, ties to even, as ONNX
// QuantizeLinear does.
func RoundHalfEven(x float64) float64 { return math.RoundToEven(x) }

// Saturate clamps q to [lo, hi].
func Saturate(q, lo, hi int64) int64 { return max(lo, min(hi, q)) }

// Quantize returns saturate(round_half_even(x / p.Scale) + p.Zero) within
// [lo, hi]. The division is float32, as ONNX Runtime computes it.
func Quantize(x float32, p Params, lo, hi int64) int64 {
	r := RoundHalfEven(float64(x / p.Scale))
	if math.IsNaN(r) {
		return Saturate(int64(p.Zero), lo, hi)
	}
	if r > float64(hi)+float64(max(0, -p.Zero)) {
		return hi
	}
	if r < float64(lo)-float64(max(0, p.Zero)) {
		return lo
	}
	return Saturate(int64(r)+int64(p.Zero), lo, hi)
}

// Dequantize returns (q - p.Zero) * p.Scale.
func Dequantize(q int64, p Params) float32 { return float32(q-int64(p.Zero)) * p.Scale }

// Symmetric returns the int8 parameters of a tensor whose values lie in
// [-maxAbs, maxAbs]: scale maxAbs/127, zero point 0. An all-zero (or
// non-finite) range gets scale 1 so that dequantisation stays exact.
func Symmetric(maxAbs float32) Params {
	if !(maxAbs > 0) || math.IsInf(float64(maxAbs), 0) {
		return Params{Scale: 1}
	}
	return Params{Scale: maxAbs / Int8Max}
}

// Uint8 returns the uint8 parameters of a tensor whose values lie in
// [lo, hi]. The range is widened to hold 0 (zero padding and ReLU must be
// exact): scale (hi-lo)/255, zero point round_half_even(-lo/scale) within
// [0, 255]. An empty range gets scale 1, zero point 0.
func Uint8(lo, hi float32) Params {
	lo, hi = min(lo, 0), max(hi, 0)
	if !(hi > lo) || math.IsInf(float64(hi-lo), 0) {
		return Params{Scale: 1}
	}
	s := (hi - lo) / 255
	z := Saturate(int64(RoundHalfEven(float64(-lo/s))), 0, 255)
	return Params{Scale: s, Zero: int32(z)}
}

// Weights quantises a convolution weight of out output channels (axis 0,
// row-major) symmetrically per channel. It returns the int8 values and the
// per-channel scales.
func Weights(w []float32, out int) ([]int8, []float32) {
	per := len(w) / out
	q := make([]int8, len(w))
	scales := make([]float32, out)
	for c := range out {
		ch := w[c*per : (c+1)*per]
		var m float32
		for _, v := range ch {
			m = max(m, float32(math.Abs(float64(v))))
		}
		p := Symmetric(m)
		scales[c] = p.Scale
		for i, v := range ch {
			q[c*per+i] = int8(Quantize(v, p, -Int8Max, Int8Max))
		}
	}
	return q, scales
}

// Bias quantises a convolution bias to int32 with per-channel scale
// inScale × wScales[c] and zero point 0, as QLinearConv adds it to the
// int32 accumulator.
func Bias(b []float32, inScale float32, wScales []float32) ([]int32, []float32) {
	q := make([]int32, len(b))
	scales := make([]float32, len(b))
	for c, v := range b {
		scales[c] = inScale * wScales[c]
		q[c] = int32(Quantize(v, Params{Scale: scales[c]}, math.MinInt32, math.MaxInt32))
	}
	return q, scales
}
