// Package montage draws a grid of axial CT slices with label maps over
// them, as PNG pictures for reports: the lungs outlined, infiltrates
// filled, and a legend.
//
// Slices are shown in the radiological convention: looking up from the
// patient's feet, so the patient's right is on the image's left and
// anterior is up. The CT may be stored in any orientation: Render reorients
// it (and the overlays, which must share its grid) to the closest
// canonical RAS+ grid first (volume.PlanCanonical), and tells right from
// left by the affine, never by the voxel order. Pixels are square in mm: a
// tile's aspect follows the field of view, not the voxel counts.
package montage

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// Style says how one label value of an overlay is drawn.
type Style struct {
	// Name is the label's entry in the legend; empty leaves it out.
	Name string
	// Color of the outline and the fill (its alpha is ignored).
	Color color.RGBA
	// Outline draws the label's boundary in each slice, one pixel wide.
	Outline bool
	// Fill is the opacity (0..1) of the colour laid over the label's
	// pixels; 0 draws no fill.
	Fill float64
}

// Overlay is a label map drawn over the CT.
type Overlay struct {
	// Label lies on the CT's grid (same dims, affine within 1e-3 mm).
	Label *volume.Label
	// Styles maps label values to how they are drawn; values without a
	// style are not drawn.
	Styles map[uint8]Style
}

// Options control the picture.
type Options struct {
	// WindowLow and WindowHigh are the HU shown black and white; both zero
	// means DefaultWindow.
	WindowLow, WindowHigh float64
	// Slices is the number of axial slices shown (default 12), evenly
	// spaced over the slices where some overlay draws something, or over
	// the whole volume when none does.
	Slices int
	// Columns of the grid (default 4).
	Columns int
	// TileSize is the longest side of a tile in pixels (default 256).
	TileSize int
	// Title is a line above the grid; empty leaves it out.
	Title string
}

// DefaultWindow is the display window in HU: lung and soft tissue both
// visible (−1350..150).
var DefaultWindow = [2]float64{-1350, 150}

// Limits keep pictures of sane size whatever the options say.
const (
	maxSlices   = 64
	maxTileSize = 1024
)

func (o *Options) defaults() error {
	if o.WindowLow == 0 && o.WindowHigh == 0 {
		o.WindowLow, o.WindowHigh = DefaultWindow[0], DefaultWindow[1]
	}
	if !(o.WindowHigh > o.WindowLow) || math.IsInf(o.WindowHigh-o.WindowLow, 0) {
		return fmt.Errorf("montage: window %g..%g is empty", o.WindowLow, o.WindowHigh)
	}
	if o.Slices == 0 {
		o.Slices = 12
	}
	if o.Columns == 0 {
		o.Columns = 4
	}
	if o.TileSize == 0 {
		o.TileSize = 256
	}
	if o.Slices < 1 || o.Slices > maxSlices || o.Columns < 1 || o.TileSize < 16 || o.TileSize > maxTileSize {
		return fmt.Errorf("montage: %d slices in %d columns of %d px: want 1..%d slices, 1 or more columns, tiles of 16..%d px",
			o.Slices, o.Columns, o.TileSize, maxSlices, maxTileSize)
	}
	return nil
}

// Layout constants, in pixels.
const (
	gap        = 4
	lineHeight = 16
	margin     = 6
)

var (
	background = color.RGBA{16, 16, 16, 255}
	textColor  = color.RGBA{235, 235, 235, 255}
)

// Render draws the montage.
func Render(ct *volume.Volume, overlays []Overlay, opt Options) (*image.RGBA, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	if err := ct.Dims.Valid(); err != nil {
		return nil, fmt.Errorf("montage: CT: %w", err)
	}
	if len(ct.Data) != ct.Dims.Len() {
		return nil, fmt.Errorf("montage: CT has %d voxels for dims %v", len(ct.Data), ct.Dims)
	}
	plan := volume.PlanCanonical(ct.Dims, ct.Affine)
	can, err := plan.Apply(ct)
	if err != nil {
		return nil, fmt.Errorf("montage: %w", err)
	}
	labels := make([]*volume.Label, len(overlays))
	for n, o := range overlays {
		if o.Label == nil {
			return nil, fmt.Errorf("montage: overlay %d has no label map", n)
		}
		if o.Label.Dims != ct.Dims || !o.Label.Affine.Equal(ct.Affine, 1e-3) || len(o.Label.Data) != ct.Dims.Len() {
			return nil, fmt.Errorf("montage: overlay %d lies on grid %v %v, the CT on %v %v", n, o.Label.Dims, o.Label.Affine, ct.Dims, ct.Affine)
		}
		l := *o.Label
		l.Affine = ct.Affine // within tolerance: draw it on the CT's grid
		if labels[n], err = plan.ApplyLabel(&l); err != nil {
			return nil, fmt.Errorf("montage: overlay %d: %w", n, err)
		}
	}
	tables := make([]*styleTable, len(overlays))
	for n, o := range overlays {
		tables[n] = tableOf(o)
	}
	g := newGeometry(can, opt)
	slices := chooseSlices(can.Dims, labels, tables, opt.Slices)
	rows := (len(slices) + opt.Columns - 1) / opt.Columns
	cols := min(opt.Columns, len(slices))
	top := margin
	if opt.Title != "" {
		top += lineHeight
	}
	legend := legendOf(overlays)
	w := 2*margin + cols*g.w + (cols-1)*gap
	h := top + rows*g.h + (rows-1)*gap + margin + 2*lineHeight
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{background}, image.Point{}, draw.Src)
	if opt.Title != "" {
		drawText(img, margin, margin+11, opt.Title, textColor)
	}
	for n, k := range slices {
		x0 := margin + (n%opt.Columns)*(g.w+gap)
		y0 := top + (n/opt.Columns)*(g.h+gap)
		g.drawTile(img, x0, y0, can, labels, tables, k, opt)
	}
	y := top + rows*g.h + (rows-1)*gap + margin
	drawLegend(img, margin, y, legend)
	note := fmt.Sprintf("axial, radiological view (patient's right on the left, anterior up); window %g..%g HU", opt.WindowLow, opt.WindowHigh)
	drawText(img, margin, y+lineHeight+11, note, textColor)
	return img, nil
}

// geometry maps tile pixels to canonical voxels.
type geometry struct {
	w, h   int
	ix, jy []int // voxel i of each tile column, voxel j of each tile row
}

func newGeometry(v *volume.Volume, opt Options) geometry {
	sp := v.Spacing()
	nx, ny := v.Dims[0], v.Dims[1]
	px := max(float64(nx)*sp[0], float64(ny)*sp[1]) / float64(opt.TileSize) // mm per pixel
	g := geometry{w: max(1, int(math.Round(float64(nx)*sp[0]/px))), h: max(1, int(math.Round(float64(ny)*sp[1]/px)))}
	g.ix, g.jy = make([]int, g.w), make([]int, g.h)
	for c := range g.ix {
		// Column 0 is the patient's right: the largest i.
		i := int(math.Floor((float64(c) + 0.5) * px / sp[0]))
		g.ix[c] = nx - 1 - min(i, nx-1)
	}
	for r := range g.jy {
		// Row 0 is anterior: the largest j.
		j := int(math.Floor((float64(r) + 0.5) * px / sp[1]))
		g.jy[r] = ny - 1 - min(j, ny-1)
	}
	return g
}

// styleTable is an overlay's styles indexed by label value.
type styleTable struct {
	has   [256]bool
	style [256]Style
}

func tableOf(o Overlay) *styleTable {
	t := &styleTable{}
	for v, st := range o.Styles {
		t.has[v], t.style[v] = st.Outline || st.Fill > 0, st
	}
	return t
}

// chooseSlices picks up to n slices evenly spaced over the range where an
// overlay draws something (the whole volume when none does), top first.
func chooseSlices(d volume.Dims, labels []*volume.Label, tables []*styleTable, n int) []int {
	lo, hi := d[2], -1
	ns := d[0] * d[1]
	for o, l := range labels {
		for k := 0; k < d[2]; k++ {
			if k >= lo && k <= hi {
				continue
			}
			for _, v := range l.Data[k*ns : (k+1)*ns] {
				if tables[o].has[v] {
					lo, hi = min(lo, k), max(hi, k)
					break
				}
			}
		}
	}
	if hi < 0 {
		lo, hi = 0, d[2]-1
	}
	count := min(n, hi-lo+1)
	out := make([]int, 0, count)
	for s := 0; s < count; s++ {
		k := hi
		if count > 1 {
			k = hi - int(math.Round(float64(s)*float64(hi-lo)/float64(count-1)))
		}
		out = append(out, k)
	}
	return out
}

// drawTile draws slice k at (x0, y0).
func (g geometry) drawTile(img *image.RGBA, x0, y0 int, ct *volume.Volume, labels []*volume.Label, tables []*styleTable, k int, opt Options) {
	nx, ns := ct.Dims[0], ct.Dims[0]*ct.Dims[1]
	scale := 255 / (opt.WindowHigh - opt.WindowLow)
	at := func(c, r int) int { return k*ns + g.jy[r]*nx + g.ix[c] }
	for r := 0; r < g.h; r++ {
		for c := 0; c < g.w; c++ {
			v := (float64(ct.Data[at(c, r)]) - opt.WindowLow) * scale
			if math.IsNaN(v) {
				v = 0
			}
			gray := uint8(math.Round(min(255, max(0, v))))
			img.SetRGBA(x0+c, y0+r, color.RGBA{gray, gray, gray, 255})
		}
	}
	for o, l := range labels {
		t := tables[o]
		for r := 0; r < g.h; r++ {
			for c := 0; c < g.w; c++ {
				v := l.Data[at(c, r)]
				st := &t.style[v]
				if !t.has[v] || st.Fill <= 0 {
					continue
				}
				img.SetRGBA(x0+c, y0+r, blend(img.RGBAAt(x0+c, y0+r), st.Color, st.Fill))
			}
		}
		for r := 0; r < g.h; r++ {
			for c := 0; c < g.w; c++ {
				v := l.Data[at(c, r)]
				st := &t.style[v]
				if !t.has[v] || !st.Outline {
					continue
				}
				edge := c == 0 || r == 0 || c == g.w-1 || r == g.h-1 ||
					l.Data[at(c-1, r)] != v || l.Data[at(c+1, r)] != v || l.Data[at(c, r-1)] != v || l.Data[at(c, r+1)] != v
				if edge {
					img.SetRGBA(x0+c, y0+r, opaque(st.Color))
				}
			}
		}
	}
	z := ct.Affine.Apply([3]float64{float64(ct.Dims[0]-1) / 2, float64(ct.Dims[1]-1) / 2, float64(k)})[2]
	drawLabel(img, x0+3, y0+12, fmt.Sprintf("z %.1f mm", z))
	drawLabel(img, x0+3, y0+g.h/2+5, "R")
	drawLabel(img, x0+g.w-10, y0+g.h/2+5, "L")
}

// drawLabel writes s over an image, with a dark shadow so that it reads on
// white tissue too.
func drawLabel(img *image.RGBA, x, y int, s string) {
	for _, d := range [][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}} {
		drawText(img, x+d[0], y+d[1], s, background)
	}
	drawText(img, x, y, s, textColor)
}

func blend(under, over color.RGBA, alpha float64) color.RGBA {
	alpha = min(1, alpha)
	mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a)*(1-alpha) + float64(b)*alpha)) }
	return color.RGBA{mix(under.R, over.R), mix(under.G, over.G), mix(under.B, over.B), 255}
}

func opaque(c color.RGBA) color.RGBA { c.A = 255; return c }

// legendItem is one entry of the legend line.
type legendItem struct {
	name  string
	style Style
}

// legendOf lists the named styles in overlay order, then label order.
func legendOf(overlays []Overlay) []legendItem {
	var items []legendItem
	for _, o := range overlays {
		for v := 0; v < 256; v++ {
			if st, ok := o.Styles[uint8(v)]; ok && st.Name != "" {
				items = append(items, legendItem{st.Name, st})
			}
		}
	}
	return items
}

func drawLegend(img *image.RGBA, x, y int, items []legendItem) {
	for _, it := range items {
		box := image.Rect(x, y+2, x+12, y+14)
		fill := blend(background, it.style.Color, max(it.style.Fill, 0.15))
		draw.Draw(img, box, &image.Uniform{fill}, image.Point{}, draw.Src)
		if it.style.Outline {
			c := opaque(it.style.Color)
			for i := 0; i < 12; i++ {
				img.SetRGBA(x+i, y+2, c)
				img.SetRGBA(x+i, y+13, c)
				img.SetRGBA(x, y+2+i, c)
				img.SetRGBA(x+11, y+2+i, c)
			}
		}
		x += 16
		x = drawText(img, x, y+12, it.name, textColor) + 14
	}
}

// drawText writes s with its baseline at y and returns the x after it.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) int {
	d := font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
	return d.Dot.X.Round()
}

// Encode writes img as PNG.
func Encode(w io.Writer, img image.Image) error {
	return png.Encode(w, img)
}

// WritePNG writes img to path as PNG, atomically (a temporary file renamed
// into place).
func WritePNG(path string, img image.Image) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
		return fmt.Errorf("montage: %w", err)
	}
	return nil
}
