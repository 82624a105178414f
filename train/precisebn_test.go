package train

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/covseg/covseg/model"
)

// TestPreciseBN checks the pooling: the statistics from several single-case
// batches are the law-of-total-variance pool of what each batch alone
// leaves, and for the first BatchNorm (stem.1, whose input no other
// BatchNorm has normalised) they agree with one training-mode pass over the
// cases stacked into one batch, up to the unbiased estimates' n/(n−1).
func TestPreciseBN(t *testing.T) {
	_, e := tinyModel(t, 1)
	cases := tinyCases(4, 3)
	var singles []Batch
	var stacked Batch
	for _, c := range cases {
		b := Batch{Shape: [4]int{1, c.Grid[0], c.Grid[1], c.Grid[2]}, Image: c.Image, Mask: c.Mask}
		singles = append(singles, b)
		stacked.Image = append(stacked.Image, c.Image...)
		stacked.Mask = append(stacked.Mask, c.Mask...)
	}
	stacked.Shape = [4]int{len(cases), tinyGrid[0], tinyGrid[1], tinyGrid[2]}

	before := runningStats(t, e)
	var each []map[string][]float32
	for _, b := range singles {
		if err := e.PreciseBN([]Batch{b}); err != nil {
			t.Fatal(err)
		}
		each = append(each, runningStats(t, e))
	}
	if err := e.PreciseBN(singles); err != nil {
		t.Fatal(err)
	}
	pooled := runningStats(t, e)
	if err := e.PreciseBN([]Batch{stacked}); err != nil {
		t.Fatal(err)
	}
	whole := runningStats(t, e)

	changed := 0
	k := float64(len(each))
	for name, p := range pooled {
		if !slices.Equal(p, before[name]) {
			changed++
		}
		if !strings.HasSuffix(name, ".running_mean") {
			continue
		}
		vn := strings.TrimSuffix(name, ".running_mean") + ".running_var"
		for c := range p {
			var sm, sv, sq float64
			for _, st := range each {
				m := float64(st[name][c])
				sm, sq, sv = sm+m, sq+m*m, sv+float64(st[vn][c])
			}
			wantMean, wantVar := sm/k, sv/k+sq/k-(sm/k)*(sm/k)
			if got := float64(p[c]); math.Abs(got-wantMean) > 1e-5*(1+math.Abs(wantMean)) {
				t.Errorf("%s[%d] = %g, want %g", name, c, got, wantMean)
			}
			if got := float64(pooled[vn][c]); relErr(got, wantVar) > 1e-4 {
				t.Errorf("%s[%d] = %g, want %g", vn, c, got, wantVar)
			}
		}
	}
	for _, name := range []string{"stem.1.running_mean", "stem.1.running_var"} {
		for c := range pooled[name] {
			if a, b := float64(pooled[name][c]), float64(whole[name][c]); math.Abs(a-b) > 2e-3*(1e-3+math.Abs(b)) {
				t.Errorf("%s[%d]: pooled %g, one stacked batch %g", name, c, a, b)
			}
		}
	}
	if changed < len(pooled)/2 {
		t.Errorf("only %d of %d running statistics changed", changed, len(pooled))
	}

	// Inference still runs, and a bad batch leaves the statistics alone.
	if _, err := e.Evaluate(singles[0]); err != nil {
		t.Fatal(err)
	}
	bad := singles[0]
	bad.Mask = bad.Mask[:1]
	if err := e.PreciseBN([]Batch{singles[1], bad}); err == nil {
		t.Fatal("a batch with a short mask was accepted")
	}
	for name, v := range runningStats(t, e) {
		if !slices.Equal(v, whole[name]) {
			t.Errorf("%s changed by a refused recalibration", name)
		}
	}
	if err := e.PreciseBN(nil); err == nil {
		t.Error("no batches accepted")
	}
}

func runningStats(t *testing.T, e *Engine) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, n := range runningStatNames(e.ctx) {
		v, _, err := model.Float32Value(e.ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = v
	}
	if len(out) == 0 {
		t.Fatal("no running statistics")
	}
	return out
}
