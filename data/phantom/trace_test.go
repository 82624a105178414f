package phantom

import (
	"math/rand/v2"
	"testing"

	"github.com/covseg/covseg/data/mdai"
)

// render fills the regions as an MD.ai reader would: each region's outer
// polygon filled, its holes cleared, the regions OR-ed.
func render(t *testing.T, regs []Region, cols, rows int) []uint8 {
	t.Helper()
	all, _ := mdai.NewBitmap(rows, cols)
	for _, r := range regs {
		s := mdai.Shape{Foreground: []mdai.Polygon{r.Outer}, Background: r.Holes}
		b, err := s.Rasterize(rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		all.Or(b)
	}
	return all.Pix
}

func TestTraceRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 400; n++ {
		cols, rows := 1+rng.IntN(14), 1+rng.IntN(14)
		pix := make([]uint8, cols*rows)
		density := rng.Float64()
		for i := range pix {
			if rng.Float64() < density {
				pix[i] = 1
			}
		}
		regs := Trace(pix, cols, rows)
		comps := components(pix, cols, rows)
		maxc := -1
		for _, c := range comps {
			maxc = max(maxc, c)
		}
		if len(regs) != maxc+1 {
			t.Fatalf("%d regions for %d components", len(regs), maxc+1)
		}
		got := render(t, regs, cols, rows)
		for i := range pix {
			if got[i] != pix[i] {
				t.Fatalf("image %dx%d: pixel %d: traced %d, was %d\nimage %v\nregions %v", cols, rows, i, got[i], pix[i], pix, regs)
			}
		}
		for _, r := range regs {
			if r.Outer == nil {
				t.Fatalf("region without an outer boundary: %+v", r)
			}
		}
	}
}

func TestTraceShapes(t *testing.T) {
	// A ring with an island in its hole, and two diagonal pixels.
	img := []string{
		"#####...",
		"#...#...",
		"#.#.#.#.",
		"#...#..#",
		"#####...",
	}
	cols, rows := len(img[0]), len(img)
	pix := make([]uint8, cols*rows)
	for r, s := range img {
		for c := range s {
			if s[c] == '#' {
				pix[r*cols+c] = 1
			}
		}
	}
	regs := Trace(pix, cols, rows)
	if len(regs) != 4 {
		t.Fatalf("%d regions, want ring, island and two diagonal pixels: %+v", len(regs), regs)
	}
	if len(regs[0].Holes) != 1 || len(regs[0].Outer) != 4 {
		t.Errorf("ring: %+v", regs[0])
	}
	want := mdai.Polygon{{-0.5, -0.5}, {4.5, -0.5}, {4.5, 4.5}, {-0.5, 4.5}}
	for i, p := range regs[0].Outer {
		if p != want[i] {
			t.Errorf("ring outer %v, want %v", regs[0].Outer, want)
			break
		}
	}
	got := render(t, regs, cols, rows)
	for i := range pix {
		if got[i] != pix[i] {
			t.Fatalf("pixel %d differs", i)
		}
	}
}
