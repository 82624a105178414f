package lungs

import (
	"testing"

	chest "github.com/covseg/covseg/data/phantom"
)

// TestSharedPhantom segments the project's synthetic chests (package
// phantom: stored LPS, a heart and aorta on the left, vessel trees, ground
// glass and consolidations inside the lungs) and compares with their lung
// masks, lesions included: right and left never swapped, each lung's Dice
// at least 0.97.
func TestSharedPhantom(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		p, err := chest.Generate(chest.DefaultConfig(), seed)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Segment(p.Image, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		var c [3][3]int
		for i, l := range p.Lungs.Data {
			c[l][r.Mask.Data[i]]++
		}
		if c[chest.RightLung][Left] != 0 || c[chest.LeftLung][Right] != 0 {
			t.Errorf("seed %d: right and left swapped for some voxels: %v", seed, c)
		}
		for _, l := range []uint8{Right, Left} {
			want := map[uint8]int{Right: chest.RightLung, Left: chest.LeftLung}[l]
			truth := c[want][0] + c[want][1] + c[want][2]
			got := c[0][l] + c[1][l] + c[2][l]
			if d := 2 * float64(c[want][l]) / float64(truth+got); d < 0.97 {
				t.Errorf("seed %d: lung %d Dice %.4f, want ≥ 0.97 (%v)", seed, l, d, c)
			}
		}
	}
}
