package train

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/covseg/covseg/engine/covcpu"
)

// TestNativeKernelsTrainAlike trains the tiny network for 20 steps on
// synthetic lesion phantoms twice, on the CPU backend's native (BLAS)
// kernels and on its pure-Go kernels, from the same initial weights and
// batches: the first step's loss and gradient norm agree to rounding, the
// later losses to 2 % (see below), and the loss falls.
func TestNativeKernelsTrainAlike(t *testing.T) {
	native, err := covcpu.NewAdapter("kernels=native")
	if err != nil {
		t.Fatal(err)
	}
	if !native.(*covcpu.Backend).Native() {
		if covcpu.DefaultBLASLibrary == "" {
			t.Skip("built without the native kernels (CGO_ENABLED=0 or -tags noblas)")
		}
		t.Fatal("native kernels unavailable: run scripts/setup (libopenblas-dev)")
	}
	pure, err := covcpu.NewAdapter("kernels=go")
	if err != nil {
		t.Fatal(err)
	}
	cases := lesionCases(4, 3, [3]int{8, 32, 16})
	losses := make([][]float64, 2)
	var firstNorm [2]float64
	for i, be := range []struct {
		name string
		b    any
	}{{"native", native}, {"pure-Go", pure}} {
		cfg := tinyConfig()
		cfg.Data.Preprocess.Grid = cases[0].Grid
		mcfg, ctx, err := NewModel(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEngine(be.b.(*covcpu.Backend), ctx, mcfg, cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.SetPhase(1)
		start := time.Now()
		for step := range 20 {
			c := cases[step%len(cases)]
			b := Batch{Shape: [4]int{1, c.Grid[0], c.Grid[1], c.Grid[2]}, Image: c.Image, Mask: c.Mask}
			loss, gn, err := e.Step(b, 3e-3, 0.9)
			if step == 0 {
				firstNorm[i] = gn
			}
			if err != nil {
				t.Fatal(err)
			}
			losses[i] = append(losses[i], loss)
		}
		t.Logf("%s: 20 steps in %.1f s, losses %.5f … %.5f", be.name, time.Since(start).Seconds(), losses[i][0], losses[i][19])
	}
	// The first step starts from the same weights: only rounding differs.
	if d := relErr(losses[0][0], losses[1][0]); d > 1e-5 {
		t.Fatalf("step 1: loss %.8f native, %.8f pure-Go (relative difference %.2g > 1e-5)", losses[0][0], losses[1][0], d)
	}
	if d := relErr(firstNorm[0], firstNorm[1]); d > 1e-4 {
		t.Fatalf("step 1: gradient norm %.8f native, %.8f pure-Go (relative difference %.2g > 1e-4)", firstNorm[0], firstNorm[1], d)
	}
	// Later steps: AdamW's first updates are ±lr wherever a gradient is
	// nonzero, so rounding flips the sign of tiny gradients' steps; the
	// trajectories part by up to about 1 % over 20 steps.
	for s := range losses[0] {
		if d := relErr(losses[0][s], losses[1][s]); d > 0.02 || math.IsNaN(losses[0][s]) {
			t.Fatalf("step %d: loss %.7f on the native kernels, %.7f on the pure-Go ones (relative difference %.2g > 0.02)",
				s+1, losses[0][s], losses[1][s], d)
		}
	}
	if losses[0][19] >= losses[0][0] {
		t.Fatalf("the loss did not fall in 20 steps (%.5f → %.5f): the comparison would be vacuous", losses[0][0], losses[0][19])
	}
}

// lesionCases is tinyCases on another grid: n noisy volumes with one
// bright ellipsoid lesion each.
func lesionCases(n int, seed uint64, g [3]int) []Case {
	rng := rand.New(rand.NewPCG(seed, 1))
	cases := make([]Case, n)
	for c := range cases {
		cz, cy, cx := float64(g[0])*(0.25+rng.Float64()/2), float64(g[1])*(0.25+rng.Float64()/2), float64(g[2])*(0.25+rng.Float64()/2)
		rz, ry, rx := float64(g[0])/6+rng.Float64(), float64(g[1])/8+rng.Float64()*2, float64(g[2])/8+rng.Float64()*2
		img := make([]float32, g[0]*g[1]*g[2])
		mask := make([]uint8, len(img))
		for i := range img {
			z, y, x := i/(g[1]*g[2]), i/g[2]%g[1], i%g[2]
			d := math.Pow((float64(z)-cz)/rz, 2) + math.Pow((float64(y)-cy)/ry, 2) + math.Pow((float64(x)-cx)/rx, 2)
			v := 0.2 + 0.1*rng.NormFloat64()
			if d <= 1 {
				v += 0.5
				mask[i] = 1
			}
			img[i] = float32(v)
		}
		cases[c] = Case{Name: string(rune('a' + c)), Grid: g, Image: img, Mask: mask}
	}
	return cases
}
