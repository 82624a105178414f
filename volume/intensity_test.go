package volume

import (
	"math"
	"testing"
)

func vol(xs ...float32) *Volume {
	return &Volume{Dims: Dims{len(xs), 1, 1}, Affine: Identity(), Data: xs}
}

func TestWindow(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	v := vol(-1024, 600, -212, -2000, 5000, nan, inf, -inf, 0)
	if err := v.Window(DefaultWindowLo, DefaultWindowHi); err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 1, 0.5, 0, 1, nan, 1, 0, float32(1024.0 / 1624.0)}
	for i, w := range want {
		if g := v.Data[i]; g != w && !(g != g && w != w) {
			t.Errorf("voxel %d: %v, want %v", i, g, w)
		}
	}
	for _, w := range [][2]float32{{1, 1}, {2, 1}, {nan, 1}, {0, inf}} {
		if err := v.Window(w[0], w[1]); err == nil {
			t.Errorf("window %v accepted", w)
		}
	}
}

func TestClip(t *testing.T) {
	v := vol(-5, 0, 5, float32(math.NaN()))
	if err := v.Clip(-1, 2); err != nil {
		t.Fatal(err)
	}
	if v.Data[0] != -1 || v.Data[1] != 0 || v.Data[2] != 2 || v.Data[3] == v.Data[3] {
		t.Fatalf("clip gave %v", v.Data)
	}
	if err := v.Clip(2, 1); err == nil {
		t.Fatal("clip [2, 1] accepted")
	}
}

func TestScaleMinMax(t *testing.T) {
	v := vol(-3, 1, 5, float32(math.NaN()), float32(math.Inf(1)))
	lo, hi := v.ScaleMinMax()
	if lo != -3 || hi != 5 || v.Data[0] != 0 || v.Data[1] != 0.5 || v.Data[2] != 1 {
		t.Fatalf("min-max gave %v (range %v..%v)", v.Data, lo, hi)
	}
	c := vol(4, 4, 4)
	c.ScaleMinMax()
	if c.Data[0] != 0 || c.Data[2] != 0 {
		t.Fatalf("constant volume gave %v", c.Data)
	}
	e := vol(float32(math.NaN()))
	if lo, hi := e.ScaleMinMax(); lo != 0 || hi != 0 {
		t.Fatal("all-NaN volume got a range")
	}
}

func TestZScore(t *testing.T) {
	v := vol(1, 2, 3, 4, float32(math.NaN()))
	mean, std := v.ZScore()
	// numpy: mean 2.5, std (ddof 0) sqrt(1.25).
	if mean != 2.5 || math.Abs(std-math.Sqrt(1.25)) > 1e-15 {
		t.Fatalf("mean %v std %v", mean, std)
	}
	for i, w := range []float64{-1.5, -0.5, 0.5, 1.5} {
		if math.Abs(float64(v.Data[i])-w/math.Sqrt(1.25)) > 1e-6 {
			t.Fatalf("voxel %d = %v", i, v.Data[i])
		}
	}
	// Large volume: thread-independent chunked sums, against float64 figures.
	big, _ := New(Dims{300, 300, 3}, Identity())
	var s, ss float64
	for i := range big.Data {
		big.Data[i] = float32(i%1000) - 300
		s += float64(big.Data[i])
	}
	m := s / float64(len(big.Data))
	for _, x := range big.Data {
		ss += (float64(x) - m) * (float64(x) - m)
	}
	gm, gs := big.ZScore()
	if math.Abs(gm-m) > 1e-9 || math.Abs(gs-math.Sqrt(ss/float64(len(big.Data)))) > 1e-9 {
		t.Fatalf("mean %v std %v, want %v %v", gm, gs, m, math.Sqrt(ss/float64(len(big.Data))))
	}
	c := vol(7, 7)
	if _, std := c.ZScore(); std != 0 || c.Data[0] != 0 {
		t.Fatalf("constant volume: std %v data %v", std, c.Data)
	}
}

func TestReplaceNonFinite(t *testing.T) {
	v := vol(1, float32(math.NaN()), float32(math.Inf(-1)), 2)
	if n := v.ReplaceNonFinite(-1024); n != 2 || v.Data[1] != -1024 || v.Data[2] != -1024 || v.Data[3] != 2 {
		t.Fatalf("replaced %d: %v", n, v.Data)
	}
}

func TestArgMaxAndThreshold(t *testing.T) {
	nan := float32(math.NaN())
	a := vol(0.2, 0.5, nan, 0.1)
	b := vol(0.7, 0.5, 0.3, nan)
	c := vol(0.1, 0.0, 0.2, 0.0)
	l, err := ArgMax([]*Volume{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint8{1, 0, 1, 0}; string(l.Data) != string(want) {
		t.Fatalf("argmax %v, want %v", l.Data, want)
	}
	th := b.Threshold(0.5)
	if want := []uint8{1, 1, 0, 0}; string(th.Data) != string(want) {
		t.Fatalf("threshold %v, want %v", th.Data, want)
	}
	if _, err := ArgMax([]*Volume{a, vol(1, 2)}); err == nil {
		t.Fatal("channels of different dims accepted")
	}
}
