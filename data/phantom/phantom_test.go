package phantom

import (
	"math"
	"testing"

	"github.com/covseg/covseg/volume"
)

func TestPhantomAnatomy(t *testing.T) {
	ph, err := Generate(DefaultConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	d := ph.Image.Dims
	if d != (volume.Dims{96, 96, 40}) || ph.Lesions.Dims != d || ph.Lungs.Dims != d {
		t.Fatalf("dims %v %v %v", d, ph.Lesions.Dims, ph.Lungs.Dims)
	}
	if ph.Image.Affine.AxCodes() != "LPS" || ph.Lesions.Affine != ph.Image.Affine || ph.Lungs.Affine != ph.Image.Affine {
		t.Errorf("affines %v", ph.Image.Affine)
	}
	if sp := ph.Image.Spacing(); math.Abs(sp[0]-3.5) > 1e-9 || math.Abs(sp[2]-8) > 1e-9 {
		t.Errorf("spacing %v", sp)
	}
	// Mean density per region, and where the lungs lie in the world.
	var sum, n [4]float64
	var lungX [3]float64
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				idx := d.Index(i, j, k)
				r := 0 // 0 outside lungs, 1 healthy lung, 2 lesion
				if l := ph.Lungs.Data[idx]; l > 0 {
					r = 1
					w := ph.Image.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
					lungX[l] += w[0]
					n[3]++
				}
				if ph.Lesions.Data[idx] > 0 {
					if ph.Lungs.Data[idx] == 0 {
						t.Fatalf("lesion voxel (%d, %d, %d) outside the lungs", i, j, k)
					}
					r = 2
				}
				sum[r] += float64(ph.Image.Data[idx])
				n[r]++
			}
		}
	}
	healthy := sum[1] / n[1]
	if healthy < -880 || healthy > -780 {
		t.Errorf("healthy lung mean %.0f HU, want about -850 (vessels raise it a little)", healthy)
	}
	if les := sum[2] / n[2]; les < -700 || les > 50 {
		t.Errorf("lesion mean %.0f HU", les)
	}
	if n[2] < 200 {
		t.Errorf("only %v lesion voxels", n[2])
	}
	// The right lung (label 1) lies at world x > 0 (RAS: +x is the
	// patient's right), the left one at x < 0.
	if cnt := countLabel(ph.Lungs, RightLung); cnt == 0 || lungX[RightLung]/float64(cnt) < 20 {
		t.Errorf("right lung centre x = %.1f mm, want well right (> 0)", lungX[RightLung]/float64(cnt))
	}
	if cnt := countLabel(ph.Lungs, LeftLung); cnt == 0 || lungX[LeftLung]/float64(cnt) > -20 {
		t.Errorf("left lung centre x = %.1f mm", lungX[LeftLung]/float64(cnt))
	}
	// The right lung is the larger one (the heart takes room on the left).
	if countLabel(ph.Lungs, RightLung) <= countLabel(ph.Lungs, LeftLung) {
		t.Error("left lung not smaller than right")
	}
	total := 0
	for _, l := range ph.Info {
		total += l.Voxels
		if l.Kind == GroundGlass && (l.HU < -700 || l.HU > -300) || l.Kind == Consolidation && (l.HU < -100 || l.HU > 50) {
			t.Errorf("lesion %+v out of its HU range", l)
		}
	}
	if total != countLabel(ph.Lesions, 1) || len(ph.Info) < 2 || len(ph.Info) > 4 {
		t.Errorf("%d lesions holding %d voxels; the mask has %d", len(ph.Info), total, countLabel(ph.Lesions, 1))
	}
	// Bone and air are there.
	lo, hi := float32(0), float32(0)
	for _, v := range ph.Image.Data {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo > -950 || hi < 600 {
		t.Errorf("HU range %g..%g lacks air or bone", lo, hi)
	}
}

func countLabel(l *volume.Label, v uint8) int {
	n := 0
	for _, x := range l.Data {
		if x == v {
			n++
		}
	}
	return n
}

func TestPhantomSeeded(t *testing.T) {
	cfg := Small(volume.Dims{32, 32, 10})
	a, _ := Generate(cfg, 5)
	b, _ := Generate(cfg, 5)
	c, _ := Generate(cfg, 6)
	for i := range a.Image.Data {
		if a.Image.Data[i] != b.Image.Data[i] || a.Lesions.Data[i] != b.Lesions.Data[i] {
			t.Fatal("same seed, different phantoms")
		}
	}
	diff := 0
	for i := range a.Lesions.Data {
		if a.Lesions.Data[i] != c.Lesions.Data[i] {
			diff++
		}
	}
	if diff == 0 {
		t.Error("another seed gives the same lesions")
	}
}

// TestPhantomOrientation checks that the anatomy lives in world space: the
// same seed stored as RAS is the LPS phantom with i and j reversed (every
// lesion kind included).
func TestPhantomOrientation(t *testing.T) {
	cfg := Small(volume.Dims{24, 20, 8})
	cfg.NoiseHU = 0
	cfg.MinLesions, cfg.MixedFraction = 3, 0.5
	cfg.Centre = [3]float64{10, -30, 100}
	lps, err := Generate(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, l := range lps.Info {
		kinds[l.Kind] = true
	}
	if !kinds[Mixed] || !kinds[GroundGlass] && !kinds[Consolidation] {
		t.Fatalf("lesion kinds %v: want mixed and another", kinds)
	}
	cfg.Orientation = "RAS"
	ras, err := Generate(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	d := lps.Image.Dims
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				a, b := d.Index(i, j, k), d.Index(d[0]-1-i, d[1]-1-j, k)
				if math.Abs(float64(lps.Image.Data[a]-ras.Image.Data[b])) > 1e-3 || lps.Lungs.Data[a] != ras.Lungs.Data[b] || lps.Lesions.Data[a] != ras.Lesions.Data[b] {
					t.Fatalf("voxel (%d, %d, %d) differs from its RAS twin", i, j, k)
				}
				wa := lps.Image.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
				wb := ras.Image.Affine.Apply([3]float64{float64(d[0] - 1 - i), float64(d[1] - 1 - j), float64(k)})
				for r := range 3 {
					if math.Abs(wa[r]-wb[r]) > 1e-9 {
						t.Fatalf("voxel (%d, %d, %d): world %v vs %v", i, j, k, wa, wb)
					}
				}
			}
		}
	}
	// The centre of the grid is at Centre.
	c := lps.Image.Affine.Apply([3]float64{float64(d[0]-1) / 2, float64(d[1]-1) / 2, float64(d[2]-1) / 2})
	if math.Abs(c[0]-10) > 1e-9 || math.Abs(c[1]+30) > 1e-9 || math.Abs(c[2]-100) > 1e-9 {
		t.Errorf("centre at %v", c)
	}
}

// TestPhantomMixed checks mixed lesions: ground glass −700…−300 HU around
// a core of −100…50 HU. Where one meets healthy lung (a lesion voxel with a
// healthy lung voxel beside it) it is ground glass almost everywhere (5 %
// of such voxels are denser on this grid, where a voxel steps from the rim
// into the core), while consolidations meet it at their density (81 %; the
// others are partial-volume edges).
func TestPhantomMixed(t *testing.T) {
	rims := func(consolidation, mixed float64) (dense, all, cores int) {
		cfg := Small(volume.Dims{64, 64, 32})
		cfg.Spacing[2] = 5
		cfg.NoiseHU, cfg.Vessels = 0, 0
		cfg.MinLesions, cfg.MaxLesions = 3, 3
		cfg.ConsolidationFraction, cfg.MixedFraction = consolidation, mixed
		for seed := range uint64(3) {
			ph, err := Generate(cfg, seed)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ph.Info {
				if mixed == 1 && (l.Kind != Mixed || l.HU < -700 || l.HU > -300 || l.CoreHU < -100 || l.CoreHU > 50) {
					t.Errorf("seed %d: lesion %+v: want mixed, ground glass −700…−300 HU around a core of −100…50 HU", seed, l)
				}
			}
			d := ph.Image.Dims
			for k := 1; k < d[2]-1; k++ {
				for j := 1; j < d[1]-1; j++ {
					for i := 1; i < d[0]-1; i++ {
						x := d.Index(i, j, k)
						if ph.Lesions.Data[x] == 0 {
							continue
						}
						hu := ph.Image.Data[x]
						if hu > -150 {
							cores++
						}
						for _, n := range []int{x - 1, x + 1, x - d[0], x + d[0], x - d[0]*d[1], x + d[0]*d[1]} {
							if ph.Lungs.Data[n] > 0 && ph.Lesions.Data[n] == 0 {
								all++
								if hu > -300 {
									dense++
								}
								break
							}
						}
					}
				}
			}
		}
		return dense, all, cores
	}
	dense, all, cores := rims(0, 1)
	if cores == 0 || all == 0 || float64(dense) > 0.1*float64(all) {
		t.Errorf("mixed lesions: %d of %d rim voxels above −300 HU (want at most a tenth), %d core voxels above −150 HU (want some)", dense, all, cores)
	}
	dense, all, _ = rims(1, 0)
	if float64(dense) < 0.7*float64(all) {
		t.Errorf("consolidations: %d of %d rim voxels above −300 HU, want most", dense, all)
	}
}

func TestConfigErrors(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Dims = volume.Dims{0, 4, 4} },
		func(c *Config) { c.Dims = volume.Dims{4096, 4096, 4096} },
		func(c *Config) { c.Spacing[1] = 0 },
		func(c *Config) { c.Spacing[2] = math.NaN() },
		func(c *Config) { c.Orientation = "LPP" },
		func(c *Config) { c.Orientation = "XYZ" },
		func(c *Config) { c.MinLesions, c.MaxLesions = 3, 2 },
		func(c *Config) { c.LesionScale = 0 },
		func(c *Config) { c.ConsolidationFraction = 2 },
		func(c *Config) { c.MixedFraction = -0.1 },
		func(c *Config) { c.MixedFraction = math.NaN() },
		func(c *Config) { c.NoiseHU = -1 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if _, err := Generate(c, 1); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}

func BenchmarkGenerateDefault(b *testing.B) {
	cfg := DefaultConfig()
	for b.Loop() {
		if _, err := Generate(cfg, 1); err != nil {
			b.Fatal(err)
		}
	}
}
