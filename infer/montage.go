package infer

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// Montage settings: a lung window, tiles of at most tileSize pixels, and one
// outline colour per class (class 1 red, 2 green, ...).
const (
	montageLo = -1350
	montageHi = 150
	tileSize  = 256
)

var outlineColours = []color.RGBA{
	{255, 40, 40, 255}, {40, 220, 40, 255}, {60, 140, 255, 255}, {255, 200, 0, 255}, {230, 60, 230, 255},
}

// Montage draws n axial slices of a CT with its mask outlined, tiled in rows
// of up to four, for a quick look. Slices are shown as radiologists read
// them (the patient's right on the left of the image, anterior at the top,
// in a lung window of −1350..150 HU) and are spread evenly over the slices
// that hold any mask, or over the whole volume when the mask is empty. ct
// and mask must share a grid.
func Montage(ct *volume.Volume, mask *volume.Label, n int) (*image.RGBA, error) {
	if ct.Dims != mask.Dims || !ct.Affine.Equal(mask.Affine, 1e-6) || len(ct.Data) != ct.Dims.Len() || len(mask.Data) != mask.Dims.Len() {
		return nil, fmt.Errorf("infer: montage: CT %v and mask %v are not on one grid", ct.Dims, mask.Dims)
	}
	if n < 1 {
		return nil, fmt.Errorf("infer: montage of %d slices", n)
	}
	// LPS voxel order is the radiological display: i to the patient's
	// left (screen right), j to posterior (screen down), k up the body.
	plan, err := volume.PlanReorient(ct.Dims, ct.Affine, "LPS")
	if err != nil {
		return nil, fmt.Errorf("infer: montage: %w", err)
	}
	v, err := plan.Apply(ct)
	if err != nil {
		return nil, fmt.Errorf("infer: montage: %w", err)
	}
	m, err := plan.ApplyLabel(mask)
	if err != nil {
		return nil, fmt.Errorf("infer: montage: %w", err)
	}
	slices := pickSlices(m, n)
	sp := v.Spacing()
	tw, th := tileDims(v.Dims[0], v.Dims[1], sp[0], sp[1])
	cols := min(4, len(slices))
	rows := (len(slices) + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*tw, rows*th))
	for t, k := range slices {
		drawSlice(img, v, m, k, (t%cols)*tw, (t/cols)*th, tw, th)
	}
	return img, nil
}

// pickSlices spreads n slice indices evenly over the slices holding mask
// voxels, or over all slices.
func pickSlices(m *volume.Label, n int) []int {
	d := m.Dims
	lo, hi := d[2], -1
	plane := d[0] * d[1]
	for k := range d[2] {
		for _, x := range m.Data[k*plane : (k+1)*plane] {
			if x != 0 {
				lo, hi = min(lo, k), max(hi, k)
				break
			}
		}
	}
	if hi < 0 {
		lo, hi = 0, d[2]-1
	}
	n = min(n, hi-lo+1)
	out := make([]int, n)
	for i := range out {
		if n == 1 {
			out[i] = (lo + hi) / 2
			continue
		}
		out[i] = lo + int(math.Round(float64(i)*float64(hi-lo)/float64(n-1)))
	}
	return out
}

// tileDims scales an nx×ny slice of the given pixel spacing to fit a
// tileSize square with its true aspect ratio.
func tileDims(nx, ny int, sx, sy float64) (int, int) {
	w, h := float64(nx)*sx, float64(ny)*sy
	s := tileSize / max(w, h)
	return max(1, int(math.Round(w*s))), max(1, int(math.Round(h*s)))
}

// drawSlice draws slice k of v at (x0, y0) in a tw×th tile by nearest
// sampling, and outlines the mask: pixels whose label is not background and
// differs from a neighbouring pixel's (the tile's edge does not count as a
// boundary).
func drawSlice(img *image.RGBA, v *volume.Volume, m *volume.Label, k, x0, y0, tw, th int) {
	d := v.Dims
	label := func(px, py int) uint8 {
		px, py = min(max(px, 0), tw-1), min(max(py, 0), th-1)
		i, j := px*d[0]/tw, py*d[1]/th
		return m.At(i, j, k)
	}
	for py := range th {
		for px := range tw {
			i, j := px*d[0]/tw, py*d[1]/th
			hu := v.At(i, j, k)
			g := uint8(255 * min(max((hu-montageLo)/(montageHi-montageLo), 0), 1))
			c := color.RGBA{g, g, g, 255}
			if l := label(px, py); l != 0 {
				if label(px-1, py) != l || label(px+1, py) != l || label(px, py-1) != l || label(px, py+1) != l {
					c = outlineColours[int(l-1)%len(outlineColours)]
				}
			}
			img.SetRGBA(x0+px, y0+py, c)
		}
	}
}

// WriteMontage writes Montage(ct, mask, n) to path as a PNG, through a
// temporary file and a rename.
func WriteMontage(path string, ct *volume.Volume, mask *volume.Label, n int) error {
	img, err := Montage(ct, mask, n)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
		return fmt.Errorf("infer: montage: %w", err)
	}
	return nil
}
