package infer

import (
	"image/color"
	"slices"
	"testing"

	"github.com/covseg/covseg/volume"
)

// TestMontage draws a CT stored RAS with a bright spot at the patient's
// right-anterior corner and a mask cube on slices 3..6: the montage shows
// four slices (the ones holding mask), the spot at the top left (the
// radiological view: patient's right on the image's left, anterior up), the
// cube outlined in red and nothing outlined elsewhere; an LPS copy draws the
// same picture.
func TestMontage(t *testing.T) {
	d := volume.Dims{20, 16, 10}
	ct, _ := volume.New(d, volume.Diag([3]float64{1, 1, 2}, [3]float64{}))
	m, _ := volume.NewLabel(d, ct.Affine)
	for k := range d[2] {
		for j := range d[1] {
			for i := range d[0] {
				hu := float32(-1000)
				if i >= 18 && j >= 14 { // RAS: high i = right, high j = anterior
					hu = 100
				}
				ct.Set(i, j, k, hu)
				if k >= 3 && k <= 6 && i >= 5 && i < 12 && j >= 4 && j < 10 {
					m.Data[d.Index(i, j, k)] = 1
				}
			}
		}
	}
	if got := pickSlices(m, 4); !slices.Equal(got, []int{3, 4, 5, 6}) {
		t.Errorf("slices %v, want 3..6", got)
	}
	img, err := Montage(ct, m, 4)
	if err != nil {
		t.Fatal(err)
	}
	tw, th := tileDims(20, 16, 1, 1)
	if b := img.Bounds(); b.Dx() != 4*tw || b.Dy() != th {
		t.Fatalf("montage %v, want 4 tiles of %dx%d", b, tw, th)
	}
	if c := img.RGBAAt(2, 2); c.R < 200 || c.R != c.G {
		t.Errorf("top-left pixel %v: the bright right-anterior spot should be there", c)
	}
	if c := img.RGBAAt(tw-3, th-3); c.R > 100 {
		t.Errorf("bottom-right pixel %v should be air", c)
	}
	red := color.RGBA{255, 40, 40, 255}
	reds := 0
	for y := range th {
		for x := range tw {
			if img.RGBAAt(x, y) == red {
				reds++
				// LPS: the cube spans i (RAS) 5..11 → screen x 8..14 of 20.
				if fx := float64(x) / float64(tw) * 20; fx < 7.5 || fx > 15.5 {
					t.Fatalf("outline at x %d (voxel %.1f) outside the cube", x, fx)
				}
			}
		}
	}
	if reds == 0 {
		t.Error("no outline drawn")
	}
	lps, _ := ct.Reorient("LPS")
	ml, _ := m.Reorient("LPS")
	img2, err := Montage(lps, ml, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(img.Pix, img2.Pix) {
		t.Error("an LPS copy draws a different montage")
	}
	if _, err := Montage(ct, &volume.Label{Dims: volume.Dims{1, 1, 1}, Data: []uint8{0}, Affine: ct.Affine}, 4); err == nil {
		t.Error("a mask on another grid was drawn")
	}
}
