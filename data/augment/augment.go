// Package augment makes random variations of training volumes: flips,
// axial quarter turns, one small affine resample (rotation, scaling and
// shear together), brightness, contrast, Gaussian noise and blur.
//
// The spatial transforms move image and mask together (the image
// interpolated trilinearly, the mask by nearest neighbour, so it stays a
// label map); the intensity transforms touch the image only. Each transform
// happens with its own probability, and everything is drawn from one seed,
// so that a training run is reproducible and a resumed run sees the same
// augmentations.
//
// Volumes are expected in canonical RAS+ order (what package preprocess
// makes): voxel axes i, j, k run x (left–right), y (front–back), z
// (down–up), the network's W, H and D. An augmented volume keeps its
// input's affine: it is a new image on the same grid, not the same anatomy
// moved.
package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/covseg/covseg/volume"
)

// Flip flips along each of Axes ("x", "y", "z" in any combination), each
// with probability P.
type Flip struct {
	P    float64 `yaml:"p"`
	Axes string  `yaml:"axes"`
}

// Rotate90 turns the axial (x–y) plane by a random multiple of 90° with
// probability P. Quarter turns swap the in-plane sizes, so grids whose
// width and height differ only get half turns.
type Rotate90 struct {
	P float64 `yaml:"p"`
}

// Affine is one resample combining a rotation about z of up to RotateDeg
// degrees, rotations about x and y of up to TiltDeg, an isotropic scaling by
// a factor within 1 ± Scale and an axial shear of up to Shear, with
// probability P. The transform is built in millimetres about the volume's
// centre, so anisotropic voxels rotate correctly. Voxels brought in from
// outside the volume are 0 (air after the usual window) in the image and
// background in the mask.
type Affine struct {
	P         float64 `yaml:"p"`
	RotateDeg float64 `yaml:"rotate_deg"`
	TiltDeg   float64 `yaml:"tilt_deg"`
	Scale     float64 `yaml:"scale"`
	Shear     float64 `yaml:"shear"`
}

// Shift adds a constant drawn within ±Max (brightness), with probability P.
type Shift struct {
	P   float64 `yaml:"p"`
	Max float64 `yaml:"max"`
}

// Contrast scales intensities about their mean by a factor within 1 ± Max,
// with probability P.
type Contrast struct {
	P   float64 `yaml:"p"`
	Max float64 `yaml:"max"`
}

// Noise adds Gaussian noise whose standard deviation is drawn from 0…Std,
// with probability P.
type Noise struct {
	P   float64 `yaml:"p"`
	Std float64 `yaml:"std"`
}

// Blur smooths each axial slice with a Gaussian whose standard deviation
// (in voxels) is drawn from 0.5…Sigma, with probability P.
type Blur struct {
	P     float64 `yaml:"p"`
	Sigma float64 `yaml:"sigma"`
}

// Config holds every augmentation setting; the trainer's YAML embeds it.
// Intensity amounts are in the units of the preprocessed image (0…1 over
// the HU window).
type Config struct {
	Flip       Flip     `yaml:"flip"`
	Rotate90   Rotate90 `yaml:"rotate90"`
	Affine     Affine   `yaml:"affine"`
	Brightness Shift    `yaml:"brightness"`
	Contrast   Contrast `yaml:"contrast"`
	Noise      Noise    `yaml:"noise"`
	Blur       Blur     `yaml:"blur"`
}

// DefaultConfig is a moderate set in the spirit of fastai's and faimed3d's
// defaults: left–right and front–back flips, quarter turns, ±10° rotation
// with ±10 % scaling, mild intensity changes.
func DefaultConfig() Config {
	return Config{
		Flip:       Flip{P: 0.5, Axes: "xy"},
		Rotate90:   Rotate90{P: 0.25},
		Affine:     Affine{P: 0.5, RotateDeg: 10, TiltDeg: 3, Scale: 0.1, Shear: 0.05},
		Brightness: Shift{P: 0.3, Max: 0.1},
		Contrast:   Contrast{P: 0.3, Max: 0.2},
		Noise:      Noise{P: 0.2, Std: 0.03},
		Blur:       Blur{P: 0.2, Sigma: 1},
	}
}

// None is the configuration that changes nothing.
func None() Config { return Config{} }

// Validate checks probabilities and amounts.
func (c Config) Validate() error {
	probs := map[string]float64{"flip": c.Flip.P, "rotate90": c.Rotate90.P, "affine": c.Affine.P, "brightness": c.Brightness.P,
		"contrast": c.Contrast.P, "noise": c.Noise.P, "blur": c.Blur.P}
	for name, p := range probs {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("augment: %s.p = %g: want a probability in [0, 1]", name, p)
		}
	}
	for _, ch := range c.Flip.Axes {
		if !strings.ContainsRune("xyz", ch) {
			return fmt.Errorf("augment: flip.axes %q: want letters among x, y, z", c.Flip.Axes)
		}
	}
	a := c.Affine
	if !(a.RotateDeg >= 0 && a.RotateDeg <= 180 && a.TiltDeg >= 0 && a.TiltDeg <= 90 && a.Scale >= 0 && a.Scale < 1 && a.Shear >= 0 && a.Shear <= 1) {
		return fmt.Errorf("augment: affine %+v: want rotate_deg in [0, 180], tilt_deg in [0, 90], scale in [0, 1), shear in [0, 1]", a)
	}
	if !(c.Brightness.Max >= 0 && c.Contrast.Max >= 0 && c.Contrast.Max < 1 && c.Noise.Std >= 0 && c.Blur.Sigma >= 0 && c.Blur.Sigma <= 20) {
		return fmt.Errorf("augment: brightness.max, contrast.max (< 1), noise.std and blur.sigma (<= 20) must be >= 0")
	}
	return nil
}

// Apply returns augmented copies of img and mask (nil for none), drawn from
// seed; the inputs are not changed. The mask must be on img's grid.
func (c Config) Apply(img *volume.Volume, mask *volume.Label, seed uint64) (*volume.Volume, *volume.Label, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	if mask != nil && mask.Dims != img.Dims {
		return nil, nil, fmt.Errorf("augment: mask dims %v differ from image dims %v", mask.Dims, img.Dims)
	}
	rng := rand.New(rand.NewPCG(seed, 0xa076bc9e2f1d5a3b))
	v := img.Clone()
	var m *volume.Label
	if mask != nil {
		m = mask.Clone()
	}
	// Draw every decision in a fixed order, so that one transform's
	// probability does not shift the random numbers of the others.
	for _, ax := range []byte("xyz") {
		hit := rng.Float64() < c.Flip.P
		if hit && strings.IndexByte(c.Flip.Axes, ax) >= 0 {
			a := int(ax - 'x')
			flip(v.Data, v.Dims, a)
			if m != nil {
				flip(m.Data, m.Dims, a)
			}
		}
	}
	if hit, q := rng.Float64() < c.Rotate90.P, 1+rng.IntN(3); hit {
		if v.Dims[0] != v.Dims[1] {
			q = 2
		}
		v.Data = rot90(v.Data, v.Dims, q)
		if m != nil {
			m.Data = rot90(m.Data, m.Dims, q)
		}
	}
	if hit, t := rng.Float64() < c.Affine.P, c.Affine.draw(rng); hit {
		var err error
		if v, m, err = resample(v, m, t); err != nil {
			return nil, nil, err
		}
	}
	if hit, d := rng.Float64() < c.Brightness.P, c.Brightness.Max*(2*rng.Float64()-1); hit {
		for i := range v.Data {
			v.Data[i] += float32(d)
		}
	}
	if hit, f := rng.Float64() < c.Contrast.P, 1+c.Contrast.Max*(2*rng.Float64()-1); hit {
		contrast(v.Data, f)
	}
	if hit, s, seed := rng.Float64() < c.Noise.P, c.Noise.Std*rng.Float64(), rng.Uint64(); hit {
		noise := rand.New(rand.NewPCG(seed, 1))
		for i := range v.Data {
			v.Data[i] += float32(s * noise.NormFloat64())
		}
	}
	if hit, s := rng.Float64() < c.Blur.P, 0.5+(c.Blur.Sigma-0.5)*rng.Float64(); hit && c.Blur.Sigma > 0 {
		blurAxial(v, math.Max(s, 0.1))
	}
	v.Affine = img.Affine
	if m != nil {
		m.Affine = img.Affine
	}
	return v, m, nil
}

// flip reverses axis a (0 = i, 1 = j, 2 = k) in place.
func flip[T any](data []T, d volume.Dims, a int) {
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			row := data[d.Index(0, j, k) : d.Index(0, j, k)+d[0]]
			switch a {
			case 0:
				for x, y := 0, d[0]-1; x < y; x, y = x+1, y-1 {
					row[x], row[y] = row[y], row[x]
				}
			case 1:
				if j < d[1]/2 {
					other := data[d.Index(0, d[1]-1-j, k) : d.Index(0, d[1]-1-j, k)+d[0]]
					for x := range row {
						row[x], other[x] = other[x], row[x]
					}
				}
			case 2:
				if k < d[2]/2 {
					other := data[d.Index(0, j, d[2]-1-k) : d.Index(0, j, d[2]-1-k)+d[0]]
					for x := range row {
						row[x], other[x] = other[x], row[x]
					}
				}
			}
		}
	}
}

// rot90 turns every axial slice by q quarter turns (q = 2 for any slice
// shape; q = 1 or 3 need square slices): output voxel (i, j) of a quarter
// turn is input voxel (j, n−1−i).
func rot90[T any](data []T, d volume.Dims, q int) []T {
	out := make([]T, len(data))
	nx, ny := d[0], d[1]
	plane := nx * ny
	for k := 0; k < d[2]; k++ {
		src, dst := data[k*plane:(k+1)*plane], out[k*plane:(k+1)*plane]
		for j := 0; j < ny; j++ {
			for i := 0; i < nx; i++ {
				var si, sj int
				switch q {
				case 1:
					si, sj = j, nx-1-i
				case 2:
					si, sj = nx-1-i, ny-1-j
				default:
					si, sj = ny-1-j, i
				}
				dst[j*nx+i] = src[sj*nx+si]
			}
		}
	}
	return out
}

// transform is a random affine in millimetres about the volume centre.
type transform struct {
	rz, rx, ry, scale, shear float64
}

func (a Affine) draw(rng *rand.Rand) transform {
	u := func(m float64) float64 { return m * (2*rng.Float64() - 1) }
	return transform{
		rz: u(a.RotateDeg) * math.Pi / 180, rx: u(a.TiltDeg) * math.Pi / 180, ry: u(a.TiltDeg) * math.Pi / 180,
		scale: 1 + u(a.Scale), shear: u(a.Shear),
	}
}

// matrix returns the 3x3 map from output millimetres to source millimetres.
func (t transform) matrix() [3][3]float64 {
	cz, sz := math.Cos(t.rz), math.Sin(t.rz)
	cx, sx := math.Cos(t.rx), math.Sin(t.rx)
	cy, sy := math.Cos(t.ry), math.Sin(t.ry)
	rz := [3][3]float64{{cz, -sz, 0}, {sz, cz, 0}, {0, 0, 1}}
	rx := [3][3]float64{{1, 0, 0}, {0, cx, -sx}, {0, sx, cx}}
	ry := [3][3]float64{{cy, 0, sy}, {0, 1, 0}, {-sy, 0, cy}}
	sh := [3][3]float64{{1, t.shear, 0}, {0, 1, 0}, {0, 0, 1}}
	m := mul3(mul3(mul3(rz, rx), ry), sh)
	for r := range 3 {
		for c := range 3 {
			m[r][c] /= t.scale // output = scale·source: source = output/scale
		}
	}
	return m
}

func mul3(a, b [3][3]float64) [3][3]float64 {
	var c [3][3]float64
	for r := range 3 {
		for col := range 3 {
			for k := range 3 {
				c[r][col] += a[r][k] * b[k][col]
			}
		}
	}
	return c
}

// resample applies t to image and mask in one resample each: output voxel
// q reads source voxel c + S⁻¹·M·S·(q − c), with S the voxel spacing and c
// the centre voxel.
func resample(v *volume.Volume, m *volume.Label, t transform) (*volume.Volume, *volume.Label, error) {
	sp := v.Affine.Spacing()
	mm := t.matrix()
	var vox volume.Affine // voxel map q → p
	vox[3][3] = 1
	var c [3]float64
	for a := range 3 {
		c[a] = float64(v.Dims[a]-1) / 2
	}
	for r := range 3 {
		for col := range 3 {
			vox[r][col] = mm[r][col] * sp[col] / sp[r]
		}
	}
	for r := range 3 {
		s := c[r]
		for col := range 3 {
			s -= vox[r][col] * c[col]
		}
		vox[r][3] = s
	}
	grid := v.Affine.Mul(vox)
	out, err := v.ResampleToGrid(v.Dims, grid, volume.Linear, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("augment: %w", err)
	}
	var outM *volume.Label
	if m != nil {
		lm := *m
		lm.Affine = v.Affine
		if outM, err = lm.ResampleToGrid(v.Dims, grid, 0); err != nil {
			return nil, nil, fmt.Errorf("augment: %w", err)
		}
	}
	return out, outM, nil
}

// contrast scales data about its mean by f.
func contrast(data []float32, f float64) {
	var s float64
	for _, x := range data {
		s += float64(x)
	}
	mean := s / float64(len(data))
	for i, x := range data {
		data[i] = float32((float64(x)-mean)*f + mean)
	}
}

// blurAxial smooths every axial slice with a Gaussian of sigma voxels,
// separably along i and j, repeating the border voxels.
func blurAxial(v *volume.Volume, sigma float64) {
	r := int(math.Ceil(3 * sigma))
	w := make([]float32, 2*r+1)
	var sum float64
	for x := -r; x <= r; x++ {
		g := math.Exp(-float64(x*x) / (2 * sigma * sigma))
		w[x+r] = float32(g)
		sum += g
	}
	for i := range w {
		w[i] /= float32(sum)
	}
	d := v.Dims
	nx, ny := d[0], d[1]
	tmp := make([]float32, max(nx, ny))
	line := make([]float32, max(nx, ny))
	for k := 0; k < d[2]; k++ {
		p := v.Data[k*nx*ny : (k+1)*nx*ny]
		for j := 0; j < ny; j++ {
			for i := 0; i < nx; i++ {
				line[i] = p[j*nx+i]
			}
			convolve(tmp[:nx], line[:nx], w, r)
			copy(p[j*nx:(j+1)*nx], tmp[:nx])
		}
		for i := 0; i < nx; i++ {
			for j := 0; j < ny; j++ {
				line[j] = p[j*nx+i]
			}
			convolve(tmp[:ny], line[:ny], w, r)
			for j := 0; j < ny; j++ {
				p[j*nx+i] = tmp[j]
			}
		}
	}
}

func convolve(dst, src, w []float32, r int) {
	n := len(src)
	for x := range dst {
		var s float32
		for t := -r; t <= r; t++ {
			y := min(max(x+t, 0), n-1)
			s += w[t+r] * src[y]
		}
		dst[x] = s
	}
}
