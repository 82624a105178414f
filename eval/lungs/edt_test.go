package lungs

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestEDTMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var e edt
	for trial := 0; trial < 200; trial++ {
		w, h := 1+rng.IntN(30), 1+rng.IntN(30)
		sx, sy := 0.3+rng.Float64()*2, 0.3+rng.Float64()*4
		density := rng.Float64() * 0.3
		if trial%10 == 0 {
			density = 0 // no feature at all
		}
		mask := make([]uint8, w*h)
		for i := range mask {
			if rng.Float64() < density {
				mask[i] = 1
			}
		}
		got := make([]float64, w*h)
		e.transform(got, mask, 1, w, h, sx, sy)
		for p := range got {
			want := math.Inf(1)
			for q := range mask {
				if mask[q] == 1 {
					dx, dy := float64(p%w-q%w)*sx, float64(p/w-q/w)*sy
					want = min(want, dx*dx+dy*dy)
				}
			}
			if math.IsInf(want, 1) != math.IsInf(got[p], 1) || (!math.IsInf(want, 1) && math.Abs(got[p]-want) > 1e-9*(1+want)) {
				t.Fatalf("trial %d (%dx%d, %g x %g mm): pixel %d: %g, want %g", trial, w, h, sx, sy, p, got[p], want)
			}
		}
	}
}

func TestEDTFeatureValue(t *testing.T) {
	// The feature is the mask value asked for: 0 gives the distance to the
	// background.
	mask := []uint8{0, 1, 1, 1, 1}
	got := make([]float64, 5)
	var e edt
	e.transform(got, mask, 0, 5, 1, 2, 1)
	want := []float64{0, 4, 16, 36, 64}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("distance² to background at %d: %g, want %g", i, got[i], want[i])
		}
	}
}
