package train

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/covseg/covseg/engine/covcpu"
	"github.com/covseg/covseg/model"
)

// testBackend is covseg's CPU backend, shared by the tests.
var testBackend = sync.OnceValue(func() backends.Backend {
	b, err := covcpu.NewAdapter("")
	if err != nil {
		panic(err)
	}
	return b
})

// tinyWidth gives a stem of 2 channels: the whole network in 94,494
// parameters.
const tinyWidth = 2.0 / 64

// tinyGrid is the test cases' D, H, W.
var tinyGrid = [3]int{8, 32, 32}

// tinyConfig is the recipe shrunk for tests: a tiny network, one epoch per
// phase, the default optimiser and schedule.
func tinyConfig() Config {
	cfg := DefaultConfig()
	cfg.Seed = 7
	cfg.Data.Preprocess.Grid = tinyGrid
	cfg.Model.Width = tinyWidth
	cfg.Phases[0].Epochs = 1
	cfg.Phases[1].Epochs = 1
	return cfg
}

// tinyModel returns a new tiny model context.
func tinyModel(t testing.TB, seed uint64) (model.Config, *Engine) {
	t.Helper()
	cfg := tinyConfig()
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = ctx
	e, err := NewEngine(testBackend(), ctx, mcfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mcfg, e
}

// tinyCases makes n synthetic cases: a bright ellipsoid "lesion" at a
// random place in a noisy background, labelled 1 where it is.
func tinyCases(n int, seed uint64) []Case {
	rng := rand.New(rand.NewPCG(seed, 1))
	g := tinyGrid
	cases := make([]Case, n)
	for c := range cases {
		cz, cy, cx := 2+rng.Float64()*4, 8+rng.Float64()*16, 8+rng.Float64()*16
		rz, ry, rx := 1.5+rng.Float64(), 3+rng.Float64()*4, 3+rng.Float64()*4
		img := make([]float32, g[0]*g[1]*g[2])
		mask := make([]uint8, len(img))
		for z := range g[0] {
			for y := range g[1] {
				for x := range g[2] {
					i := (z*g[1]+y)*g[2] + x
					d := math.Pow((float64(z)-cz)/rz, 2) + math.Pow((float64(y)-cy)/ry, 2) + math.Pow((float64(x)-cx)/rx, 2)
					v := 0.2 + 0.1*rng.NormFloat64()
					if d <= 1 {
						v += 0.5
						mask[i] = 1
					}
					img[i] = float32(v)
				}
			}
		}
		cases[c] = Case{Name: string(rune('a' + c)), Grid: g, Image: img, Mask: mask}
	}
	return cases
}

// tinySources returns a shuffled training source of n cases and an ordered
// validation source of 2 other cases.
func tinySources(t testing.TB, n int, seed uint64) (*MemorySource, *MemorySource) {
	t.Helper()
	tr, err := NewMemorySource(tinyCases(n, 1), 1, true, seed)
	if err != nil {
		t.Fatal(err)
	}
	val, err := NewMemorySource(tinyCases(2, 2), 1, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tr, val
}

// relErr is |got − want| / max(|want|, tiny).
func relErr(got, want float64) float64 {
	return math.Abs(got-want) / math.Max(math.Abs(want), 1e-12)
}
