package lungs

import "math"

// edt computes exact squared Euclidean distance transforms of 2D binary
// images with anisotropic pixels (Felzenszwalb and Huttenlocher, "Distance
// Transforms of Sampled Functions", 2012). Along y the image is binary, so
// the distance to the nearest feature of each column is two sweeps away,
// done row by row; along x, row by row too, the lower envelope of
// parabolas gives the exact 2D distance. Both passes are linear in the
// number of pixels and read memory in order. It keeps its buffers between
// calls; use one per goroutine.
type edt struct {
	last []int
	h    []float64
	v    []int
	z    []float64
}

// transform sets dist[p] to the squared distance in mm² from pixel p to the
// nearest feature pixel, one whose mask value is on (+Inf where there is
// none); w, h are the image size and sx, sy the pixel size in mm along x
// and y.
func (e *edt) transform(dist []float64, mask []uint8, on uint8, w, h int, sx, sy float64) {
	if cap(e.last) < w {
		e.last, e.h, e.v, e.z = make([]int, w), make([]float64, w), make([]int, w), make([]float64, w+1)
	}
	inf := math.Inf(1)
	sy2 := sy * sy
	last := e.last[:w]
	for x := range last {
		last[x] = -1
	}
	for y := 0; y < h; y++ {
		row, m := dist[y*w:(y+1)*w], mask[y*w:(y+1)*w]
		for x := range row {
			if m[x] == on {
				last[x] = y
			}
			if last[x] < 0 {
				row[x] = inf
			} else {
				dy := float64(y - last[x])
				row[x] = sy2 * dy * dy
			}
		}
	}
	for x := range last {
		last[x] = -1
	}
	for y := h - 1; y >= 0; y-- {
		row, m := dist[y*w:(y+1)*w], mask[y*w:(y+1)*w]
		for x := range row {
			if m[x] == on {
				last[x] = y
			}
			if last[x] >= 0 {
				dy := float64(last[x] - y)
				row[x] = min(row[x], sy2*dy*dy)
			}
		}
	}
	for y := 0; y < h; y++ {
		e.pass(dist[y*w:(y+1)*w], sx*sx)
	}
}

// pass replaces f in place by d[q] = min over p of s2·(q−p)² + f[p],
// ignoring infinite f[p]; d is +Inf everywhere when every f[p] is.
func (e *edt) pass(f []float64, s2 float64) {
	v, z, g := e.v, e.z, e.h
	k := -1
	for q, fq := range f {
		if math.IsInf(fq, 1) {
			continue
		}
		gq := fq/s2 + float64(q*q) // the parabola's height at 0, in pixels²
		g[q] = gq
		if k < 0 {
			k = 0
			v[0], z[0], z[1] = q, math.Inf(-1), math.Inf(1)
			continue
		}
		for {
			p := v[k]
			s := (gq - g[p]) / float64(2*(q-p))
			if s <= z[k] {
				k-- // z[0] is −Inf, so k stays ≥ 0
				continue
			}
			k++
			v[k], z[k], z[k+1] = q, s, math.Inf(1)
			break
		}
	}
	if k < 0 {
		return // every f[q] is +Inf already
	}
	j := 0
	for q := range f {
		for z[j+1] < float64(q) {
			j++
		}
		p := v[j]
		dq := float64(q - p)
		f[q] = s2 * (dq*dq + g[p] - float64(p*p))
	}
}
