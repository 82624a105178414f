package infer

import (
	"math"
)

// PatchStarts returns where patches of size patch start along an axis of
// size n (n ≥ patch) so that they cover it with neighbours sharing at least
// overlap·patch voxels, as nnU-Net places them: the fewest patches whose
// step is at most patch·(1 − overlap), spread evenly from 0 to n − patch.
func PatchStarts(n, patch int, overlap float64) []int {
	if n <= patch {
		return []int{0}
	}
	target := max(1, float64(patch)*(1-overlap))
	steps := int(math.Ceil(float64(n-patch)/target)) + 1
	step := float64(n-patch) / float64(steps-1)
	starts := make([]int, steps)
	for i := range starts {
		starts[i] = int(math.Round(step * float64(i)))
	}
	return starts
}

// gaussian returns the blending weights of a patch [D][H][W]: a Gaussian
// centred on the patch with σ = 1/8 of its size along each axis, 1 at the
// centre (nnU-Net's importance map). The smallest weight, in a corner, is
// about e^-24: small but not zero, so every voxel a patch covers has weight.
func gaussian(dhw [3]int) []float32 {
	var axes [3][]float64
	for a, n := range dhw {
		sigma := float64(n) / 8
		c := float64(n-1) / 2
		g := make([]float64, n)
		top := 0.0
		for i := range g {
			g[i] = math.Exp(-(float64(i) - c) * (float64(i) - c) / (2 * sigma * sigma))
			top = max(top, g[i])
		}
		for i := range g {
			g[i] /= top
		}
		axes[a] = g
	}
	w := make([]float32, dhw[0]*dhw[1]*dhw[2])
	for z, gz := range axes[0] {
		for y, gy := range axes[1] {
			row := w[(z*dhw[1]+y)*dhw[2]:][:dhw[2]]
			for x, gx := range axes[2] {
				row[x] = float32(gz * gy * gx)
			}
		}
	}
	return w
}

// slide predicts the class probabilities [C][D][H][W] of x [D][H][W] from
// overlapping patches of the model's grid, blended with Gaussian weights.
// A volume smaller than a patch along an axis is padded with air (centred)
// for the prediction and cropped back afterwards. It returns the number of
// patches too.
func (s *Segmenter) slide(x []float32, dhw [3]int, air float32, forwards *int) ([]float32, int, error) {
	patch := s.cfg.Preprocess.Grid
	var pdhw, off [3]int // padded size, and where x starts in it
	for a := range 3 {
		pdhw[a] = max(dhw[a], patch[a])
		off[a] = (pdhw[a] - dhw[a]) / 2
	}
	padded := x
	if pdhw != dhw {
		padded = region(x, 1, dhw, pdhw, [3]int{-off[0], -off[1], -off[2]}, air)
	}
	var starts [3][]int
	for a := range 3 {
		starts[a] = PatchStarts(pdhw[a], patch[a], s.opts.Overlap)
	}
	total := len(starts[0]) * len(starts[1]) * len(starts[2])
	g := gaussian(patch)
	np := len(padded)
	var acc []float32
	wsum := make([]float32, np)
	for _, z := range starts[0] {
		for _, y := range starts[1] {
			for _, xs := range starts[2] {
				at := [3]int{z, y, xs}
				in := region(padded, 1, pdhw, patch, at, 0)
				p, err := s.predict(in, patch, forwards, total)
				if err != nil {
					return nil, 0, err
				}
				c := len(p) / len(in)
				if acc == nil {
					acc = make([]float32, c*np)
				}
				accumulate(acc, wsum, p, g, c, pdhw, patch, at)
			}
		}
	}
	c := len(acc) / np
	parallel(np, c, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			inv := 1 / wsum[i]
			for k := range c {
				acc[k*np+i] *= inv
			}
		}
	})
	if pdhw != dhw {
		acc = region(acc, c, pdhw, dhw, off, 0)
	}
	return acc, total, nil
}

// region copies the block of size out starting at voxel at of each channel
// of x ([c][D][H][W] of size in); voxels outside x are fill.
func region(x []float32, c int, in, out, at [3]int, fill float32) []float32 {
	dst := make([]float32, c*out[0]*out[1]*out[2])
	rows := c * out[0] * out[1]
	parallel(rows, out[2], func(lo, hi int) {
		for r := lo; r < hi; r++ {
			ch, z, y := r/(out[0]*out[1]), (r/out[1])%out[0], r%out[1]
			row := dst[r*out[2]:][:out[2]]
			sz, sy := z+at[0], y+at[1]
			if sz < 0 || sz >= in[0] || sy < 0 || sy >= in[1] {
				fillRow(row, fill)
				continue
			}
			src := x[((ch*in[0]+sz)*in[1]+sy)*in[2]:][:in[2]]
			for i := range row {
				sx := i + at[2]
				if sx < 0 || sx >= in[2] {
					row[i] = fill
				} else {
					row[i] = src[sx]
				}
			}
		}
	})
	return dst
}

func fillRow(row []float32, v float32) {
	for i := range row {
		row[i] = v
	}
}

// accumulate adds the patch probabilities p ([c][patch]) weighted by g into
// acc ([c][size]) at voxel at, and g into wsum.
func accumulate(acc, wsum, p, g []float32, c int, size, patch, at [3]int) {
	n, pn := size[0]*size[1]*size[2], patch[0]*patch[1]*patch[2]
	rows := patch[0] * patch[1]
	parallel(rows, (c+1)*patch[2], func(lo, hi int) {
		for r := lo; r < hi; r++ {
			z, y := r/patch[1], r%patch[1]
			base := ((z+at[0])*size[1]+y+at[1])*size[2] + at[2]
			gr := g[r*patch[2]:][:patch[2]]
			ws := wsum[base:][:patch[2]]
			for i, w := range gr {
				ws[i] += w
			}
			for k := range c {
				a := acc[k*n+base:][:patch[2]]
				pr := p[k*pn+r*patch[2]:][:patch[2]]
				for i, w := range gr {
					a[i] += w * pr[i]
				}
			}
		}
	})
}
