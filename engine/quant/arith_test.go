package quant

import (
	"math"
	"slices"
	"testing"
)

func TestRoundHalfEven(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{0.5, 0}, {1.5, 2}, {2.5, 2}, {-0.5, 0}, {-1.5, -2}, {-2.5, -2}, {2.4999, 2}, {2.5001, 3},
	} {
		if got := RoundHalfEven(c.x); got != c.want {
			t.Errorf("RoundHalfEven(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

func TestQuantizeUint8(t *testing.T) {
	// Range [-1, 3]: scale 4/255, zero point round(255/4) = round(63.75) = 64.
	p := Uint8(-1, 3)
	if p.Scale != float32(4)/255 || p.Zero != 64 {
		t.Fatalf("Uint8(-1, 3) = %+v, want {0.015686275 64}", p)
	}
	for _, c := range []struct {
		x    float32
		want int64
	}{
		{0, 64},               // zero is exact
		{-1, 0},               // -63.75 -> -64 + 64
		{3, 255},              // 191.25 -> 191 + 64
		{10, 255},             // saturates
		{-10, 0},              // saturates
		{1, 128},              // 63.75 -> 64 + 64
		{p.Scale / 2, 64},     // 0.5 rounds to even 0
		{3 * p.Scale / 2, 66}, // 1.5 rounds to even 2
		{float32(math.NaN()), 64},
		{float32(math.Inf(1)), 255},
	} {
		if got := Quantize(c.x, p, 0, 255); got != c.want {
			t.Errorf("Quantize(%v) = %d, want %d", c.x, got, c.want)
		}
	}
	if got := Dequantize(0, p); got != -64*p.Scale {
		t.Errorf("Dequantize(0) = %v", got)
	}
}

func TestUint8Ranges(t *testing.T) {
	// After a ReLU: [0, 5.1] -> scale 0.02, zero point 0.
	if p := Uint8(0, 5.1); p.Zero != 0 || math.Abs(float64(p.Scale)-0.02) > 1e-7 {
		t.Errorf("Uint8(0, 5.1) = %+v", p)
	}
	// A range without 0 is widened to hold it: [2, 4] -> [0, 4].
	if p := Uint8(2, 4); p.Zero != 0 || p.Scale != float32(4)/255 {
		t.Errorf("Uint8(2, 4) = %+v", p)
	}
	// All negative: [-2, -1] -> [-2, 0], zero point 255.
	if p := Uint8(-2, -1); p.Zero != 255 || p.Scale != float32(2)/255 {
		t.Errorf("Uint8(-2, -1) = %+v", p)
	}
	if p := Uint8(0, 0); p != (Params{Scale: 1}) {
		t.Errorf("Uint8(0, 0) = %+v", p)
	}
}

func TestWeightsPerChannel(t *testing.T) {
	// Channel 0: max |w| 2.54 -> scale 0.02; channel 1: max 0.127 -> 0.001;
	// channel 2: all zero -> scale 1.
	w := []float32{2.54, -1.27, 0.01, 0.03, -0.127, 0.0635, 0.0005, 0.0015, 0, 0, 0, 0}
	q, s := Weights(w, 3)
	wantQ := []int8{127, -64, 0, 2, -127, 64, 0, 2, 0, 0, 0, 0}
	// -1.27/0.02 = -63.5 -> -64 (even); 0.01/0.02 = 0.5 -> 0; 0.03/0.02 = 1.5 -> 2;
	// 0.0635/0.001 = 63.5 -> 64; 0.0005/0.001 = 0.5 -> 0; 0.0015/0.001 = 1.5 -> 2.
	if !slices.Equal(q, wantQ) {
		t.Errorf("Weights q = %v, want %v", q, wantQ)
	}
	wantS := []float32{2.54 / 127, 0.127 / 127, 1}
	for i := range s {
		if math.Abs(float64(s[i]-wantS[i])) > 1e-9 {
			t.Errorf("scale %d = %v, want %v", i, s[i], wantS[i])
		}
	}
	for _, v := range q {
		if v == -128 {
			t.Error("symmetric weights use -128")
		}
	}
}

func TestBias(t *testing.T) {
	// Input scale 0.5, weight scales 0.1 and 0.02: bias scales 0.05 and 0.01.
	q, s := Bias([]float32{1, -0.025}, 0.5, []float32{0.1, 0.02})
	if !slices.Equal(q, []int32{20, -2}) { // -2.5 -> -2 (even)
		t.Errorf("Bias q = %v", q)
	}
	if math.Abs(float64(s[0]-0.05)) > 1e-9 || math.Abs(float64(s[1]-0.01)) > 1e-9 {
		t.Errorf("Bias scales = %v", s)
	}
	// Saturation at the int32 limits.
	if q, _ := Bias([]float32{1e30, -1e30}, 1e-10, []float32{1e-10, 1e-10}); q[0] != math.MaxInt32 || q[1] != math.MinInt32 {
		t.Errorf("Bias saturation = %v", q)
	}
}

func TestMeasure(t *testing.T) {
	v := make([]float32, 101)
	for i := range v {
		v[i] = float32(i) - 50 // -50..50
	}
	if r, err := measure(v, Calibration{Method: MinMax}); err != nil || r != (Range{-50, 50}) {
		t.Errorf("minmax = %v, %v", r, err)
	}
	// 99th percentile of 101 sorted values: index round(0.99*100) = 99 -> 49;
	// the 1st: index 1 -> -49.
	if r, err := measure(v, Calibration{Method: Percentile, Percentile: 99}); err != nil || r != (Range{-49, 49}) {
		t.Errorf("percentile 99 = %v, %v", r, err)
	}
	v[3] = float32(math.NaN())
	if _, err := measure(v, Calibration{Method: MinMax}); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := Calibrate(nil, nil, Calibration{Method: "entropy"}); err == nil {
		t.Error("unknown method accepted")
	}
	if _, err := Calibrate(nil, nil, Calibration{Method: Percentile, Percentile: 20}); err == nil {
		t.Error("percentile 20 accepted")
	}
}
