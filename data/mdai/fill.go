package mdai

import (
	"fmt"
	"math"
	"sort"
)

// Bitmap is a binary image of Rows×Cols pixels, row major: pixel (column
// c, row r) is Pix[r*Cols+c], 1 inside, 0 outside.
type Bitmap struct {
	Rows, Cols int
	Pix        []uint8
}

// NewBitmap returns an empty bitmap.
func NewBitmap(rows, cols int) (*Bitmap, error) {
	if rows < 1 || cols < 1 || rows > MaxSide || cols > MaxSide {
		return nil, fmt.Errorf("mdai: image of %d rows and %d columns (each must be 1..%d)", rows, cols, MaxSide)
	}
	return &Bitmap{Rows: rows, Cols: cols, Pix: make([]uint8, rows*cols)}, nil
}

// At returns pixel (column c, row r).
func (b *Bitmap) At(c, r int) uint8 { return b.Pix[r*b.Cols+c] }

// Count returns the number of pixels set.
func (b *Bitmap) Count() int {
	n := 0
	for _, v := range b.Pix {
		if v != 0 {
			n++
		}
	}
	return n
}

// Or sets every pixel that is set in o (of the same size).
func (b *Bitmap) Or(o *Bitmap) {
	for i, v := range o.Pix {
		b.Pix[i] |= v
	}
}

// FillPolygon sets (on) or clears (!on) the pixels inside p.
//
// The rule: pixel (column c, row r) is inside when its centre, the point
// (x, y) = (c, r), is inside p by the even-odd rule: a ray from it towards
// +x crosses the polygon's edges an odd number of times, where an edge
// from (x0, y0) to (x1, y1) is crossed when exactly one of y0, y1 is
// greater than r and the crossing point's x is greater than c. This is the
// classic point-in-polygon test (PNPOLY), evaluated per scanline: centres
// exactly on a left edge count as inside, on a right edge as outside, so
// two polygons sharing an edge never both claim its pixels. Self-crossing
// polygons alternate inside and outside at each crossing. Vertices may lie
// outside the image; the polygon is clipped to it.
func (b *Bitmap) FillPolygon(p Polygon, on bool) {
	if len(p) < 3 {
		return
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, q := range p {
		lo, hi = math.Min(lo, q[1]), math.Max(hi, q[1])
	}
	r0 := max(0, int(math.Floor(lo)))
	r1 := min(b.Rows-1, int(math.Ceil(hi)))
	set := uint8(0)
	if on {
		set = 1
	}
	xs := make([]float64, 0, 16)
	for r := r0; r <= r1; r++ {
		y := float64(r)
		xs = crossings(xs[:0], p, y)
		sort.Float64s(xs)
		row := b.Pix[r*b.Cols : (r+1)*b.Cols]
		for k := 0; k+1 < len(xs); k += 2 {
			c0 := max(0, ceilIndex(xs[k]))
			c1 := min(b.Cols, ceilIndex(xs[k+1]))
			for c := c0; c < c1; c++ {
				row[c] = set
			}
		}
	}
}

// crossings appends the x of every edge of p that scanline y crosses, as
// PNPOLY computes it.
func crossings(xs []float64, p Polygon, y float64) []float64 {
	j := len(p) - 1
	for i := range p {
		xi, yi, xj, yj := p[i][0], p[i][1], p[j][0], p[j][1]
		if (yi > y) != (yj > y) {
			xs = append(xs, (xj-xi)*(y-yi)/(yj-yi)+xi)
		}
		j = i
	}
	return xs
}

// ceilIndex is ceil(x) as an int, saturated well beyond any image.
func ceilIndex(x float64) int {
	c := math.Ceil(x)
	switch {
	case c < -1:
		return -1
	case c > 2*MaxSide:
		return 2 * MaxSide
	}
	return int(c)
}

// Contains reports whether point (x, y) is inside p by the even-odd rule
// of FillPolygon (PNPOLY).
func Contains(p Polygon, x, y float64) bool {
	in := false
	j := len(p) - 1
	for i := range p {
		xi, yi, xj, yj := p[i][0], p[i][1], p[j][0], p[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
		j = i
	}
	return in
}

// Rasterize draws s on a rows×cols bitmap: each foreground polygon filled
// by FillPolygon's rule (their union), then each background polygon
// cleared, so holes cut through every foreground polygon of the shape.
func (s *Shape) Rasterize(rows, cols int) (*Bitmap, error) {
	b, err := NewBitmap(rows, cols)
	if err != nil {
		return nil, err
	}
	for _, p := range s.Foreground {
		b.FillPolygon(p, true)
	}
	for _, p := range s.Background {
		b.FillPolygon(p, false)
	}
	return b, nil
}
