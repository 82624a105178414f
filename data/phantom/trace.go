package phantom

import (
	"slices"

	"github.com/covseg/covseg/data/mdai"
)

// Region is one 4-connected region of a binary image, as polygons that
// run along pixel edges: Outer encloses the region, Holes are its holes.
// Filled with mdai's rule (pixel centres, even-odd), Outer minus Holes
// gives back exactly the region's pixels.
type Region struct {
	Outer mdai.Polygon
	Holes []mdai.Polygon
}

// Trace returns the 4-connected regions of a cols×rows binary image
// (pix[r*cols+c] != 0 is set), in the order of their first pixel (row by
// row). Vertices lie on pixel corners, (c ± 0.5, r ± 0.5), and only where
// the boundary turns. A region inside another's hole is a region of its
// own.
func Trace(pix []uint8, cols, rows int) []Region {
	in := func(c, r int) bool { return c >= 0 && r >= 0 && c < cols && r < rows && pix[r*cols+c] != 0 }
	comp := components(pix, cols, rows)

	// Directed boundary edges run clockwise around each set pixel (in the
	// image's y-down frame), so the set pixel is on the right of travel.
	// Corner (X, Y) is the top-left corner of pixel (X, Y).
	type edge struct {
		x, y, dx, dy int
		pixel        int // the set pixel on its right
	}
	var edges []edge
	W := cols + 1
	out := make([][2]int32, W*(rows+1)) // outgoing edges per corner (+1; 0 = none)
	add := func(e edge) {
		edges = append(edges, e)
		v := e.y*W + e.x
		if out[v][0] == 0 {
			out[v][0] = int32(len(edges))
		} else {
			out[v][1] = int32(len(edges))
		}
	}
	for r := range rows {
		for c := range cols {
			if !in(c, r) {
				continue
			}
			p := r*cols + c
			if !in(c, r-1) {
				add(edge{c, r, 1, 0, p})
			}
			if !in(c+1, r) {
				add(edge{c + 1, r, 0, 1, p})
			}
			if !in(c, r+1) {
				add(edge{c + 1, r + 1, -1, 0, p})
			}
			if !in(c-1, r) {
				add(edge{c, r + 1, 0, -1, p})
			}
		}
	}
	used := make([]bool, len(edges))
	regions := map[int]*Region{}
	var order []int
	for start := range edges {
		if used[start] {
			continue
		}
		var poly mdai.Polygon
		var area2 int // twice the signed area
		e := start
		for {
			used[e] = true
			cur := edges[e]
			nx, ny := cur.x+cur.dx, cur.y+cur.dy
			area2 += cur.x*ny - nx*cur.y
			next := -1
			// At a corner shared by two diagonal set pixels there are two
			// ways on; turning right keeps to the same pixel, so diagonal
			// neighbours stay apart (4-connectivity).
			for _, o := range out[ny*W+nx] {
				if o == 0 {
					continue
				}
				cand := int(o - 1)
				if used[cand] && cand != start {
					continue
				}
				ce := edges[cand]
				if ce.dx == -cur.dy && ce.dy == cur.dx { // right turn
					next = cand
					break
				}
				if next < 0 {
					next = cand
				}
			}
			if nd := edges[next]; nd.dx != cur.dx || nd.dy != cur.dy {
				poly = append(poly, mdai.Point{float64(nx) - 0.5, float64(ny) - 0.5})
			}
			if next == start {
				break
			}
			e = next
		}
		// Rotate so that an outer loop begins at the top-left corner of
		// its first pixel, where its first edge starts (any rotation is
		// the same polygon).
		poly = append(poly[len(poly)-1:], poly[:len(poly)-1]...)
		id := comp[edges[start].pixel]
		reg := regions[id]
		if reg == nil {
			reg = &Region{}
			regions[id] = reg
			order = append(order, id)
		}
		if area2 > 0 {
			reg.Outer = poly
		} else {
			reg.Holes = append(reg.Holes, poly)
		}
	}
	// Order by component id, which follows the first pixel of each.
	slices.Sort(order)
	res := make([]Region, len(order))
	for i, id := range order {
		res[i] = *regions[id]
	}
	return res
}

// components labels the 4-connected components of the set pixels with ids
// in the order of their first pixel; unset pixels get −1.
func components(pix []uint8, cols, rows int) []int {
	comp := make([]int, len(pix))
	for i := range comp {
		comp[i] = -1
	}
	next := 0
	var stack []int
	for p := range pix {
		if pix[p] == 0 || comp[p] >= 0 {
			continue
		}
		comp[p] = next
		stack = append(stack[:0], p)
		for len(stack) > 0 {
			q := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			c, r := q%cols, q/cols
			for _, n := range [4][2]int{{c - 1, r}, {c + 1, r}, {c, r - 1}, {c, r + 1}} {
				if n[0] < 0 || n[1] < 0 || n[0] >= cols || n[1] >= rows {
					continue
				}
				m := n[1]*cols + n[0]
				if pix[m] != 0 && comp[m] < 0 {
					comp[m] = next
					stack = append(stack, m)
				}
			}
		}
		next++
	}
	return comp
}
