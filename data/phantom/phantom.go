// Package phantom makes synthetic chest CT volumes with known lesion and
// lung masks, for covseg's demo and tests, and writes stand-ins of the
// public COVID-19 CT data set layouts (Coronacases, MosMedData, RICORD's
// DICOM series with an MD.ai export) built from them.
//
// A phantom is an axial chest: air around a body ellipse with a
// subcutaneous fat layer (about −100 HU) over soft tissue (40 HU), ribs in
// the chest wall and a vertebral body (cortex 900 HU, cancellous bone
// 350 HU), two lungs near −850 HU with vessel trees (tubes of 40 HU), a
// heart and descending aorta (40 HU) on the patient's left, a trachea
// (air) in the upper chest, and lesions inside the lungs: ground-glass
// opacities (−700…−300 HU), consolidations (−100…+50 HU) and, when
// Config.MixedFraction asks for them, mixed lesions (ground glass around a
// consolidated core), of random smooth shapes. CT-like Gaussian noise is
// added last. The anatomy is laid out in world (patient) coordinates, so
// it is the same whatever voxel orientation the volume is stored in; the
// heart, aorta and the unequal lungs make it asymmetric, so a flipped axis
// shows.
//
// Everything is drawn from one seed: the same Config and seed give the same
// phantom on every machine.
package phantom

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/covseg/covseg/volume"
)

// Lung labels of Phantom.Lungs.
const (
	RightLung = 1
	LeftLung  = 2
)

// Lesion kinds.
const (
	GroundGlass   = "ground-glass"
	Consolidation = "consolidation"
	// Mixed is ground glass around a consolidated core, a common pattern
	// of COVID-19 pneumonia besides pure ground glass.
	Mixed = "mixed"
)

// Config describes the phantoms to make.
type Config struct {
	// Dims are the voxel counts along i, j, k.
	Dims volume.Dims `yaml:"dims"`
	// Spacing is the voxel size in mm along i, j, k.
	Spacing [3]float64 `yaml:"spacing"`
	// Orientation gives the world direction of the i, j and k axes as
	// nibabel axis codes: "LPS" (the default) is how DICOM axial series
	// are stored (i towards the patient's left, j posterior, k superior);
	// "RAS" is canonical.
	Orientation string `yaml:"orientation"`
	// Centre is the world position (RAS+ mm) of the volume's centre.
	Centre [3]float64 `yaml:"centre"`
	// MinLesions and MaxLesions bound the number of lesions (uniform).
	MinLesions int `yaml:"min_lesions"`
	MaxLesions int `yaml:"max_lesions"`
	// LesionScale scales the lesions' size (1: about 15 to 30 % of the body's
	// width across).
	LesionScale float64 `yaml:"lesion_scale"`
	// ConsolidationFraction is the probability that a lesion is a
	// consolidation rather than ground glass.
	ConsolidationFraction float64 `yaml:"consolidation_fraction"`
	// MixedFraction is the probability that a lesion which is not a
	// consolidation is mixed: ground glass whose inner part (where the
	// lesion's field is well above the mask's level) is consolidated, so
	// that its rim, where it meets the chest wall, stays ground glass.
	// 0 (the default) draws nothing more from the seed, so phantoms made
	// before it existed stay the same.
	MixedFraction float64 `yaml:"mixed_fraction"`
	// NoiseHU is the standard deviation of the added noise in HU.
	NoiseHU float64 `yaml:"noise_hu"`
	// Vessels is the number of main vessel branches per lung.
	Vessels int `yaml:"vessels"`
}

// DefaultConfig is a 96x96x40 chest at 3.5x3.5x8 mm (a 336 mm field of
// view, 32 cm of chest), two to four lesions, 20 HU of noise.
func DefaultConfig() Config {
	return Config{
		Dims:                  volume.Dims{96, 96, 40},
		Spacing:               [3]float64{3.5, 3.5, 8},
		Orientation:           "LPS",
		MinLesions:            2,
		MaxLesions:            4,
		LesionScale:           1,
		ConsolidationFraction: 0.4,
		NoiseHU:               20,
		Vessels:               6,
	}
}

// Small returns a small phantom configuration for tests: dims (i, j, k)
// over the same field of view as DefaultConfig.
func Small(d volume.Dims) Config {
	c := DefaultConfig()
	def := c.Dims
	for a := range 3 {
		c.Spacing[a] = c.Spacing[a] * float64(def[a]) / float64(d[a])
	}
	c.Dims = d
	return c
}

// Lesion describes one lesion of a phantom.
type Lesion struct {
	Kind   string     // GroundGlass, Consolidation or Mixed
	HU     float64    // its density (a mixed lesion's ground glass)
	CoreHU float64    // a mixed lesion's core density; 0 for the others
	Centre [3]float64 // world position (RAS+ mm)
	Voxels int        // voxels it adds to the lesion mask
}

// Phantom is a synthetic chest CT with its masks, all on one grid.
type Phantom struct {
	Image   *volume.Volume // HU
	Lesions *volume.Label  // 1 = lesion, 0 elsewhere
	Lungs   *volume.Label  // RightLung, LeftLung, 0 elsewhere (lesions included)
	Info    []Lesion
}

// Validate checks a configuration.
func (c Config) Validate() error {
	if err := c.Dims.Valid(); err != nil {
		return fmt.Errorf("phantom: %w", err)
	}
	if c.Dims.Len() > 1<<27 {
		return fmt.Errorf("phantom: dims %v: more than %d voxels", c.Dims, 1<<27)
	}
	for a, s := range c.Spacing {
		if !(s > 0 && s < 1000) {
			return fmt.Errorf("phantom: spacing %v: axis %d must be in (0, 1000) mm", c.Spacing, a)
		}
	}
	if _, _, err := axes(c.Orientation); err != nil {
		return err
	}
	if c.MinLesions < 0 || c.MaxLesions < c.MinLesions || c.MaxLesions > 100 {
		return fmt.Errorf("phantom: lesions %d..%d: want 0 <= min <= max <= 100", c.MinLesions, c.MaxLesions)
	}
	if !(c.LesionScale > 0 && c.LesionScale <= 5) {
		return fmt.Errorf("phantom: lesion scale %g: want (0, 5]", c.LesionScale)
	}
	if !(c.ConsolidationFraction >= 0 && c.ConsolidationFraction <= 1) {
		return fmt.Errorf("phantom: consolidation fraction %g: want [0, 1]", c.ConsolidationFraction)
	}
	if !(c.MixedFraction >= 0 && c.MixedFraction <= 1) {
		return fmt.Errorf("phantom: mixed fraction %g: want [0, 1]", c.MixedFraction)
	}
	if !(c.NoiseHU >= 0 && c.NoiseHU <= 1000) || c.Vessels < 0 || c.Vessels > 100 {
		return fmt.Errorf("phantom: noise %g HU, %d vessels: want noise in [0, 1000], vessels in [0, 100]", c.NoiseHU, c.Vessels)
	}
	return nil
}

// axes parses axis codes into the world axis and sign of each voxel axis.
func axes(codes string) (world [3]int, sign [3]float64, err error) {
	if codes == "" {
		codes = "LPS"
	}
	pos, neg := "RAS", "LPI"
	used := [3]bool{}
	if len(codes) != 3 {
		return world, sign, fmt.Errorf("phantom: orientation %q: want three axis codes like LPS or RAS", codes)
	}
	for a, ch := range strings.ToUpper(codes) {
		w, s := strings.IndexRune(pos, ch), 1.0
		if w < 0 {
			w, s = strings.IndexRune(neg, ch), -1
		}
		if w < 0 || used[w] {
			return world, sign, fmt.Errorf("phantom: orientation %q: want one of R/L, A/P, S/I for each axis", codes)
		}
		used[w] = true
		world[a], sign[a] = w, s
	}
	return world, sign, nil
}

// Affine returns the voxel-to-RAS+ affine of the configured grid.
func (c Config) Affine() (volume.Affine, error) {
	world, sign, err := axes(c.Orientation)
	if err != nil {
		return volume.Affine{}, err
	}
	var a volume.Affine
	a[3][3] = 1
	for ax := range 3 {
		a[world[ax]][ax] = sign[ax] * c.Spacing[ax]
	}
	// The centre voxel position (n−1)/2 maps to Centre.
	for r := range 3 {
		s := 0.0
		for ax := range 3 {
			s += a[r][ax] * float64(c.Dims[ax]-1) / 2
		}
		a[r][3] = c.Centre[r] - s
	}
	return a, nil
}

// anatomy holds the shapes of one phantom in world millimetres relative to
// the volume's centre (x right, y anterior, z superior).
type anatomy struct {
	bx, by, hz float64 // body semi-axes in-plane; half the z extent
	lungs      [2]ellipsoid
	heart      ellipsoid
	aortaX     float64
	aortaY     float64
	aortaR     float64
	spineY     float64
	spineR     float64
	tracheaY   float64
	tracheaR   float64
	vessels    []segment
	lesions    []lesionShape
	lungHU     [2]float64
	ribPhase   float64
}

type ellipsoid struct{ c, r [3]float64 }

// inside returns the ellipsoid's quadratic form: < 1 inside.
func (e ellipsoid) q(p [3]float64) float64 {
	s := 0.0
	for a := range 3 {
		d := (p[a] - e.c[a]) / e.r[a]
		s += d * d
	}
	return s
}

type segment struct {
	a, b   [3]float64
	r      float64
	lo, hi [3]float64 // bounding box of the tube's blending zone
}

func newSegment(a, b [3]float64, r float64) segment {
	s := segment{a: a, b: b, r: r}
	for k := range 3 {
		s.lo[k] = math.Min(a[k], b[k]) - r - 2
		s.hi[k] = math.Max(a[k], b[k]) + r + 2
	}
	return s
}

// dist returns the distance from p to the segment.
func (s segment) dist(p [3]float64) float64 {
	var ab, ap [3]float64
	var abab, apab float64
	for k := range 3 {
		ab[k], ap[k] = s.b[k]-s.a[k], p[k]-s.a[k]
		abab += ab[k] * ab[k]
		apab += ap[k] * ab[k]
	}
	t := 0.0
	if abab > 0 {
		t = math.Max(0, math.Min(1, apab/abab))
	}
	d := 0.0
	for k := range 3 {
		e := ap[k] - t*ab[k]
		d += e * e
	}
	return math.Sqrt(d)
}

type blob struct {
	c     [3]float64
	inv2s float64 // 1/(2σ²)
}

type lesionShape struct {
	kind   string
	hu     float64
	coreHU float64 // Mixed only
	blobs  []blob
	lo     [3]float64 // bounding box of the field above edgeLo
	hi     [3]float64
}

// Lesion field thresholds: the mask is field > maskLevel; the image blends
// towards the lesion's density from edgeLo to edgeHi (partial volume).
const (
	maskLevel = 0.6
	edgeLo    = 0.45
	edgeHi    = 0.75
)

// A mixed lesion's core blends from its ground glass to consolidation
// between these field levels, well inside the mask (a single blob's field
// falls to coreLo at two thirds of the mask's radius).
const (
	coreLo = 0.8
	coreHi = 1.0
)

func (l *lesionShape) field(p [3]float64) float64 {
	f := 0.0
	for _, b := range l.blobs {
		var d2 float64
		for k := range 3 {
			d := p[k] - b.c[k]
			d2 += d * d
		}
		f += math.Exp(-d2 * b.inv2s)
	}
	return f
}

// newAnatomy lays out the chest for a field of view of fov mm.
func newAnatomy(fov [3]float64, cfg Config, rng *rand.Rand) *anatomy {
	a := &anatomy{bx: 0.45 * fov[0], by: 0.34 * fov[1], hz: fov[2] / 2}
	a.by = math.Min(a.by, 0.75*a.bx)
	j := func(s float64) float64 { return 1 + s*(2*rng.Float64()-1) } // jitter
	bx, by, hz := a.bx, a.by, a.hz
	a.lungs[0] = ellipsoid{c: [3]float64{0.45 * bx, 0.04 * by, 0.1 * hz}, r: [3]float64{0.36 * bx * j(0.05), 0.62 * by * j(0.05), 1.05 * hz}}
	a.lungs[1] = ellipsoid{c: [3]float64{-0.46 * bx, 0.02 * by, 0.1 * hz}, r: [3]float64{0.33 * bx * j(0.05), 0.6 * by * j(0.05), 1.0 * hz}}
	a.heart = ellipsoid{c: [3]float64{-0.16 * bx, 0.3 * by, -0.45 * hz}, r: [3]float64{0.32 * bx, 0.36 * by, 0.5 * hz}}
	a.aortaX, a.aortaY, a.aortaR = -0.17*bx, -0.48*by, 0.075*by
	a.spineY, a.spineR = -0.72*by, 0.14*by
	a.tracheaY, a.tracheaR = 0.02*by, 0.07*by
	a.lungHU = [2]float64{-850 + 15*(2*rng.Float64()-1), -850 + 15*(2*rng.Float64()-1)}
	a.ribPhase = rng.Float64()
	spIn := math.Min(cfg.Spacing[0], cfg.Spacing[1])
	for l := range a.lungs {
		a.addVessels(l, cfg.Vessels, spIn, rng)
	}
	n := cfg.MinLesions
	if cfg.MaxLesions > n {
		n += rng.IntN(cfg.MaxLesions - n + 1)
	}
	for range n {
		a.lesions = append(a.lesions, a.newLesion(cfg, rng))
	}
	return a
}

// pointInLung draws a point in lung l, its radius fraction (in the
// ellipsoid's own units) in [lo, hi] so lesions favour the periphery.
func (a *anatomy) pointInLung(l int, lo, hi float64, rng *rand.Rand) [3]float64 {
	e := a.lungs[l]
	for {
		var u [3]float64
		n := 0.0
		for k := range 3 {
			u[k] = rng.NormFloat64()
			n += u[k] * u[k]
		}
		n = math.Sqrt(n)
		f := lo + (hi-lo)*rng.Float64()
		var p [3]float64
		for k := range 3 {
			p[k] = e.c[k] + e.r[k]*f*u[k]/n
		}
		if math.Abs(p[2]) < 0.85*a.hz && a.heart.q(p) > 1.2 {
			return p
		}
	}
}

// addVessels grows n main branches from lung l's hilum, each with two side
// branches; radii of about 3 and 2 mm, at least half a voxel.
func (a *anatomy) addVessels(l, n int, spIn float64, rng *rand.Rand) {
	e := a.lungs[l]
	side := 1.0
	if e.c[0] > 0 {
		side = -1 // the hilum is on the medial side
	}
	hilum := [3]float64{e.c[0] + side*0.75*e.r[0], e.c[1], -0.05 * a.hz}
	rMain, rSide := math.Max(3, 0.5*spIn), math.Max(2, 0.4*spIn)
	for range n {
		end := a.pointInLung(l, 0.75, 0.92, rng)
		a.vessels = append(a.vessels, newSegment(hilum, end, rMain))
		for range 2 {
			t := 0.3 + 0.5*rng.Float64()
			var from [3]float64
			for k := range 3 {
				from[k] = hilum[k] + t*(end[k]-hilum[k])
			}
			a.vessels = append(a.vessels, newSegment(from, a.pointInLung(l, 0.6, 0.9, rng), rSide))
		}
	}
}

// newLesion draws a lesion: 2 to 5 Gaussian blobs around a point in a
// lung, thresholded (a smooth, irregular, often lobulated shape).
func (a *anatomy) newLesion(cfg Config, rng *rand.Rand) lesionShape {
	l := rng.IntN(2)
	c := a.pointInLung(l, 0.45, 0.85, rng)
	s := lesionShape{kind: GroundGlass, hu: -700 + 400*rng.Float64()}
	if rng.Float64() < cfg.ConsolidationFraction {
		s.kind, s.hu = Consolidation, -100+150*rng.Float64()
	} else if cfg.MixedFraction > 0 && rng.Float64() < cfg.MixedFraction {
		s.kind, s.coreHU = Mixed, -100+150*rng.Float64()
	}
	size := cfg.LesionScale * a.bx * (0.09 + 0.06*rng.Float64())
	nb := 2 + rng.IntN(4)
	for k := range 3 {
		s.lo[k], s.hi[k] = math.Inf(1), math.Inf(-1)
	}
	for b := range nb {
		sigma := size * (0.6 + 0.5*rng.Float64())
		var bc [3]float64
		for k := range 3 {
			off := 0.0
			if b > 0 {
				off = rng.NormFloat64() * size * 0.9
			}
			bc[k] = c[k] + off
		}
		// Where a blob alone reaches edgeLo/nb, the sum may reach edgeLo.
		reach := sigma * math.Sqrt(2*math.Log(float64(nb)/edgeLo))
		for k := range 3 {
			s.lo[k], s.hi[k] = math.Min(s.lo[k], bc[k]-reach), math.Max(s.hi[k], bc[k]+reach)
		}
		s.blobs = append(s.blobs, blob{c: bc, inv2s: 1 / (2 * sigma * sigma)})
	}
	return s
}

// Generate makes one phantom from cfg and seed.
func Generate(cfg Config, seed uint64) (*Phantom, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	aff, err := cfg.Affine()
	if err != nil {
		return nil, err
	}
	world, _, _ := axes(cfg.Orientation)
	var fov [3]float64
	for ax := range 3 {
		fov[world[ax]] = float64(cfg.Dims[ax]) * cfg.Spacing[ax]
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	an := newAnatomy(fov, cfg, rng)
	img, _ := volume.New(cfg.Dims, aff)
	les, _ := volume.NewLabel(cfg.Dims, aff)
	lungs, _ := volume.NewLabel(cfg.Dims, aff)
	counts := make([]int, len(an.lesions))
	d := cfg.Dims
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				w := aff.Apply([3]float64{float64(i), float64(j), float64(k)})
				p := [3]float64{w[0] - cfg.Centre[0], w[1] - cfg.Centre[1], w[2] - cfg.Centre[2]}
				idx := d.Index(i, j, k)
				hu, lung := an.tissue(p)
				if lung > 0 {
					lungs.Data[idx] = uint8(lung)
					var les1 int
					hu, les1 = an.lesion(p, hu)
					if les1 >= 0 {
						les.Data[idx] = 1
						counts[les1]++
					}
				}
				img.Data[idx] = float32(hu)
			}
		}
	}
	if cfg.NoiseHU > 0 {
		for i := range img.Data {
			img.Data[i] += float32(cfg.NoiseHU * rng.NormFloat64())
		}
	}
	ph := &Phantom{Image: img, Lesions: les, Lungs: lungs}
	for n, s := range an.lesions {
		var c [3]float64
		for k := range 3 {
			c[k] = s.blobs[0].c[k] + cfg.Centre[k]
		}
		ph.Info = append(ph.Info, Lesion{Kind: s.kind, HU: s.hu, CoreHU: s.coreHU, Centre: c, Voxels: counts[n]})
	}
	return ph, nil
}

// tissue returns the density at p without lesions and which lung (0: none)
// p lies in.
func (a *anatomy) tissue(p [3]float64) (hu float64, lung int) {
	ex, ey := p[0]/a.bx, p[1]/a.by
	s := math.Sqrt(ex*ex + ey*ey) // 1 on the skin
	switch {
	case s > 1:
		return -1000, 0
	case s > 0.93:
		return -100, 0 // subcutaneous fat
	case s > 0.85 && a.rib(p, s):
		return 700, 0
	}
	// Spine: a vertebral body with a dense cortex.
	if dy, r := p[1]-a.spineY, a.spineR; p[0]*p[0]+dy*dy < r*r {
		if p[0]*p[0]+dy*dy > 0.7*0.7*r*r {
			return 900, 0
		}
		return 350, 0
	}
	if dx, dy := p[0]-a.aortaX, p[1]-a.aortaY; dx*dx+dy*dy < a.aortaR*a.aortaR {
		return 40, 0
	}
	if a.heart.q(p) < 1 {
		return 40, 0
	}
	if dy := p[1] - a.tracheaY; p[2] > 0.35*a.hz && p[0]*p[0]+dy*dy < a.tracheaR*a.tracheaR {
		return -1000, 0
	}
	for l := range a.lungs {
		if a.lungs[l].q(p) < 1 {
			// Denser towards the back (gravity), as in supine patients.
			return a.vessel(p, a.lungHU[l]-40*p[1]/a.by), l + 1
		}
	}
	return 40, 0
}

// rib reports whether p in the chest wall lies on a rib: bands that run
// around the body and slope downwards towards the front, none in front of
// the sternum's midline.
func (a *anatomy) rib(p [3]float64, s float64) bool {
	if s > 0.91 {
		return false
	}
	ang := math.Atan2(p[1], math.Abs(p[0])) // π/2 in front
	if ang > 1.2 {
		return false
	}
	ph := p[2]/28 + 0.15*ang + a.ribPhase
	return ph-math.Floor(ph) < 0.35
}

// vessel blends the vessel trees into lung density base at p.
func (a *anatomy) vessel(p [3]float64, base float64) float64 {
	t := 0.0
	for i := range a.vessels {
		s := &a.vessels[i]
		if p[0] < s.lo[0] || p[0] > s.hi[0] || p[1] < s.lo[1] || p[1] > s.hi[1] || p[2] < s.lo[2] || p[2] > s.hi[2] {
			continue
		}
		d := s.dist(p)
		if d < s.r+2 {
			t = math.Max(t, math.Min(1, (s.r+1-d)/2))
		}
	}
	if t <= 0 {
		return base
	}
	return base + t*(40-base)
}

// lesion applies the lesions at p to density hu; it returns the new density
// and the index of a lesion whose mask holds p (−1: none).
func (a *anatomy) lesion(p [3]float64, hu float64) (float64, int) {
	hit := -1
	for n := range a.lesions {
		l := &a.lesions[n]
		if p[0] < l.lo[0] || p[0] > l.hi[0] || p[1] < l.lo[1] || p[1] > l.hi[1] || p[2] < l.lo[2] || p[2] > l.hi[2] {
			continue
		}
		f := l.field(p)
		if f <= edgeLo {
			continue
		}
		t := smoothstep((f - edgeLo) / (edgeHi - edgeLo))
		v := hu + t*(l.hu-hu)
		if l.kind != Consolidation {
			v = math.Max(v, hu) // vessels stay visible through ground glass
		}
		if l.kind == Mixed && f > coreLo {
			v += smoothstep((f-coreLo)/(coreHi-coreLo)) * (l.coreHU - v)
		}
		hu = v
		if f > maskLevel && hit < 0 {
			hit = n
		}
	}
	return hu, hit
}

func smoothstep(x float64) float64 {
	x = math.Max(0, math.Min(1, x))
	return x * x * (3 - 2*x)
}
