package metrics

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/covseg/covseg/volume"
)

// bruteSquaredEDT is the definition: the minimum over all features.
func bruteSquaredEDT(feature []bool, d volume.Dims, sp [3]float64) []float64 {
	out := make([]float64, d.Len())
	for p := range out {
		out[p] = math.Inf(1)
	}
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				p := d.Index(i, j, k)
				for fk := 0; fk < d[2]; fk++ {
					for fj := 0; fj < d[1]; fj++ {
						for fi := 0; fi < d[0]; fi++ {
							if !feature[d.Index(fi, fj, fk)] {
								continue
							}
							a, b, c := float64(i-fi)*sp[0], float64(j-fj)*sp[1], float64(k-fk)*sp[2]
							out[p] = min(out[p], a*a+b*b+c*c)
						}
					}
				}
			}
		}
	}
	return out
}

func TestEDTAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		d := volume.Dims{1 + rng.IntN(9), 1 + rng.IntN(9), 1 + rng.IntN(8)}
		sp := [3]float64{0.1 + 5*rng.Float64(), 0.1 + 5*rng.Float64(), 0.1 + 5*rng.Float64()}
		density := []float64{0, 0.01, 0.05, 0.2, 0.6, 1}[trial%6]
		f := make([]bool, d.Len())
		for p := range f {
			f[p] = rng.Float64() < density
		}
		got, err := SquaredDistanceTransform(f, d, sp, 1+trial%4)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteSquaredEDT(f, d, sp)
		for p := range want {
			if math.IsInf(want[p], 1) != math.IsInf(got[p], 1) ||
				!math.IsInf(want[p], 1) && math.Abs(got[p]-want[p]) > 1e-12*max(1, want[p]) {
				i, j, k := p%d[0], p/d[0]%d[1], p/(d[0]*d[1])
				t.Fatalf("trial %d dims %v spacing %v: voxel (%d,%d,%d) = %g, brute force %g", trial, d, sp, i, j, k, got[p], want[p])
			}
		}
	}
}

func TestEDTRejectsBadInput(t *testing.T) {
	d := volume.Dims{2, 2, 2}
	if _, err := SquaredDistanceTransform(make([]bool, 7), d, [3]float64{1, 1, 1}, 0); err == nil {
		t.Error("wrong length accepted")
	}
	for _, sp := range [][3]float64{{0, 1, 1}, {1, -1, 1}, {1, 1, math.NaN()}, {1, math.Inf(1), 1}} {
		if _, err := SquaredDistanceTransform(make([]bool, 8), d, sp, 0); err == nil {
			t.Errorf("spacing %v accepted", sp)
		}
	}
	if _, err := SquaredDistanceTransform(nil, volume.Dims{0, 1, 1}, [3]float64{1, 1, 1}, 0); err == nil {
		t.Error("zero dims accepted")
	}
}

// bruteSurface is the definition, one voxel at a time.
func bruteSurface(m []bool, d volume.Dims) []bool {
	in := func(i, j, k int) bool {
		return i >= 0 && j >= 0 && k >= 0 && i < d[0] && j < d[1] && k < d[2] && m[d.Index(i, j, k)]
	}
	out := make([]bool, len(m))
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				out[d.Index(i, j, k)] = in(i, j, k) && (!in(i-1, j, k) || !in(i+1, j, k) ||
					!in(i, j-1, k) || !in(i, j+1, k) || !in(i, j, k-1) || !in(i, j, k+1))
			}
		}
	}
	return out
}

func TestSurfaceAgainstDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 100; trial++ {
		d := volume.Dims{1 + rng.IntN(7), 1 + rng.IntN(7), 1 + rng.IntN(7)}
		m := make([]bool, d.Len())
		for p := range m {
			m[p] = rng.Float64() < 0.7
		}
		got, err := Surface(m, d)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteSurface(m, d)
		for p := range want {
			if got[p] != want[p] {
				t.Fatalf("trial %d dims %v: voxel %d surface = %v, want %v", trial, d, p, got[p], want[p])
			}
		}
	}
	// A full 3x3x3 block: only its centre is interior.
	full := make([]bool, 27)
	for p := range full {
		full[p] = true
	}
	s, _ := Surface(full, volume.Dims{3, 3, 3})
	for p, on := range s {
		if on != (p != 13) {
			t.Errorf("3x3x3 block: voxel %d surface = %v", p, on)
		}
	}
}
