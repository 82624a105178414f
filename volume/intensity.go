package volume

import (
	"errors"
	"fmt"
	"math"
)

// The paper's CT intensity window in Hounsfield units: −1024 HU (air) to
// 600 HU (above soft tissue, below dense bone), mapped to 0..1 by Window.
const (
	DefaultWindowLo = -1024
	DefaultWindowHi = 600
)

// The intensity operations below change v.Data in place and keep the
// geometry. NaN voxels stay NaN; statistics are taken over finite voxels
// only. Use ReplaceNonFinite first where a model must not see NaN.

// elementGrain is the number of voxels that make a parallel chunk worth it.
const elementGrain = 1 << 15

// each runs f over chunks of v.Data in parallel; f changes its chunk in
// place. The loops live in f, not in a per-voxel callback, so they compile
// to tight code.
func (v *Volume) each(f func(d []float32)) {
	parallelFor(len(v.Data), elementGrain, simple(func(lo, hi int) { f(v.Data[lo:hi]) }))
}

// Clip limits every voxel to [lo, hi] in place.
func (v *Volume) Clip(lo, hi float32) error {
	if !(lo <= hi) {
		return fmt.Errorf("clip [%g, %g]: lo must not exceed hi", lo, hi)
	}
	v.each(func(d []float32) {
		for i, x := range d {
			if x < lo {
				d[i] = lo
			} else if x > hi {
				d[i] = hi
			}
		}
	})
	return nil
}

// Window maps lo..hi linearly to 0..1 in place, clipping below lo to 0 and
// above hi to 1 (±Inf included): the paper's preprocessing with
// Window(DefaultWindowLo, DefaultWindowHi). lo maps to exactly 0 and hi to
// exactly 1.
func (v *Volume) Window(lo, hi float32) error {
	if !(lo < hi) || math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) {
		return fmt.Errorf("window [%g, %g]: want finite lo < hi", lo, hi)
	}
	// float64 keeps the product correctly rounded once cast to float32.
	l, inv := float64(lo), 1/(float64(hi)-float64(lo))
	v.each(func(d []float32) {
		for i, x := range d {
			switch {
			case x <= lo:
				d[i] = 0
			case x >= hi:
				d[i] = 1
			default:
				d[i] = float32((float64(x) - l) * inv) // NaN stays NaN
			}
		}
	})
	return nil
}

// MinMax returns the smallest and largest finite voxel values; ok is false
// when there is none.
func (v *Volume) MinMax() (lo, hi float32, ok bool) {
	const chunk = 1 << 16
	n := (len(v.Data) + chunk - 1) / chunk
	los, his := make([]float32, n), make([]float32, n)
	parallelFor(n, 1, simple(func(a, b int) {
		for c := a; c < b; c++ {
			l, h := float32(math.Inf(1)), float32(math.Inf(-1))
			for _, x := range v.Data[c*chunk : min((c+1)*chunk, len(v.Data))] {
				if x < l && !math.IsInf(float64(x), -1) {
					l = x
				}
				if x > h && !math.IsInf(float64(x), 1) {
					h = x
				}
			}
			los[c], his[c] = l, h
		}
	}))
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	for c := range los {
		lo, hi = min(lo, los[c]), max(hi, his[c])
	}
	return lo, hi, lo <= hi
}

// ScaleMinMax maps the finite voxels' range to 0..1 in place (the paper's
// per-volume scaling option) and returns the range it used; with no finite
// voxel it changes nothing and returns (0, 0). The finite voxels of a
// constant volume become 0. Infinite voxels stay infinite.
func (v *Volume) ScaleMinMax() (lo, hi float32) {
	lo, hi, ok := v.MinMax()
	if !ok {
		return 0, 0
	}
	l, w := float64(lo), float64(hi)-float64(lo)
	if w == 0 {
		v.each(func(d []float32) {
			for i, x := range d {
				if x == lo {
					d[i] = 0
				}
			}
		})
		return lo, hi
	}
	inv := 1 / w
	v.each(func(d []float32) {
		for i, x := range d {
			d[i] = float32((float64(x) - l) * inv)
		}
	})
	return lo, hi
}

// ZScore subtracts the mean of the finite voxels and divides by their
// standard deviation (population, ddof 0, as numpy's std) in place, and
// returns both. Where the deviation is 0 it only subtracts the mean; with
// no finite voxel it changes nothing and returns (0, 0). Sums are float64
// over fixed chunks, so the result does not depend on the number of threads.
func (v *Volume) ZScore() (mean, std float64) {
	sum, n := v.chunkSum(0, false)
	if n == 0 {
		return 0, 0
	}
	mean = sum / float64(n)
	ss, _ := v.chunkSum(mean, true)
	std = math.Sqrt(ss / float64(n))
	div := std
	if div == 0 {
		div = 1
	}
	inv := 1 / div
	v.each(func(d []float32) {
		for i, x := range d {
			d[i] = float32((float64(x) - mean) * inv)
		}
	})
	return mean, std
}

// chunkSum returns the sum over the finite voxels of x − c, or of (x − c)²
// when squares is set, and their count, adding in a fixed chunk order.
func (v *Volume) chunkSum(c float64, squares bool) (float64, int) {
	const chunk = 1 << 16
	nc := (len(v.Data) + chunk - 1) / chunk
	sums, counts := make([]float64, nc), make([]int, nc)
	parallelFor(nc, 1, simple(func(a, b int) {
		for ch := a; ch < b; ch++ {
			var s float64
			var k int
			for _, x := range v.Data[ch*chunk : min((ch+1)*chunk, len(v.Data))] {
				xf := float64(x)
				if math.IsNaN(xf) || math.IsInf(xf, 0) {
					continue
				}
				if xf -= c; squares {
					xf *= xf
				}
				s += xf
				k++
			}
			sums[ch], counts[ch] = s, k
		}
	}))
	var s float64
	var k int
	for i := range sums {
		s += sums[i]
		k += counts[i]
	}
	return s, k
}

// ReplaceNonFinite sets NaN and ±Inf voxels to x in place and returns how
// many it changed.
func (v *Volume) ReplaceNonFinite(x float32) int {
	const chunk = 1 << 16
	nc := (len(v.Data) + chunk - 1) / chunk
	counts := make([]int, nc)
	parallelFor(nc, 1, simple(func(a, b int) {
		for c := a; c < b; c++ {
			d := v.Data[c*chunk : min((c+1)*chunk, len(v.Data))]
			for i, y := range d {
				if yf := float64(y); math.IsNaN(yf) || math.IsInf(yf, 0) {
					d[i] = x
					counts[c]++
				}
			}
		}
	}))
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// Threshold returns a binary mask on v's grid: 1 where the voxel is >= t
// (a probability map thresholded at 0.5, say), 0 elsewhere and for NaN.
func (v *Volume) Threshold(t float32) *Label {
	l := &Label{Dims: v.Dims, Affine: v.Affine, Data: make([]uint8, len(v.Data))}
	parallelFor(len(v.Data), elementGrain, simple(func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if v.Data[i] >= t {
				l.Data[i] = 1
			}
		}
	}))
	return l
}

// ArgMax returns, for each voxel, the index of the channel with the largest
// value (class probabilities or logits to a label map): ties go to the lower
// index and NaN never wins over a number. The channels must share a grid;
// at most 256 channels.
func ArgMax(chs []*Volume) (*Label, error) {
	if err := checkChannels(chs); err != nil {
		return nil, fmt.Errorf("argmax: %w", err)
	}
	if len(chs) > 256 {
		return nil, errors.New("argmax: more than 256 channels do not fit a uint8 label")
	}
	c0 := chs[0]
	l := &Label{Dims: c0.Dims, Affine: c0.Affine, Data: make([]uint8, len(c0.Data))}
	parallelFor(len(c0.Data), elementGrain, simple(func(lo, hi int) {
		for i := lo; i < hi; i++ {
			best, arg := c0.Data[i], 0
			for c := 1; c < len(chs); c++ {
				if x := chs[c].Data[i]; x > best || (best != best && x == x) {
					best, arg = x, c
				}
			}
			l.Data[i] = uint8(arg)
		}
	}))
	return l, nil
}
