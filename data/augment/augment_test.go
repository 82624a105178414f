package augment

import (
	"math"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/covseg/covseg/volume"
)

// marked returns a volume and mask with an asymmetric marker: an L-shaped
// block (long along x, short arm along y, two slices thick) off-centre,
// bright in the image and 1 in the mask, over a dim background.
func marked(d volume.Dims) (*volume.Volume, *volume.Label) {
	a := volume.Diag([3]float64{1.5, 1.5, 4}, [3]float64{-20, 10, 30})
	v, _ := volume.New(d, a)
	m, _ := volume.NewLabel(d, a)
	for i := range v.Data {
		v.Data[i] = 0.1
	}
	set := func(i, j, k int) {
		v.Set(i, j, k, 0.9)
		m.Data[d.Index(i, j, k)] = 1
	}
	for k := d[2] / 4; k < d[2]/4+2; k++ {
		for i := d[0] / 5; i < d[0]*3/5; i++ {
			for j := d[1] / 5; j < d[1]/5+3; j++ {
				set(i, j, k)
			}
		}
		for j := d[1] / 5; j < d[1]*2/3; j++ {
			for i := d[0] / 5; i < d[0]/5+3; i++ {
				set(i, j, k)
			}
		}
	}
	return v, m
}

// agreement returns the Dice of the image thresholded at 0.5 and the mask.
func agreement(v *volume.Volume, m *volume.Label) float64 {
	var both, a, b float64
	for i, x := range v.Data {
		in := x > 0.5
		if in {
			a++
		}
		if m.Data[i] != 0 {
			b++
			if in {
				both++
			}
		}
	}
	return 2 * both / (a + b)
}

func TestEachTransformKeepsAlignment(t *testing.T) {
	v, m := marked(volume.Dims{24, 24, 10})
	only := map[string]Config{
		"flip x":   {Flip: Flip{P: 1, Axes: "x"}},
		"flip y":   {Flip: Flip{P: 1, Axes: "y"}},
		"flip z":   {Flip: Flip{P: 1, Axes: "z"}},
		"rotate90": {Rotate90: Rotate90{P: 1}},
		"affine":   {Affine: Affine{P: 1, RotateDeg: 15, TiltDeg: 5, Scale: 0.15, Shear: 0.1}},
		"default":  DefaultConfig(),
	}
	for name, c := range only {
		moved := 0
		for seed := uint64(0); seed < 8; seed++ {
			av, am, err := c.Apply(v, m, seed)
			if err != nil {
				t.Fatal(err)
			}
			if av.Affine != v.Affine || am.Affine != v.Affine || av.Dims != v.Dims {
				t.Fatalf("%s: geometry changed", name)
			}
			min := 0.999
			if name == "affine" || name == "default" {
				min = 0.8 // interpolation blurs the image's edge by a voxel
			}
			if dsc := agreement(av, am); dsc < min {
				t.Errorf("%s, seed %d: image and mask agree with Dice %.3f", name, seed, dsc)
			}
			for _, x := range am.Data {
				if x > 1 {
					t.Fatalf("%s: mask value %d", name, x)
				}
			}
			if !equalLabel(am, m) {
				moved++
			}
		}
		if moved == 0 {
			t.Errorf("%s never moved the marker", name)
		}
	}
	// The input is untouched.
	v2, m2 := marked(volume.Dims{24, 24, 10})
	if !equalVolume(v, v2) || !equalLabel(m, m2) {
		t.Error("Apply changed its input")
	}
}

func TestSpatialMaps(t *testing.T) {
	d := volume.Dims{6, 6, 3}
	v, _ := volume.New(d, volume.Identity())
	for i := range v.Data {
		v.Data[i] = float32(i)
	}
	at := func(x *volume.Volume, i, j, k int) float32 { return x.Data[d.Index(i, j, k)] }
	// A flip along x maps (i, j, k) to (n-1-i, j, k).
	f, _, _ := Config{Flip: Flip{P: 1, Axes: "x"}}.Apply(v, nil, 1)
	if at(f, 0, 2, 1) != at(v, 5, 2, 1) || at(f, 5, 0, 2) != at(v, 0, 0, 2) {
		t.Error("flip x maps voxels wrongly")
	}
	f, _, _ = Config{Flip: Flip{P: 1, Axes: "z"}}.Apply(v, nil, 1)
	if at(f, 1, 2, 0) != at(v, 1, 2, 2) || at(f, 1, 2, 1) != at(v, 1, 2, 1) {
		t.Error("flip z maps voxels wrongly")
	}
	// Quarter turns: four make the identity; 1 then 3 too.
	r := v.Data
	for range 4 {
		r = rot90(r, d, 1)
	}
	if !equalData(r, v.Data) {
		t.Error("four quarter turns are not the identity")
	}
	if !equalData(rot90(rot90(v.Data, d, 1), d, 3), v.Data) || !equalData(rot90(rot90(v.Data, d, 2), d, 2), v.Data) {
		t.Error("quarter turns do not undo")
	}
	q := rot90(v.Data, d, 1)
	if q[d.Index(1, 4, 0)] != v.Data[d.Index(4, 4, 0)] {
		t.Error("quarter turn maps voxels wrongly")
	}
	// Non-square slices only get half turns.
	v2, m2 := marked(volume.Dims{20, 14, 6})
	for seed := uint64(0); seed < 6; seed++ {
		a, b, err := Config{Rotate90: Rotate90{P: 1}}.Apply(v2, m2, seed)
		if err != nil || a.Dims != v2.Dims || agreement(a, b) < 0.999 {
			t.Fatalf("non-square rotation: %v %v", err, a.Dims)
		}
	}
	// An affine of zero amounts is the identity (up to rounding).
	id, _, _ := Config{Affine: Affine{P: 1}}.Apply(v, nil, 3)
	for i := range id.Data {
		if math.Abs(float64(id.Data[i]-v.Data[i])) > 1e-3 {
			t.Fatalf("identity affine changed voxel %d: %g -> %g", i, v.Data[i], id.Data[i])
		}
	}
}

func TestIdentityAndDeterminism(t *testing.T) {
	v, m := marked(volume.Dims{16, 16, 8})
	for seed := uint64(0); seed < 5; seed++ {
		a, b, err := None().Apply(v, m, seed)
		if err != nil {
			t.Fatal(err)
		}
		if !equalVolume(a, v) || !equalLabel(b, m) {
			t.Fatal("all probabilities 0 changed the volume")
		}
	}
	c := DefaultConfig()
	c.Noise.P, c.Blur.P, c.Affine.P = 1, 1, 1
	a1, m1, _ := c.Apply(v, m, 42)
	a2, m2, _ := c.Apply(v, m, 42)
	a3, _, _ := c.Apply(v, m, 43)
	if !equalVolume(a1, a2) || !equalLabel(m1, m2) {
		t.Error("same seed, different results")
	}
	if equalVolume(a1, a3) {
		t.Error("different seeds, same result")
	}
	// Without a mask.
	a4, nilMask, err := c.Apply(v, nil, 42)
	if err != nil || nilMask != nil || !equalVolume(a4, a1) {
		t.Errorf("no mask: %v %v", err, nilMask)
	}
}

func TestIntensity(t *testing.T) {
	v, _ := marked(volume.Dims{16, 16, 4})
	mean := func(x *volume.Volume) float64 {
		s := 0.0
		for _, y := range x.Data {
			s += float64(y)
		}
		return s / float64(len(x.Data))
	}
	sd := func(x *volume.Volume) float64 {
		m, s := mean(x), 0.0
		for _, y := range x.Data {
			s += (float64(y) - m) * (float64(y) - m)
		}
		return math.Sqrt(s / float64(len(x.Data)))
	}
	b, _, _ := Config{Brightness: Shift{P: 1, Max: 0.2}}.Apply(v, nil, 5)
	if d := mean(b) - mean(v); d == 0 || math.Abs(d) > 0.2+1e-6 || math.Abs(sd(b)-sd(v)) > 1e-5 {
		t.Errorf("brightness: mean shift %g, sd %g -> %g", d, sd(v), sd(b))
	}
	c, _, _ := Config{Contrast: Contrast{P: 1, Max: 0.3}}.Apply(v, nil, 5)
	if r := sd(c) / sd(v); r == 1 || r < 0.7-1e-6 || r > 1.3+1e-6 || math.Abs(mean(c)-mean(v)) > 1e-5 {
		t.Errorf("contrast: sd ratio %g, mean %g -> %g", r, mean(v), mean(c))
	}
	n, _, _ := Config{Noise: Noise{P: 1, Std: 0.1}}.Apply(v, nil, 5)
	if math.Abs(mean(n)-mean(v)) > 0.01 || sd(n) <= sd(v) {
		t.Errorf("noise: mean %g -> %g, sd %g -> %g", mean(v), mean(n), sd(v), sd(n))
	}
	bl, _, _ := Config{Blur: Blur{P: 1, Sigma: 1.5}}.Apply(v, nil, 5)
	if math.Abs(mean(bl)-mean(v)) > 0.01 || sd(bl) >= sd(v) {
		t.Errorf("blur: mean %g -> %g, sd %g -> %g", mean(v), mean(bl), sd(v), sd(bl))
	}
}

func TestConfigYAMLAndErrors(t *testing.T) {
	out, err := yaml.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(out, &back); err != nil || back != DefaultConfig() {
		t.Errorf("YAML round trip: %v\n%s", err, out)
	}
	for _, bad := range []Config{
		{Flip: Flip{P: 2}}, {Flip: Flip{P: 0.5, Axes: "xw"}}, {Noise: Noise{P: -1}},
		{Affine: Affine{Scale: 1}}, {Contrast: Contrast{Max: 1}}, {Blur: Blur{Sigma: -1}},
	} {
		v, _ := volume.New(volume.Dims{2, 2, 2}, volume.Identity())
		if _, _, err := bad.Apply(v, nil, 1); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	v, _ := volume.New(volume.Dims{2, 2, 2}, volume.Identity())
	m, _ := volume.NewLabel(volume.Dims{2, 2, 3}, volume.Identity())
	if _, _, err := None().Apply(v, m, 1); err == nil {
		t.Error("mismatched mask accepted")
	}
}

func BenchmarkDefault20x224x224(b *testing.B) {
	v, m := marked(volume.Dims{224, 224, 20})
	c := DefaultConfig()
	c.Affine.P, c.Blur.P, c.Noise.P = 1, 1, 1
	seed := uint64(0)
	for b.Loop() {
		seed++
		if _, _, err := c.Apply(v, m, seed); err != nil {
			b.Fatal(err)
		}
	}
}

func equalData(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalVolume(a, b *volume.Volume) bool {
	return a.Dims == b.Dims && a.Affine == b.Affine && equalData(a.Data, b.Data)
}

func equalLabel(a, b *volume.Label) bool {
	if a.Dims != b.Dims || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			return false
		}
	}
	return true
}
