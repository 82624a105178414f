package pipeline

import (
	"testing"

	"github.com/covseg/covseg/volume"
)

// TestSyntheticCT checks that the benchmark's CT holds air, lung, soft
// tissue and bone where a chest CT has them.
func TestSyntheticCT(t *testing.T) {
	v, err := SyntheticCT(volume.Dims{128, 128, 40}, [3]float64{2.8, 2.8, 5}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Affine.AxCodes() != "LPS" {
		t.Errorf("orientation %s, want LPS", v.Affine.AxCodes())
	}
	count := map[string]int{}
	for _, x := range v.Data {
		switch {
		case x < -950:
			count["air"]++
		case x > -900 && x < -780:
			count["lung"]++
		case x > -420 && x < -280:
			count["ground glass"]++
		case x > -20 && x < 100:
			count["soft tissue"]++
		case x > 600:
			count["bone"]++
		}
	}
	for _, k := range []string{"air", "lung", "ground glass", "soft tissue", "bone"} {
		if count[k] < len(v.Data)/500 {
			t.Errorf("%s: %d of %d voxels", k, count[k], len(v.Data))
		}
	}
	// The patient's right lung is on the left of a radiological view: at
	// the centre slice, a point 70 mm to the right of the midline is lung.
	c := v.Dims[2] / 2
	p, _ := v.Affine.Inverse()
	ijk := p.Apply([3]float64{70, 0, v.Affine.Apply([3]float64{0, 0, float64(c)})[2]})
	if hu := v.At(int(ijk[0]+0.5), int(ijk[1]+0.5), c); hu > -300 {
		t.Errorf("%v HU at the right lung's centre", hu)
	}
}
