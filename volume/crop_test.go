package volume

import (
	"math/rand/v2"
	"testing"
)

func TestCropKeepsWorldPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, oblique := range []bool{false, true} {
		v := randomVolume(rng, Dims{9, 8, 7}, randomAffine(rng, oblique))
		c, err := v.Crop([3]int{2, 0, 3}, [3]int{7, 5, 7})
		if err != nil {
			t.Fatal(err)
		}
		if c.Dims != (Dims{5, 5, 4}) {
			t.Fatalf("dims %v", c.Dims)
		}
		checkSameWorld(t, v, c)
		if c.At(0, 0, 0) != v.At(2, 0, 3) || c.At(4, 4, 3) != v.At(6, 4, 6) {
			t.Fatal("crop corners hold the wrong voxels")
		}
	}
}

func TestPadThenCropIsIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, oblique := range []bool{false, true} {
		v := randomVolume(rng, Dims{6, 5, 4}, randomAffine(rng, oblique))
		before, after := [3]int{2, 0, 3}, [3]int{1, 4, 0}
		p, err := v.Pad(before, after, -1024)
		if err != nil {
			t.Fatal(err)
		}
		if p.Dims != (Dims{9, 9, 7}) {
			t.Fatalf("dims %v", p.Dims)
		}
		// Every old voxel sits at its old world position; the rest is fill.
		inside := 0
		for k := 0; k < p.Dims[2]; k++ {
			for j := 0; j < p.Dims[1]; j++ {
				for i := 0; i < p.Dims[0]; i++ {
					q := voxelOf(t, v.Affine, p.Affine.Apply([3]float64{float64(i), float64(j), float64(k)}))
					if q[0] >= 0 && q[0] < 6 && q[1] >= 0 && q[1] < 5 && q[2] >= 0 && q[2] < 4 {
						inside++
						if p.At(i, j, k) != v.At(q[0], q[1], q[2]) {
							t.Fatalf("padded voxel (%d,%d,%d) does not hold source voxel %v", i, j, k, q)
						}
					} else if p.At(i, j, k) != -1024 {
						t.Fatalf("padding voxel (%d,%d,%d) holds %v", i, j, k, p.At(i, j, k))
					}
				}
			}
		}
		if inside != v.Dims.Len() {
			t.Fatalf("%d source voxels found in the padded volume, want %d", inside, v.Dims.Len())
		}
		c, err := p.Crop(before, [3]int{before[0] + 6, before[1] + 5, before[2] + 4})
		if err != nil {
			t.Fatal(err)
		}
		if c.Dims != v.Dims || !equalData(c.Data, v.Data) || !c.Affine.Equal(v.Affine, 1e-9) {
			t.Fatal("pad then crop did not give the volume back")
		}
		l := LabelFrom(v)
		lp, err := l.Pad(before, after, 9)
		if err != nil {
			t.Fatal(err)
		}
		lc, err := lp.Crop(before, [3]int{before[0] + 6, before[1] + 5, before[2] + 4})
		if err != nil || string(lc.Data) != string(l.Data) {
			t.Fatalf("label pad then crop: %v", err)
		}
	}
}

func TestCropOrPadToAndBack(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	v := randomVolume(rng, Dims{7, 8, 5}, randomAffine(rng, true))
	for _, to := range []Dims{{4, 11, 5}, {10, 3, 2}, {1, 1, 1}, {8, 9, 6}} {
		r, err := v.CropOrPadTo(to, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Centre-based: the source centre voxel (n−1)/2 stays within half a
		// voxel of the result's centre.
		for ax := 0; ax < 3; ax++ {
			off := (v.Dims[ax] - to[ax]) / 2
			if c := float64(v.Dims[ax]-1)/2 - float64(off); c < float64(to[ax]-1)/2-0.5 || c > float64(to[ax]-1)/2+0.5 {
				t.Fatalf("%v axis %d: source centre lands at %v of %d", to, ax, c, to[ax])
			}
		}
		back, err := r.CropOrPadTo(v.Dims, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Affine.Equal(v.Affine, 1e-9) {
			t.Fatalf("%v and back: affine moved", to)
		}
		// Voxels that survived the crop are back in place; the rest is fill.
		for k := 0; k < 5; k++ {
			for j := 0; j < 8; j++ {
				for i := 0; i < 7; i++ {
					q := [3]int{i, j, k}
					kept := true
					for ax := 0; ax < 3; ax++ {
						x := q[ax] - (v.Dims[ax]-to[ax])/2
						kept = kept && x >= 0 && x < to[ax]
					}
					if g := back.At(i, j, k); (kept && g != v.At(i, j, k)) || (!kept && g != 0) {
						t.Fatalf("%v and back: voxel %v = %v", to, q, g)
					}
				}
			}
		}
		if to == (Dims{8, 9, 6}) && !equalData(back.Data, v.Data) {
			t.Fatal("pad and back is not the identity")
		}
		l := LabelFrom(v)
		lr, err := l.CropOrPadTo(to, 0)
		if err != nil || lr.Dims != to || lr.Affine != r.Affine {
			t.Fatalf("label CropOrPadTo: %v", err)
		}
	}
}

func TestRegionPartlyOutside(t *testing.T) {
	v := indexVolume(Dims{4, 3, 2}, Diag([3]float64{1, 2, 3}, [3]float64{10, 20, 30}))
	r, err := v.Region([3]int{-1, 1, 1}, Dims{6, 3, 2}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Affine[0][3] != 9 || r.Affine[1][3] != 22 || r.Affine[2][3] != 33 {
		t.Fatalf("origin %v", r.Affine)
	}
	want := []float32{-1, 16, 17, 18, 19, -1, -1, 20, 21, 22, 23, -1}
	for i, w := range want {
		if r.Data[i] != w {
			t.Fatalf("voxel %d = %v, want %v", i, r.Data[i], w)
		}
	}
	for i := len(want); i < len(r.Data); i++ {
		if r.Data[i] != -1 {
			t.Fatalf("voxel %d = %v, want fill", i, r.Data[i])
		}
	}
}

func TestCropPadErrors(t *testing.T) {
	v, _ := New(Dims{4, 4, 4}, Identity())
	l, _ := NewLabel(Dims{4, 4, 4}, Identity())
	for _, box := range [][2][3]int{
		{{0, 0, 0}, {5, 4, 4}}, {{-1, 0, 0}, {2, 2, 2}}, {{2, 0, 0}, {2, 4, 4}}, {{3, 0, 0}, {1, 4, 4}},
	} {
		if _, err := v.Crop(box[0], box[1]); err == nil {
			t.Errorf("crop %v accepted", box)
		}
		if _, err := l.Crop(box[0], box[1]); err == nil {
			t.Errorf("label crop %v accepted", box)
		}
	}
	for _, pad := range [][2][3]int{{{-1, 0, 0}, {0, 0, 0}}, {{0, 0, 0}, {0, 1 << 40, 0}}, {{1 << 20, 1 << 20, 0}, {0, 0, 0}}} {
		if _, err := v.Pad(pad[0], pad[1], 0); err == nil {
			t.Errorf("pad %v accepted", pad)
		}
		if _, err := l.Pad(pad[0], pad[1], 0); err == nil {
			t.Errorf("label pad %v accepted", pad)
		}
	}
	if _, err := v.CropOrPadTo(Dims{0, 4, 4}, 0); err == nil {
		t.Error("CropOrPadTo zero dims accepted")
	}
	if _, err := v.Region([3]int{1 << 62, 0, 0}, Dims{1, 1, 1}, 0); err == nil {
		t.Error("absurd region offset accepted")
	}
}
