package infer

import (
	"math"
	"slices"
	"testing"
)

func TestSoftmax(t *testing.T) {
	// Two voxels, three classes, channel-major.
	x := []float32{1, -1000, 2, 0, 3, 1000}
	p := softmax(slices.Clone(x), 3)
	for v := range 2 {
		var sum, want float64
		for c := range 3 {
			sum += float64(p[c*2+v])
			want += math.Exp(float64(x[c*2+v]))
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("voxel %d: probabilities sum to %v", v, sum)
		}
		for c := range 3 {
			if e := math.Exp(float64(x[c*2+v])) / want; v == 0 && math.Abs(float64(p[c*2+v])-e) > 1e-6 {
				t.Errorf("voxel %d class %d: %v, want %v", v, c, p[c*2+v], e)
			}
		}
	}
	if p[2*2+1] != 1 || p[1] != 0 {
		t.Errorf("a dominant logit of 1000 gives %v, %v; want 1 and 0 without overflow", p[5], p[1])
	}
	// Two classes take a shortcut: p1 = 1/(1 + e^(l0−l1)).
	two := softmax([]float32{0, 3, -1000, 1, 1, 1000}, 2)
	e := 1 / (1 + math.Exp(-1))
	for v, want := range []float64{e, 1 / (1 + math.Exp(2)), 1} {
		if math.Abs(float64(two[3+v])-want) > 1e-7 || math.Abs(float64(two[v])-(1-want)) > 1e-7 {
			t.Errorf("two classes, voxel %d: %v, %v; want %v, %v", v, two[v], two[3+v], 1-want, want)
		}
	}
	// One logit is a sigmoid: background 1−p, foreground p.
	s := softmax([]float32{0, math.MaxFloat32, -math.MaxFloat32}, 1)
	if !slices.Equal(s, []float32{0.5, 0, 1, 0.5, 1, 0}) {
		t.Errorf("sigmoid channels %v", s)
	}
}

func TestFlip(t *testing.T) {
	dhw := [3]int{2, 3, 4}
	n := 24
	x := make([]float32, 2*n)
	for i := range x {
		x[i] = float32(i)
	}
	at := func(a []float32, c, z, y, w int) float32 { return a[((c*2+z)*3+y)*4+w] }
	for m := range 8 {
		f := flip(x, 2, dhw, m)
		for c := range 2 {
			for z := range 2 {
				for y := range 3 {
					for w := range 4 {
						sz, sy, sw := z, y, w
						if m&flipD != 0 {
							sz = 1 - z
						}
						if m&flipH != 0 {
							sy = 2 - y
						}
						if m&flipW != 0 {
							sw = 3 - w
						}
						if at(f, c, z, y, w) != at(x, c, sz, sy, sw) {
							t.Fatalf("mirror %03b: (%d,%d,%d,%d) is %v, want source (%d,%d,%d)", m, c, z, y, w, at(f, c, z, y, w), sz, sy, sw)
						}
					}
				}
			}
		}
		if !slices.Equal(flip(f, 2, dhw, m), x) {
			t.Errorf("mirror %03b is not its own inverse", m)
		}
	}
}

func TestPatchStarts(t *testing.T) {
	for _, c := range []struct {
		n, patch int
		overlap  float64
		want     []int
	}{
		{100, 40, 0.5, []int{0, 20, 40, 60}},     // nnU-Net: ceil(60/20)+1 = 4 steps of 20
		{101, 40, 0.5, []int{0, 15, 31, 46, 61}}, // ceil(61/20)+1 = 5 steps of 15.25, rounded
		{40, 40, 0.5, []int{0}},
		{10, 40, 0.5, []int{0}}, // padded by the caller
		{41, 40, 0.5, []int{0, 1}},
		{100, 40, 0, []int{0, 30, 60}}, // no overlap asked; even spread still overlaps
		{80, 40, 0, []int{0, 40}},
		{5, 1, 0.95, []int{0, 1, 2, 3, 4}},
	} {
		got := PatchStarts(c.n, c.patch, c.overlap)
		if !slices.Equal(got, c.want) {
			t.Errorf("PatchStarts(%d, %d, %v) = %v, want %v", c.n, c.patch, c.overlap, got, c.want)
		}
		last := got[len(got)-1]
		if c.n >= c.patch && last != c.n-c.patch {
			t.Errorf("PatchStarts(%d, %d, %v): last patch ends at %d, not at the end", c.n, c.patch, c.overlap, last+c.patch)
		}
	}
}

func TestGaussian(t *testing.T) {
	dhw := [3]int{5, 8, 9}
	g := gaussian(dhw)
	at := func(z, y, x int) float32 { return g[(z*8+y)*9+x] }
	if at(2, 3, 4) != at(2, 4, 4) || at(2, 3, 4) >= 1.0001 || at(2, 3, 4) < 0.99 {
		t.Errorf("centre weights %v, %v: want equal (even axis) and ≈1", at(2, 3, 4), at(2, 4, 4))
	}
	for z := range 5 {
		for y := range 8 {
			for x := range 9 {
				w := at(z, y, x)
				if w != at(4-z, 7-y, 8-x) {
					t.Fatalf("not symmetric at %d,%d,%d", z, y, x)
				}
				if !(w > 0) {
					t.Fatalf("weight %v at %d,%d,%d", w, z, y, x)
				}
			}
		}
	}
	// Odd axis D (5): centre 2, σ 0.625; at distance 1: exp(-1/(2·0.390625)).
	want := math.Exp(-1 / (2 * 0.625 * 0.625))
	if got := float64(at(3, 3, 4)) / float64(at(2, 3, 4)); math.Abs(got-want) > 1e-6 {
		t.Errorf("D falloff %v, want %v (σ = 1/8 of the patch)", got, want)
	}
}

func TestRegion(t *testing.T) {
	in := [3]int{2, 2, 3}
	x := make([]float32, 12)
	for i := range x {
		x[i] = float32(i + 1)
	}
	got := region(x, 1, in, [3]int{1, 2, 2}, [3]int{1, -1, 2}, -9)
	want := []float32{-9, -9, 9, -9}
	if !slices.Equal(got, want) {
		t.Errorf("region %v, want %v", got, want)
	}
}
