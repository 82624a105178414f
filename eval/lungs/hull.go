package lungs

import "math"

// point is a pixel position in a slice.
type point struct{ x, y int32 }

// hull is the convex hull of a set of pixel centres in one slice, with the
// pixels it covers as one span per row.
type hull struct {
	poly   []point // counter-clockwise for a y-down raster; fewer than 3 when degenerate; nil when empty
	y0     int     // first covered row
	lo, hi []int32 // row y0+r covers x in [lo[r], hi[r]]
}

// rowExtent collects, per row, the smallest and largest x of a point set:
// the only points a convex hull needs.
type rowExtent struct {
	min, max []int32 // -1 where the row holds no point
}

func newRowExtent(h int) rowExtent {
	e := rowExtent{min: make([]int32, h), max: make([]int32, h)}
	e.reset()
	return e
}

func (e rowExtent) reset() {
	for y := range e.min {
		e.min[y], e.max[y] = -1, -1
	}
}

// add records pixel (x, y).
func (e rowExtent) add(x, y int) {
	if e.min[y] < 0 || int32(x) < e.min[y] {
		e.min[y] = int32(x)
	}
	if int32(x) > e.max[y] {
		e.max[y] = int32(x)
	}
}

// cross is the z component of (a−o)×(b−o).
func cross(o, a, b point) int64 {
	return int64(a.x-o.x)*int64(b.y-o.y) - int64(a.y-o.y)*int64(b.x-o.x)
}

// hullOf returns the convex hull of the recorded points (Andrew's monotone
// chain over the points in (y, x) order, which rowExtent gives sorted).
func hullOf(e rowExtent) hull {
	var pts []point
	for y := range e.min {
		if e.min[y] < 0 {
			continue
		}
		pts = append(pts, point{e.min[y], int32(y)})
		if e.max[y] != e.min[y] {
			pts = append(pts, point{e.max[y], int32(y)})
		}
	}
	if len(pts) == 0 {
		return hull{}
	}
	poly := make([]point, 0, 2*len(pts))
	for _, p := range pts { // one chain
		for len(poly) >= 2 && cross(poly[len(poly)-2], poly[len(poly)-1], p) <= 0 {
			poly = poly[:len(poly)-1]
		}
		poly = append(poly, p)
	}
	first := len(poly) + 1
	for i := len(pts) - 2; i >= 0; i-- { // the other chain, back
		p := pts[i]
		for len(poly) >= first && cross(poly[len(poly)-2], poly[len(poly)-1], p) <= 0 {
			poly = poly[:len(poly)-1]
		}
		poly = append(poly, p)
	}
	if len(poly) > 1 {
		poly = poly[:len(poly)-1] // the last point repeats the first
	}
	return spansOf(poly)
}

// spansOf rasterises a convex polygon: the pixel centres on or inside it,
// row by row.
func spansOf(poly []point) hull {
	y0, y1 := poly[0].y, poly[0].y
	for _, p := range poly {
		y0, y1 = min(y0, p.y), max(y1, p.y)
	}
	h := hull{poly: poly, y0: int(y0)}
	n := int(y1-y0) + 1
	h.lo, h.hi = make([]int32, n), make([]int32, n)
	for r := 0; r < n; r++ {
		y := float64(int(y0) + r)
		xl, xr := math.Inf(1), math.Inf(-1)
		for i, a := range poly {
			b := poly[(i+1)%len(poly)]
			ay, by := float64(a.y), float64(b.y)
			if (y < ay && y < by) || (y > ay && y > by) {
				continue
			}
			if ay == by {
				xl = min(xl, float64(a.x), float64(b.x))
				xr = max(xr, float64(a.x), float64(b.x))
				continue
			}
			x := float64(a.x) + (y-ay)*float64(b.x-a.x)/(by-ay)
			xl, xr = min(xl, x), max(xr, x)
		}
		h.lo[r] = int32(math.Ceil(xl - 1e-9))
		h.hi[r] = int32(math.Floor(xr + 1e-9))
	}
	return h
}

// contains reports whether pixel (x, y) is on or inside the hull.
func (h *hull) contains(x, y int) bool {
	r := y - h.y0
	return r >= 0 && r < len(h.lo) && int32(x) >= h.lo[r] && int32(x) <= h.hi[r]
}

// nearestEdge returns the distance in mm from pixel (x, y) to the hull's
// boundary, for a pixel inside it (sx, sy: pixel size in mm), and the
// nearest boundary point in pixel coordinates. For a point inside a convex
// polygon that is the nearest point of the nearest edge.
func (h *hull) nearestEdge(x, y int, sx, sy float64) (dist, qx, qy float64) {
	px, py := float64(x)*sx, float64(y)*sy
	dist = math.Inf(1)
	for i, a := range h.poly {
		b := h.poly[(i+1)%len(h.poly)]
		ax, ay := float64(a.x)*sx, float64(a.y)*sy
		dx, dy := float64(b.x)*sx-ax, float64(b.y)*sy-ay
		t := 0.0
		if l2 := dx*dx + dy*dy; l2 > 0 {
			t = min(1, max(0, ((px-ax)*dx+(py-ay)*dy)/l2))
		}
		cx, cy := ax+t*dx, ay+t*dy
		if d := math.Hypot(px-cx, py-cy); d < dist {
			dist, qx, qy = d, cx/sx, cy/sy
		}
	}
	return dist, qx, qy
}
