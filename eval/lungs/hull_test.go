package lungs

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestHullCoversExactlyTheConvexHull(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 200; trial++ {
		w, h := 1+rng.IntN(30), 1+rng.IntN(30)
		ext := newRowExtent(h)
		var pts []point
		for n := rng.IntN(8); n >= 0; n-- {
			p := point{int32(rng.IntN(w)), int32(rng.IntN(h))}
			pts = append(pts, p)
			ext.add(int(p.x), int(p.y))
		}
		hl := hullOf(ext)
		for _, p := range pts {
			if !hl.contains(int(p.x), int(p.y)) {
				t.Fatalf("trial %d: hull %v misses its point %v", trial, hl.poly, p)
			}
		}
		// The polygon is convex: every vertex is on the same side of every
		// edge (or on it).
		n := len(hl.poly)
		for i := 0; i < n && n >= 3; i++ {
			a, b := hl.poly[i], hl.poly[(i+1)%n]
			for _, c := range hl.poly {
				if cross(a, b, c)*cross(a, b, hl.poly[(i+2)%n]) < 0 {
					t.Fatalf("trial %d: hull %v is not convex", trial, hl.poly)
				}
			}
		}
		// A pixel is covered iff it is inside the polygon or on its boundary.
		for y := -1; y <= h; y++ {
			for x := -1; x <= w; x++ {
				want := insidePolygon(hl.poly, x, y)
				if got := hl.contains(x, y); got != want {
					t.Fatalf("trial %d: pixel (%d,%d) covered %v, want %v (hull %v)", trial, x, y, got, want, hl.poly)
				}
			}
		}
	}
}

// insidePolygon reports whether (x, y) is inside or on a convex polygon
// (or on the point or segment of a degenerate one).
func insidePolygon(poly []point, x, y int) bool {
	p := point{int32(x), int32(y)}
	switch len(poly) {
	case 1:
		return poly[0] == p
	case 2:
		a, b := poly[0], poly[1]
		return cross(a, b, p) == 0 &&
			min(a.x, b.x) <= p.x && p.x <= max(a.x, b.x) && min(a.y, b.y) <= p.y && p.y <= max(a.y, b.y)
	}
	pos, neg := false, false
	for i, a := range poly {
		c := cross(a, poly[(i+1)%len(poly)], p)
		pos = pos || c > 0
		neg = neg || c < 0
	}
	return !(pos && neg)
}

func TestNearestEdge(t *testing.T) {
	ext := newRowExtent(21)
	ext.add(0, 0)
	ext.add(30, 0)
	ext.add(0, 20)
	ext.add(30, 20)
	hl := hullOf(ext) // the rectangle 0..30 x 0..20
	d, qx, qy := hl.nearestEdge(10, 4, 2, 1)
	// Nearest edge in mm: y = 0 is 4 mm away, x = 0 is 20 mm away.
	if math.Abs(d-4) > 1e-9 || math.Abs(qx-10) > 1e-9 || math.Abs(qy) > 1e-9 {
		t.Errorf("nearestEdge(10, 4) = %g at (%g, %g), want 4 at (10, 0)", d, qx, qy)
	}
	d, qx, _ = hl.nearestEdge(28, 10, 2, 1)
	if math.Abs(d-4) > 1e-9 || math.Abs(qx-30) > 1e-9 {
		t.Errorf("nearestEdge(28, 10) = %g at x %g, want 4 at x 30", d, qx)
	}
}
