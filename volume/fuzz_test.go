package volume

import (
	"math"
	"testing"
)

func affineFrom(x [12]float64) Affine {
	return Affine{{x[0], x[1], x[2], x[3]}, {x[4], x[5], x[6], x[7]}, {x[8], x[9], x[10], x[11]}, {0, 0, 0, 1}}
}

// FuzzReorient checks, for any affine (singular, NaN and huge ones
// included), that orientation never panics, always gives a permutation, and
// that Canonical then Undo restores the volume and its affine exactly.
func FuzzReorient(f *testing.F) {
	f.Add(-0.7, 0.0, 0.0, 180.0, 0.0, -0.7, 0.0, 170.0, 0.0, 0.0, 1.25, -300.0, uint8(5), uint8(4), uint8(3), uint8(0))
	f.Add(0.0, 0.0, -1.5, 1.0, -0.7, 0.0, 0.0, 2.0, 0.0, 3.0, 0.0, 3.0, uint8(2), uint8(3), uint8(4), uint8(7))
	f.Add(0.785, 0.384, 0.203, 0.0, 0.794, 1.885, 0.403, 0.0, 0.556, -0.625, 1.383, 0.0, uint8(3), uint8(3), uint8(3), uint8(20))
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, uint8(1), uint8(1), uint8(1), uint8(47))
	f.Add(math.NaN(), 1.0, 0.0, 0.0, 0.0, math.Inf(1), 0.0, 0.0, 0.0, 0.0, 1e308, 0.0, uint8(2), uint8(1), uint8(2), uint8(3))
	f.Fuzz(func(t *testing.T, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23 float64, n0, n1, n2, code uint8) {
		a := affineFrom([12]float64{a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23})
		d := Dims{1 + int(n0%7), 1 + int(n1%7), 1 + int(n2%7)}
		w, _ := a.Ornt()
		if w[0]+w[1]+w[2] != 3 || w[0] == w[1] || w[1] == w[2] || w[0] == w[2] {
			t.Fatalf("Ornt %v is not a permutation", w)
		}
		v := indexVolume(d, a)
		plan, err := PlanReorient(d, a, allCodes[int(code)%len(allCodes)])
		if err != nil {
			t.Fatal(err)
		}
		r, err := plan.Apply(v)
		if err != nil {
			// Only an affine that does not equal itself (NaN, Inf) may
			// refuse; Reorient, which knows v is on its own grid, may not.
			if a.Equal(a, 1e-6) {
				t.Fatal(err)
			}
			if _, err := v.Reorient(allCodes[int(code)%len(allCodes)]); err != nil {
				t.Fatal(err)
			}
			v.Canonical()
			return
		}
		back, err := plan.Undo(r)
		if err != nil {
			if r.Affine.Equal(r.Affine, 1e-6) {
				t.Fatal(err)
			}
			return
		}
		if back.Dims != d || !equalData(back.Data, v.Data) {
			t.Fatal("reorientation round trip changed the volume")
		}
		for i := range back.Affine {
			for j := range back.Affine[i] {
				if math.Float64bits(back.Affine[i][j]) != math.Float64bits(a[i][j]) {
					t.Fatal("reorientation round trip changed the affine")
				}
			}
		}
	})
}

// FuzzResampleToGrid samples a small volume onto arbitrary grids: it must
// return an error or a volume of the asked dims and affine, never panic,
// and nearest sampling must only hold source values or the fill.
func FuzzResampleToGrid(f *testing.F) {
	f.Add(1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, uint8(4), uint8(4), uint8(4))
	f.Add(0.5, 0.2, 0.0, -1.0, -0.2, 0.5, 0.1, 2.0, 0.0, -0.1, 2.0, 0.5, uint8(9), uint8(3), uint8(5))
	f.Add(1e300, 0.0, 0.0, 1e300, 0.0, -1e-300, 0.0, 0.0, 0.0, 0.0, 1.0, math.Inf(-1), uint8(2), uint8(2), uint8(2))
	f.Add(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, uint8(1), uint8(0), uint8(2))
	f.Fuzz(func(t *testing.T, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23 float64, n0, n1, n2 uint8) {
		a := affineFrom([12]float64{a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23})
		d := Dims{int(n0 % 12), int(n1 % 12), int(n2 % 12)}
		src := patternValue(Dims{5, 4, 3}, Affine{{0.9, 0.1, 0, -2}, {-0.1, 0.9, 0, 1}, {0, 0, 1.5, 0}, {0, 0, 0, 1}})
		for _, in := range []Interp{Linear, Nearest} {
			got, err := src.ResampleToGrid(d, a, in, -100)
			if err != nil {
				continue
			}
			if got.Dims != d || len(got.Data) != d.Len() {
				t.Fatalf("dims %v for %v", got.Dims, d)
			}
			if in != Nearest {
				continue
			}
			values := map[float32]bool{-100: true}
			for _, x := range src.Data {
				values[x] = true
			}
			for _, x := range got.Data {
				if !values[x] {
					t.Fatalf("nearest invented %v", x)
				}
			}
		}
		l := patternLabel(Dims{5, 4, 3}, src.Affine)
		if got, err := l.ResampleToGrid(d, a, 200); err == nil {
			for _, x := range got.Data {
				if x > 5 && x != 200 {
					t.Fatalf("nearest invented label %d", x)
				}
			}
		}
	})
}
