package montage

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
)

// blobs returns a 40x30x10 CT of 2 mm voxels (RAS+, origin at the grid's
// centre) holding −1000 HU, with a bright block on the patient's right
// (x > 0) in the posterior half and a label map marking a block on the
// patient's left in the anterior half, in slices 3..5 only.
func blobs() (*volume.Volume, *volume.Label) {
	d := volume.Dims{40, 30, 10}
	a := volume.Diag([3]float64{2, 2, 2}, [3]float64{-39, -29, -9})
	v, _ := volume.New(d, a)
	l, _ := volume.NewLabel(d, a)
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				p := d.Index(i, j, k)
				v.Data[p] = -1000
				if i >= 25 && i < 35 && j >= 3 && j < 12 { // right, posterior
					v.Data[p] = 150
				}
				if i >= 5 && i < 15 && j >= 18 && j < 27 && k >= 3 && k <= 5 { // left, anterior
					l.Data[p] = 1
				}
			}
		}
	}
	return v, l
}

var red = color.RGBA{255, 0, 0, 255}

func overlayOf(l *volume.Label) []Overlay {
	return []Overlay{{Label: l, Styles: map[uint8]Style{1: {Name: "marked", Color: red, Fill: 1}}}}
}

func TestRadiologicalConvention(t *testing.T) {
	v, l := blobs()
	img, err := Render(v, overlayOf(l), Options{Slices: 1, Columns: 1, TileSize: 80})
	if err != nil {
		t.Fatal(err)
	}
	// One tile of 80x60 px (80 x 60 mm) at (margin, margin).
	at := func(x, y int) color.RGBA { return img.RGBAAt(margin+x, margin+y) }
	// The patient's right (bright block) is on the image's left, posterior
	// down: around tile pixel (20, 45).
	if c := at(20, 45); c.R != 255 || c.G != 255 {
		t.Errorf("patient's right, posterior: pixel %v, want the white block (image left, bottom)", c)
	}
	air := color.RGBA{60, 60, 60, 255} // −1000 HU in the window −1350..150
	if c := at(60, 45); c != air {
		t.Errorf("patient's left, posterior: pixel %v, want air %v", c, air)
	}
	// The label on the patient's left, anterior: image right, top.
	if c := at(60, 18); c != red {
		t.Errorf("patient's left, anterior: pixel %v, want the red fill (image right, top)", c)
	}
	if c := at(20, 18); c != air {
		t.Errorf("patient's right, anterior: pixel %v, want air %v", c, air)
	}
}

func TestOrientationDoesNotMatter(t *testing.T) {
	v, l := blobs()
	want, err := Render(v, overlayOf(l), Options{Slices: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, codes := range []string{"LPS", "PIR", "SLA"} {
		w, err := v.Reorient(codes)
		if err != nil {
			t.Fatal(err)
		}
		m, err := l.Reorient(codes)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Render(w, overlayOf(m), Options{Slices: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Pix, want.Pix) || got.Rect != want.Rect {
			t.Errorf("%s: the picture differs from the RAS volume's", codes)
		}
	}
}

func TestSlicesFollowTheOverlay(t *testing.T) {
	v, l := blobs()
	d := v.Dims
	lab := volume.Dims{d[0], d[1], d[2]}
	ct := &volume.Volume{Dims: lab, Affine: v.Affine, Data: v.Data}
	tables := []*styleTable{tableOf(overlayOf(l)[0])}
	got := chooseSlices(ct.Dims, []*volume.Label{l}, tables, 12)
	if len(got) != 3 || got[0] != 5 || got[2] != 3 {
		t.Errorf("slices %v, want 5 4 3 (the overlay's, top first)", got)
	}
	empty, _ := volume.NewLabel(d, v.Affine)
	got = chooseSlices(ct.Dims, []*volume.Label{empty}, tables, 4)
	if len(got) != 4 || got[0] != 9 || got[3] != 0 {
		t.Errorf("no overlay: slices %v, want 4 spread over 9..0", got)
	}
}

func TestOutline(t *testing.T) {
	v, l := blobs()
	ov := []Overlay{{Label: l, Styles: map[uint8]Style{1: {Color: red, Outline: true}}}}
	img, err := Render(v, ov, Options{Slices: 1, Columns: 1, TileSize: 80})
	if err != nil {
		t.Fatal(err)
	}
	at := func(x, y int) color.RGBA { return img.RGBAAt(margin+x, margin+y) }
	// The block covers tile columns 50..69 and rows 6..23: its edge is red,
	// its inside is not.
	if c := at(50, 18); c != red {
		t.Errorf("edge pixel %v, want red", c)
	}
	if c := at(60, 18); c == red {
		t.Errorf("inside pixel %v, want no outline colour", c)
	}
}

func TestErrors(t *testing.T) {
	v, l := blobs()
	other := l.Clone()
	other.Affine[0][3] += 1
	small, _ := volume.NewLabel(volume.Dims{4, 4, 4}, v.Affine)
	for _, tc := range []struct {
		name string
		ov   []Overlay
		opt  Options
		want string
	}{
		{"shifted grid", overlayOf(other), Options{}, "grid"},
		{"other dims", overlayOf(small), Options{}, "grid"},
		{"nil label", []Overlay{{}}, Options{}, "no label map"},
		{"empty window", nil, Options{WindowLow: 10, WindowHigh: -10}, "window"},
		{"too many slices", nil, Options{Slices: 1000}, "slices"},
		{"tiny tiles", nil, Options{TileSize: 3}, "tiles"},
	} {
		_, err := Render(v, tc.ov, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestWritePNG(t *testing.T) {
	v, l := blobs()
	img, err := Render(v, overlayOf(l), Options{Title: "blobs"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.png")
	if err := WritePNG(path, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if back.Bounds() != img.Bounds() {
		t.Errorf("PNG of %v, want %v", back.Bounds(), img.Bounds())
	}
	if err := WritePNG(filepath.Join(t.TempDir(), "no", "such", "dir.png"), img); err == nil {
		t.Error("writing into a missing folder: no error")
	}
	var _ image.Image = img
}
