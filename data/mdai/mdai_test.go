package mdai

import (
	"math/rand/v2"
	"strings"
	"testing"
)

const sample = `{
  "datasets": [{"id": "D_1", "name": "RICORD", "annotations": [
    {"id": "A_1", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.3.4",
     "labelId": "L_op", "createdById": "U_1", "height": 8, "width": 10,
     "data": {"vertices": [[1, 1], [6, 1], [6, 3], [1, 3]]}},
    {"id": "A_2", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.3.4",
     "labelId": "L_mask", "height": 8, "width": 10,
     "data": {"foreground": [[[0, 0], [9, 0], [9, 7], [0, 7]]], "background": [[[2.5, 2.5], [5.5, 2.5], [5.5, 4.5], [2.5, 4.5]]]}},
    {"id": "A_3", "StudyInstanceUID": "1.2", "labelId": "L_typ", "data": null},
    {"id": "A_4", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.3.5",
     "labelId": "L_box", "height": 8, "width": 10, "data": {"x": 1, "y": 2, "width": 3, "height": 1}}
  ]}],
  "labelGroups": [{"id": "G_1", "name": "Default", "labels": [
    {"id": "L_op", "name": "Infectious opacity", "scope": "INSTANCE", "annotationMode": "freeform"},
    {"id": "L_mask", "name": "Mask thing", "scope": "INSTANCE", "annotationMode": "mask"},
    {"id": "L_typ", "name": "Typical Appearance", "scope": "STUDY", "annotationMode": null},
    {"id": "L_box", "name": "Box", "scope": "INSTANCE", "annotationMode": "bbox"}
  ]}]
}`

// draw renders a bitmap as rows of '#' and '.', for readable failures.
func draw(b *Bitmap) string {
	var s strings.Builder
	for r := 0; r < b.Rows; r++ {
		for c := 0; c < b.Cols; c++ {
			if b.At(c, r) != 0 {
				s.WriteByte('#')
			} else {
				s.WriteByte('.')
			}
		}
		s.WriteByte('\n')
	}
	return s.String()
}

func TestDecodeAndRasterize(t *testing.T) {
	e, err := Decode("sample", strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	as := e.Annotations()
	if len(as) != 4 {
		t.Fatalf("%d annotations", len(as))
	}
	if as[2].HasData() {
		t.Error("null data reads as data")
	}
	if _, err := as[2].Shape(); err == nil {
		t.Error("Shape of null data did not fail")
	}
	found, missing := e.FindLabels("infectious OPACITY ", "Nope")
	if len(found) != 1 || found[0].ID != "L_op" || len(missing) != 1 || missing[0] != "Nope" {
		t.Errorf("FindLabels: %v, %v", found, missing)
	}
	if e.Labels()["L_typ"].Scope != ScopeStudy {
		t.Error("scope lost")
	}
	// The rectangle x 1..6, y 1..3: columns 1..5 (x = 6 is the right
	// edge, outside) of rows 1..2. Wider than tall: a swapped row and
	// column would show.
	want := []string{
		"..........",
		".#####....",
		".#####....",
		"..........",
		"..........",
		"..........",
		"..........",
		"..........",
	}
	check(t, as[0], 8, 10, want)
	// The whole 10x8 frame minus a hole holding centres x 3..5, y 3..4.
	want = []string{
		"#########.",
		"#########.",
		"#########.",
		"###...###.",
		"###...###.",
		"#########.",
		"#########.",
		"..........",
	}
	check(t, as[1], 8, 10, want)
	// A box x 1..4, y 2..3.
	want = []string{
		"..........",
		"..........",
		".###......",
		"..........",
		"..........",
		"..........",
		"..........",
		"..........",
	}
	check(t, as[3], 8, 10, want)
	if r, c, ok := as[0].Size(); !ok || r != 8 || c != 10 {
		t.Errorf("Size %d %d %v", r, c, ok)
	}
}

func check(t *testing.T, a *Annotation, rows, cols int, want []string) {
	t.Helper()
	s, err := a.Shape()
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Rasterize(rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	if got := draw(b); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("annotation %s:\n%s\nwant\n%s", a.ID, got, strings.Join(want, "\n"))
	}
}

// TestFillMatchesPointTest compares the scanline fill with the
// point-in-polygon test at every pixel centre, for random (often
// self-crossing) polygons with vertices on and off the pixel grid and
// partly outside the image.
func TestFillMatchesPointTest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		rows, cols := 1+rng.IntN(20), 1+rng.IntN(20)
		p := make(Polygon, 3+rng.IntN(8))
		for i := range p {
			x, y := rng.Float64()*float64(cols+4)-2, rng.Float64()*float64(rows+4)-2
			if n%2 == 0 { // on the grid: ties on edges and vertices
				x, y = float64(int(x)), float64(int(y))
			}
			p[i] = Point{x, y}
		}
		b, _ := NewBitmap(rows, cols)
		b.FillPolygon(p, true)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if got, want := b.At(c, r) == 1, Contains(p, float64(c), float64(r)); got != want {
					t.Fatalf("polygon %v, pixel (c %d, r %d): fill %v, point test %v\n%s", p, c, r, got, want, draw(b))
				}
			}
		}
	}
}

func TestEvenOdd(t *testing.T) {
	// A pentagram: its centre is crossed twice (even-odd: outside), its
	// points once.
	star := Polygon{{10, 0}, {16, 19}, {0, 7}, {20, 7}, {4, 19}}
	b, _ := NewBitmap(20, 21)
	b.FillPolygon(star, true)
	if b.At(10, 10) != 0 {
		t.Errorf("centre of the pentagram is filled:\n%s", draw(b))
	}
	if b.At(10, 3) != 1 || b.At(3, 8) != 1 {
		t.Errorf("points of the pentagram are empty:\n%s", draw(b))
	}
	// Two shared-edge squares do not overlap: [0,3)x[0,3) and [3,6)x[0,3).
	l, r := Polygon{{0, 0}, {3, 0}, {3, 3}, {0, 3}}, Polygon{{3, 0}, {6, 0}, {6, 3}, {3, 3}}
	bl, _ := NewBitmap(4, 7)
	br, _ := NewBitmap(4, 7)
	bl.FillPolygon(l, true)
	br.FillPolygon(r, true)
	for i := range bl.Pix {
		if bl.Pix[i]&br.Pix[i] != 0 {
			t.Fatalf("pixel %d claimed by both", i)
		}
	}
	if bl.Count() != 9 || br.Count() != 9 {
		t.Errorf("counts %d, %d, want 9, 9", bl.Count(), br.Count())
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		"not json":      `{`,
		"no datasets":   `{"labelGroups": []}`,
		"unknown label": `{"datasets": [{"annotations": [{"labelId": "X"}]}], "labelGroups": []}`,
		"dup label":     `{"datasets": [], "labelGroups": [{"labels": [{"id": "a"}, {"id": "a"}]}]}`,
		"empty id":      `{"datasets": [], "labelGroups": [{"labels": [{"name": "a"}]}]}`,
	}
	for name, in := range cases {
		if _, err := Decode("x.json", strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "x.json") {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
	shapes := map[string]string{
		"short vertex":  `{"vertices": [[1, 2], [3]]}`,
		"huge":          `{"vertices": [[1e300, 2], [3, 4], [5, 6]]}`,
		"line":          `{"start": [1, 2]}`,
		"bad fg":        `{"foreground": [[1, 2]]}`,
		"string":        `"x"`,
		"null vertices": `{"vertices": null}`,
		"null polygon":  `{"foreground": [null]}`,
	}
	for name, d := range shapes {
		a := Annotation{Data: []byte(d)}
		if _, err := a.Shape(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewBitmap(0, 5); err == nil {
		t.Error("empty bitmap accepted")
	}
	if _, err := NewBitmap(70000, 5); err == nil {
		t.Error("huge bitmap accepted")
	}
}

func FuzzShape(f *testing.F) {
	f.Add(`{"vertices": [[1, 1], [6, 1], [6, 3], [1, 3]]}`, 8, 10)
	f.Add(`{"foreground": [[[0, 0], [9, 0], [9, 7]]], "background": [[[2.5, 2.5], [5.5, 2.5], [5.5, 4.5]]]}`, 8, 10)
	f.Add(`{"x": 1, "y": 2, "width": 3, "height": 1}`, 4, 4)
	f.Add(`{"vertices": [[-1e5, 3], [1e5, 2], [4, 1e5]]}`, 30, 3)
	f.Fuzz(func(t *testing.T, data string, rows, cols int) {
		a := Annotation{Data: []byte(data)}
		s, err := a.Shape()
		if err != nil {
			return
		}
		rows, cols = 1+abs(rows)%64, 1+abs(cols)%64
		b, err := s.Rasterize(rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		// Without holes, each pixel is set iff some polygon contains its
		// centre.
		if len(s.Background) > 0 {
			return
		}
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				want := false
				for _, p := range s.Foreground {
					want = want || (len(p) >= 3 && Contains(p, float64(c), float64(r)))
				}
				if (b.At(c, r) == 1) != want {
					t.Fatalf("pixel (%d, %d): fill %d, point test %v", c, r, b.At(c, r), want)
				}
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add(sample)
	f.Add(`{"datasets": [], "labelGroups": []}`)
	f.Fuzz(func(t *testing.T, in string) {
		e, err := Decode("fuzz.json", strings.NewReader(in))
		if err != nil {
			return
		}
		for _, a := range e.Annotations() {
			if s, err := a.Shape(); err == nil {
				s.Rasterize(16, 16)
			}
		}
	})
}

func abs(x int) int {
	if x < 0 {
		if x == -x {
			return 0
		}
		return -x
	}
	return x
}
