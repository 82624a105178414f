package volume

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ramp fills a volume with a + b·i + c·j + e·k.
func ramp(d Dims, aff Affine, a, b, c, e float32) *Volume {
	v, _ := New(d, aff)
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				v.Set(i, j, k, a+b*float32(i)+c*float32(j)+e*float32(k))
			}
		}
	}
	return v
}

// resizeCoord is the source coordinate of output index x of a resize from
// in to out voxels.
func resizeCoord(x, in, out int) float64 {
	return (float64(x)+0.5)*float64(in)/float64(out) - 0.5
}

func TestResizeRampExactInInterior(t *testing.T) {
	for _, c := range []struct {
		in, out Dims
		tol     float64
	}{
		// Ratios of 2 and 1/2: weights 0.25, 0.75 and 0.5, so every step is
		// exact in binary and the interior must match bit for bit.
		{Dims{8, 6, 4}, Dims{16, 3, 8}, 0},
		{Dims{16, 16, 16}, Dims{8, 32, 4}, 0},
		// Arbitrary ratios: exact up to float32 rounding.
		{Dims{7, 9, 5}, Dims{11, 4, 13}, 2e-5},
		{Dims{512, 3, 2}, Dims{224, 5, 2}, 2e-4},
	} {
		v := ramp(c.in, Diag([3]float64{0.7, 0.7, 5}, [3]float64{-10, 20, 30}), 7, 2, 3, -5)
		got, err := v.ResizeTo(c.out, Linear)
		if err != nil {
			t.Fatal(err)
		}
		interior := 0
		for k := 0; k < c.out[2]; k++ {
			for j := 0; j < c.out[1]; j++ {
				for i := 0; i < c.out[0]; i++ {
					p := [3]float64{resizeCoord(i, c.in[0], c.out[0]), resizeCoord(j, c.in[1], c.out[1]), resizeCoord(k, c.in[2], c.out[2])}
					inside := true
					for ax := range p {
						inside = inside && p[ax] >= 0 && p[ax] <= float64(c.in[ax]-1)
					}
					if !inside {
						continue
					}
					interior++
					want := 7 + 2*p[0] + 3*p[1] - 5*p[2]
					if g := float64(got.At(i, j, k)); math.Abs(g-want) > c.tol {
						t.Fatalf("%v→%v voxel (%d,%d,%d): %v, ramp %v", c.in, c.out, i, j, k, g, want)
					}
				}
			}
		}
		if interior == 0 {
			t.Fatalf("%v→%v: no interior voxel tested", c.in, c.out)
		}
	}
}

// TestResizeAffineKeepsWorld checks that each resized voxel's world
// position is that of the source coordinate it samples, and that the field
// of view is kept.
func TestResizeAffineKeepsWorld(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 6; trial++ {
		a := randomAffine(rng, trial%2 == 1)
		d := Dims{1 + rng.IntN(40), 1 + rng.IntN(40), 1 + rng.IntN(40)}
		to := Dims{1 + rng.IntN(40), 1 + rng.IntN(40), 1 + rng.IntN(40)}
		na := ResizeAffine(d, a, to)
		for _, x := range [][3]int{{0, 0, 0}, {to[0] - 1, to[1] - 1, to[2] - 1}, {to[0] / 2, to[1] / 3, to[2] - 1}} {
			src := [3]float64{resizeCoord(x[0], d[0], to[0]), resizeCoord(x[1], d[1], to[1]), resizeCoord(x[2], d[2], to[2])}
			if w0, w1 := a.Apply(src), na.Apply([3]float64{float64(x[0]), float64(x[1]), float64(x[2])}); !near3(w0, w1, 1e-9) {
				t.Fatalf("voxel %v: world %v, sampled at %v", x, w1, w0)
			}
		}
		// Field-of-view corners: −0.5 and n−0.5 in both grids.
		lo, hi := [3]float64{-0.5, -0.5, -0.5}, [3]float64{}
		nhi := [3]float64{}
		for ax := 0; ax < 3; ax++ {
			hi[ax] = float64(d[ax]) - 0.5
			nhi[ax] = float64(to[ax]) - 0.5
		}
		if !near3(a.Apply(lo), na.Apply(lo), 1e-9) || !near3(a.Apply(hi), na.Apply(nhi), 1e-9) {
			t.Fatalf("field of view moved")
		}
		for ax, s := range na.Spacing() {
			if want := a.Spacing()[ax] * float64(d[ax]) / float64(to[ax]); math.Abs(s-want) > 1e-12*want {
				t.Fatalf("spacing %v, want %v", s, want)
			}
		}
	}
}

// TestResizeMarker resizes a volume with a bright block off-centre and
// checks the block's centre of mass stays at the same world position.
func TestResizeMarker(t *testing.T) {
	lps := Affine{{-0.8, 0, 0, 100}, {0, -0.9, 0, 50}, {0, 0, 2.5, -30}, {0, 0, 0, 1}}
	d := Dims{40, 36, 20}
	v, _ := New(d, lps)
	for k := 12; k < 16; k++ {
		for j := 4; j < 10; j++ {
			for i := 26; i < 34; i++ {
				v.Set(i, j, k, 1)
			}
		}
	}
	want := centroid(v)
	for _, to := range []Dims{{20, 18, 10}, {80, 72, 40}, {40, 36, 20}, {30, 45, 7}} {
		for _, in := range []Interp{Linear, Nearest} {
			r, err := v.ResizeTo(to, in)
			if err != nil {
				t.Fatal(err)
			}
			// At ratios 2, 1 and 1/2 the samples sit symmetrically about the
			// block; otherwise sampling shifts it by up to half an output
			// voxel per axis.
			tol := 1e-6
			if in == Nearest || to[0] == 30 {
				tol = 0.5 * math.Max(math.Max(r.Spacing()[0], r.Spacing()[1]), r.Spacing()[2])
			}
			if got := centroid(r); !near3(got, want, tol) {
				t.Fatalf("%v %v: block centre moved from %v to %v", to, in, want, got)
			}
		}
	}
	// Through a canonical copy too: orientation and resize compose.
	c := v.Canonical()
	r, _ := c.ResizeTo(Dims{20, 18, 10}, Linear)
	if got := centroid(r); !near3(got, want, 1e-6) {
		t.Fatalf("canonical then resize: block centre moved from %v to %v", want, got)
	}
}

// centroid returns the value-weighted mean world position.
func centroid(v *Volume) [3]float64 {
	var s [3]float64
	var m float64
	for k := 0; k < v.Dims[2]; k++ {
		for j := 0; j < v.Dims[1]; j++ {
			for i := 0; i < v.Dims[0]; i++ {
				x := float64(v.At(i, j, k))
				w := v.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
				for ax := range s {
					s[ax] += x * w[ax]
				}
				m += x
			}
		}
	}
	for ax := range s {
		s[ax] /= m
	}
	return s
}

func TestNearestNeverInventsLabels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	values := []uint8{0, 3, 7, 200}
	d := Dims{13, 17, 9}
	l, _ := NewLabel(d, randomAffine(rng, true))
	for i := range l.Data {
		l.Data[i] = values[rng.IntN(len(values))]
	}
	allowed := map[uint8]bool{0: true, 3: true, 7: true, 200: true}
	for trial := 0; trial < 6; trial++ {
		to := Dims{1 + rng.IntN(30), 1 + rng.IntN(30), 1 + rng.IntN(30)}
		r, err := l.ResizeTo(to)
		if err != nil {
			t.Fatal(err)
		}
		g, err := l.ResampleToGrid(to, randomAffine(rng, true), 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range r.Data {
			if !allowed[r.Data[i]] {
				t.Fatalf("resize invented label %d", r.Data[i])
			}
		}
		for i := range g.Data {
			if !allowed[g.Data[i]] {
				t.Fatalf("resample invented label %d", g.Data[i])
			}
		}
	}
	// Same dims: the identity.
	r, _ := l.ResizeTo(d)
	if string(r.Data) != string(l.Data) || !r.Affine.Equal(l.Affine, 1e-12) {
		t.Fatal("nearest resize to the same dims changed the label map")
	}
}

func TestResampleOntoSameGridIsIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, oblique := range []bool{false, true} {
		d := Dims{11, 7, 5}
		v := randomVolume(rng, d, randomAffine(rng, oblique))
		v.Data[17] = float32(math.Inf(1))
		v.Data[18] = float32(math.NaN())
		for _, in := range []Interp{Linear, Nearest} {
			got, err := v.ResampleToGrid(d, v.Affine, in, -5)
			if err != nil {
				t.Fatal(err)
			}
			if got.Affine != v.Affine || !equalData(got.Data, v.Data) {
				t.Fatalf("oblique=%v %v: resampling onto its own grid changed the volume", oblique, in)
			}
		}
		l := LabelFrom(v)
		gl, _ := l.ResampleToGrid(d, l.Affine, 9)
		if string(gl.Data) != string(l.Data) {
			t.Fatal("label resampled onto its own grid changed")
		}
	}
}

func TestResampleShiftByOneVoxel(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, oblique := range []bool{false, true} {
		d := Dims{6, 5, 4}
		v := randomVolume(rng, d, randomAffine(rng, oblique))
		for ax := 0; ax < 3; ax++ {
			for _, step := range []int{1, -1} {
				var off [3]int
				off[ax] = step
				// The target's voxel p sits where the source's voxel p+off does.
				a := RegionAffine(v.Affine, off)
				for _, in := range []Interp{Linear, Nearest} {
					got, err := v.ResampleToGrid(d, a, in, -77)
					if err != nil {
						t.Fatal(err)
					}
					for k := 0; k < d[2]; k++ {
						for j := 0; j < d[1]; j++ {
							for i := 0; i < d[0]; i++ {
								s := [3]int{i + off[0], j + off[1], k + off[2]}
								want := float32(-77)
								if s[ax] >= 0 && s[ax] < d[ax] {
									want = v.At(s[0], s[1], s[2])
								}
								if got.At(i, j, k) != want {
									t.Fatalf("oblique=%v shift %v %v: voxel (%d,%d,%d) = %v, want %v", oblique, off, in, i, j, k, got.At(i, j, k), want)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestResampleToResizeGridEqualsResize(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	d := Dims{19, 14, 9}
	v := randomVolume(rng, d, randomAffine(rng, true))
	to := Dims{7, 23, 4}
	for _, in := range []Interp{Linear, Nearest} {
		r, _ := v.ResizeTo(to, in)
		g, err := v.ResampleToGrid(to, r.Affine, in, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range r.Data {
			if math.Abs(float64(r.Data[i]-g.Data[i])) > 1e-3 {
				t.Fatalf("%v voxel %d: resize %v, resample onto its grid %v", in, i, r.Data[i], g.Data[i])
			}
		}
	}
}

// TestResampleLinearFieldThroughWorld samples a field linear in world
// coordinates on an oblique grid and resamples it onto another oblique grid:
// trilinear interpolation reproduces linear fields, so every interior voxel
// must hold the field at its own world position. This checks the whole
// world-coordinate mapping (and the general, non-separable path).
func TestResampleLinearFieldThroughWorld(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	field := func(w [3]float64) float64 { return 0.3*w[0] - 0.2*w[1] + 0.1*w[2] + 5 }
	for trial := 0; trial < 4; trial++ {
		sd := Dims{20, 18, 16}
		sa := Diag([3]float64{2, 2, 2}, [3]float64{-20, -18, -16})
		if trial > 0 {
			sa = randomAffine(rng, true)
			sa[0][3], sa[1][3], sa[2][3] = 0, 0, 0
			c := sa.Apply([3]float64{9.5, 8.5, 7.5})
			sa[0][3], sa[1][3], sa[2][3] = -c[0], -c[1], -c[2]
		}
		v, _ := New(sd, sa)
		for k := 0; k < sd[2]; k++ {
			for j := 0; j < sd[1]; j++ {
				for i := 0; i < sd[0]; i++ {
					v.Set(i, j, k, float32(field(sa.Apply([3]float64{float64(i), float64(j), float64(k)}))))
				}
			}
		}
		dd := Dims{9, 10, 11}
		da := randomAffine(rng, true)
		for r := 0; r < 3; r++ {
			for c := 0; c < 3; c++ {
				da[r][c] *= 0.5
			}
		}
		da[0][3], da[1][3], da[2][3] = 0, 0, 0
		c := da.Apply([3]float64{4, 4.5, 5})
		da[0][3], da[1][3], da[2][3] = -c[0], -c[1], -c[2]
		got, err := v.ResampleToGrid(dd, da, Linear, float32(math.NaN()))
		if err != nil {
			t.Fatal(err)
		}
		inv, _ := sa.Inverse()
		checked := 0
		for k := 0; k < dd[2]; k++ {
			for j := 0; j < dd[1]; j++ {
				for i := 0; i < dd[0]; i++ {
					w := da.Apply([3]float64{float64(i), float64(j), float64(k)})
					p := inv.Apply(w)
					interior := true
					for ax := range p {
						interior = interior && p[ax] >= 0 && p[ax] <= float64(sd[ax]-1)
					}
					if !interior {
						continue
					}
					checked++
					if g := float64(got.At(i, j, k)); math.Abs(g-field(w)) > 1e-4 {
						t.Fatalf("trial %d voxel (%d,%d,%d): %v, field at its world position %v", trial, i, j, k, g, field(w))
					}
				}
			}
		}
		if checked < dd.Len()/2 {
			t.Fatalf("trial %d: only %d voxels in the interior", trial, checked)
		}
	}
}

// TestGeneralPathMatchesSeparable runs the oblique kernels on axis-parallel
// grids, where the separable kernels apply too.
func TestGeneralPathMatchesSeparable(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	sd := Dims{9, 8, 7}
	v := randomVolume(rng, sd, Identity())
	l := LabelFrom(v)
	dd := Dims{12, 5, 9}
	m := Affine{{0.6, 0, 0, -1.3}, {0, 1.7, 0, 0.4}, {0, 0, 0.9, -0.2}, {0, 0, 0, 1}}
	for _, in := range []Interp{Linear, Nearest} {
		tx, ty, tz, ok := axisTaps(m, sd, dd, in)
		if !ok {
			t.Fatal("diagonal map not separable")
		}
		a, b := make([]float32, dd.Len()), make([]float32, dd.Len())
		if in == Linear {
			separableLinear([][]float32{a}, [][]float32{v.Data}, sd, dd, tx, ty, tz, -9)
			generalLinear([][]float32{b}, [][]float32{v.Data}, sd, dd, m, -9)
		} else {
			separableNearest([][]float32{a}, [][]float32{v.Data}, sd, dd, tx, ty, tz, -9)
			generalNearest([][]float32{b}, [][]float32{v.Data}, sd, dd, m, -9)
			la, lb := make([]uint8, dd.Len()), make([]uint8, dd.Len())
			separableNearest([][]uint8{la}, [][]uint8{l.Data}, sd, dd, tx, ty, tz, 9)
			generalNearest([][]uint8{lb}, [][]uint8{l.Data}, sd, dd, m, 9)
			if string(la) != string(lb) {
				t.Fatal("label kernels differ")
			}
		}
		fills := 0
		for i := range a {
			if a[i] == -9 {
				fills++
			}
			if math.Abs(float64(a[i]-b[i])) > 1e-3 {
				t.Fatalf("%v voxel %d: separable %v, general %v", in, i, a[i], b[i])
			}
		}
		if fills == 0 {
			t.Fatal("no voxel outside: the border is untested")
		}
	}
}

func TestChannelsMatchSingle(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	d := Dims{10, 9, 8}
	a := randomAffine(rng, true)
	chs := []*Volume{randomVolume(rng, d, a), randomVolume(rng, d, a), randomVolume(rng, d, a)}
	to, ta := Dims{7, 12, 5}, randomAffine(rng, true)
	for _, in := range []Interp{Linear, Nearest} {
		rs, err := ResizeChannels(chs, to, in)
		if err != nil {
			t.Fatal(err)
		}
		gs, err := ResampleChannels(chs, to, ta, in, 0.25)
		if err != nil {
			t.Fatal(err)
		}
		for c, v := range chs {
			r, _ := v.ResizeTo(to, in)
			g, _ := v.ResampleToGrid(to, ta, in, 0.25)
			if !equalData(r.Data, rs[c].Data) || r.Affine != rs[c].Affine {
				t.Fatalf("%v channel %d: ResizeChannels differs from ResizeTo", in, c)
			}
			if !equalData(g.Data, gs[c].Data) || gs[c].Affine != ta {
				t.Fatalf("%v channel %d: ResampleChannels differs from ResampleToGrid", in, c)
			}
		}
	}
	other, _ := New(d, Identity())
	if _, err := ResampleChannels(append(chs, other), to, ta, Linear, 0); err == nil {
		t.Fatal("channels on different grids accepted")
	}
	if _, err := ResizeChannels(nil, to, Linear); err == nil {
		t.Fatal("no channels accepted")
	}
}

func TestResampleToSpacing(t *testing.T) {
	a := Affine{{-0.7, 0, 0, 10}, {0, -0.7, 0, 20}, {0, 0, 5, 30}, {0, 0, 0, 1}}
	v := ramp(Dims{100, 90, 20}, a, 0, 1, 1, 1)
	r, err := v.ResampleToSpacing([3]float64{1.5, 1.5, 1.5}, Linear)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Dims{47, 42, 67}); r.Dims != want { // round(100·0.7/1.5) = 47, 90·0.7/1.5 = 42, 20·5/1.5 = 66.7
		t.Fatalf("dims %v, want %v", r.Dims, want)
	}
	for ax, s := range r.Spacing() {
		if math.Abs(s-1.5) > 1.5*0.5/float64(r.Dims[ax]) {
			t.Fatalf("spacing %v", r.Spacing())
		}
	}
	if r.Affine.AxCodes() != "LPS" {
		t.Fatalf("orientation changed to %s", r.Affine.AxCodes())
	}
	l := LabelFrom(v)
	rl, err := l.ResampleToSpacing([3]float64{1.5, 1.5, 1.5})
	if err != nil || rl.Dims != r.Dims || rl.Affine != r.Affine {
		t.Fatalf("label: %v %v", err, rl)
	}
	for _, sp := range [][3]float64{{0, 1, 1}, {-1, 1, 1}, {math.NaN(), 1, 1}, {math.Inf(1), 1, 1}, {1e-12, 1, 1}} {
		if _, err := v.ResampleToSpacing(sp, Linear); err == nil {
			t.Errorf("spacing %v accepted", sp)
		}
	}
}

func TestResampleErrors(t *testing.T) {
	v, _ := New(Dims{3, 3, 3}, Identity())
	for _, d := range []Dims{{0, 1, 1}, {-1, 2, 2}, {1 << 20, 1 << 20, 1 << 20}} {
		if _, err := v.ResizeTo(d, Linear); err == nil {
			t.Errorf("resize to %v accepted", d)
		}
		if _, err := v.ResampleToGrid(d, Identity(), Linear, 0); err == nil {
			t.Errorf("resample to %v accepted", d)
		}
	}
	if _, err := v.ResizeTo(Dims{2, 2, 2}, Interp(7)); err == nil {
		t.Error("unknown interpolation accepted")
	}
	singular := &Volume{Dims: v.Dims, Data: v.Data}
	if _, err := singular.ResampleToGrid(v.Dims, Identity(), Linear, 0); err == nil {
		t.Error("singular source affine accepted")
	}
	nan := Identity()
	nan[0][3] = math.NaN()
	if _, err := v.ResampleToGrid(v.Dims, nan, Linear, 0); err == nil {
		t.Error("NaN target affine accepted")
	}
	short := &Volume{Dims: v.Dims, Affine: Identity(), Data: make([]float32, 3)}
	if _, err := short.ResizeTo(Dims{2, 2, 2}, Linear); err == nil {
		t.Error("malformed volume accepted")
	}
	sl := &Label{Dims: v.Dims, Affine: Identity(), Data: make([]uint8, 3)}
	if _, err := sl.ResizeTo(Dims{2, 2, 2}); err == nil {
		t.Error("malformed label accepted")
	}
	if _, err := sl.ResampleToGrid(Dims{2, 2, 2}, Identity(), 0); err == nil {
		t.Error("malformed label accepted")
	}
}
