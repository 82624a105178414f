package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
)

// TestBenchCommands runs both benchmarks on a narrow network and small
// inputs (without PyTorch): they must finish and report their figures.
func TestBenchCommands(t *testing.T) {
	out, stderr, code := run(t, "bench", "infer", "--width", "0.0625", "--shape", "4,16,16", "--runs", "1", "--torch", "")
	if code != 0 {
		t.Fatalf("bench infer: exit %d: %s", code, stderr)
	}
	for _, re := range []string{`GFLOP in the convolutions`, `median [0-9.]+ s of 1 runs`, `[0-9.]+ GFLOP/s`, `clock ≈ [0-9.]+ GHz`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("bench infer output lacks %q:\n%s", re, out)
		}
	}
	out, stderr, code = run(t, "bench", "segment", "--width", "0.0625", "--dims", "40,36,24", "--spacing", "6,3,3")
	if code != 0 {
		t.Fatalf("bench segment: exit %d: %s", code, stderr)
	}
	for _, mode := range []string{"resize:", "sliding:"} {
		if !strings.Contains(out, mode) || !strings.Contains(out, "preprocess") || !strings.Contains(out, "write") {
			t.Errorf("bench segment output lacks the %s line:\n%s", mode, out)
		}
	}
	if _, stderr, code := run(t, "bench", "infer", "--shape", "4,16"); code == 0 || !strings.Contains(stderr, "--shape") {
		t.Errorf("a bad --shape was accepted: %s", stderr)
	}
}

// TestSyntheticCT checks that the benchmark's CT holds air, lung, soft
// tissue and bone where a chest CT has them.
func TestSyntheticCT(t *testing.T) {
	v, err := syntheticCT(volume.Dims{128, 128, 40}, [3]float64{2.8, 2.8, 5}, 1)
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
