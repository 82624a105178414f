package infer

import (
	"math"

	par "github.com/covseg/covseg/internal/parallel"
)

// parallel runs fn over [0, n) in contiguous ranges on the cores
// (parallel.Balanced). size is the number of values each index stands for
// (1 for a voxel, a row's length for a row): about 16k values make a range
// worth a goroutine, so small jobs run on one.
func parallel(n, size int, fn func(lo, hi int)) {
	const grain = 1 << 14
	par.Balanced(n, max(1, grain/max(size, 1)), par.Stateless(fn))
}

// softmax turns logits [C][n] (channel-major, one batch item) into class
// probabilities in place. One channel is read as a sigmoid's logit and
// becomes two: background 1−p and foreground p.
func softmax(x []float32, c int) []float32 {
	n := len(x) / c
	if c == 1 {
		p := make([]float32, 2*n)
		parallel(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				s := 1 / (1 + math.Exp(-float64(x[i])))
				p[i], p[n+i] = float32(1-s), float32(s)
			}
		})
		return p
	}
	if c == 2 {
		// One exponential per voxel: p1 = 1/(1 + e^(l0−l1)).
		parallel(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				p1 := 1 / (1 + math.Exp(float64(x[i])-float64(x[n+i])))
				x[i], x[n+i] = float32(1-p1), float32(p1)
			}
		})
		return x
	}
	parallel(n, 1, func(lo, hi int) {
		e := make([]float64, c)
		for i := lo; i < hi; i++ {
			m := math.Inf(-1)
			for k := range c {
				m = max(m, float64(x[k*n+i]))
			}
			var sum float64
			for k := range c {
				e[k] = math.Exp(float64(x[k*n+i]) - m)
				sum += e[k]
			}
			for k := range c {
				x[k*n+i] = float32(e[k] / sum)
			}
		}
	})
	return x
}

// Mirror bits for flip: which spatial axes of a [C][D][H][W] array to
// reverse.
const (
	flipW = 1 << iota
	flipH
	flipD
)

// flip returns a copy of x, a [C][D][H][W] array, with the axes that mirror
// names reversed. It is its own inverse.
func flip(x []float32, c int, dhw [3]int, mirror int) []float32 {
	d, h, w := dhw[0], dhw[1], dhw[2]
	out := make([]float32, len(x))
	rows := c * d * h
	parallel(rows, w, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			ch, z, y := r/(d*h), (r/h)%d, r%h
			sz, sy := z, y
			if mirror&flipD != 0 {
				sz = d - 1 - z
			}
			if mirror&flipH != 0 {
				sy = h - 1 - y
			}
			src := x[((ch*d+sz)*h+sy)*w:][:w]
			dst := out[r*w:][:w]
			if mirror&flipW == 0 {
				copy(dst, src)
				continue
			}
			for i := range dst {
				dst[i] = src[w-1-i]
			}
		}
	})
	return out
}
