package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// fixtureDir holds real MosMedData masks with prediction variants and
// metrics_ref.py's figures for them (shared/README.md).
var fixtureDir = testutil.SharedPath("fixtures", "metrics")

// refFigures is one entry of expected.json at one tolerance.
type refFigures struct {
	TruthVoxels int      `json:"truth_voxels"`
	PredVoxels  int      `json:"pred_voxels"`
	TruthML     float64  `json:"truth_ml"`
	PredML      float64  `json:"pred_ml"`
	Dice        float64  `json:"dice"`
	IoU         float64  `json:"iou"`
	HD95        *float64 `json:"hd95"`
	HD          *float64 `json:"hd"`
	NSD         float64  `json:"nsd"`
}

type refCase struct {
	Truth string     `json:"truth"`
	Tau1  refFigures `json:"tau_1mm"`
	Tau3  refFigures `json:"tau_3mm"`
}

// readExpected reads expected.json; a missing fixture fails the test.
func readExpected(t testing.TB) map[string]refCase {
	b, err := os.ReadFile(filepath.Join(fixtureDir, "expected.json"))
	if err != nil {
		t.Fatalf("metrics fixture missing: %v", err)
	}
	var exp map[string]refCase
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	if len(exp) == 0 {
		t.Fatal("expected.json lists no cases")
	}
	return exp
}

func TestFixturesAgainstReference(t *testing.T) {
	exp := readExpected(t)
	names := make([]string, 0, len(exp))
	for n := range exp {
		names = append(names, n)
	}
	sort.Strings(names)
	truths := map[string]*volume.Label{} // each truth is read once
	for _, pred := range names {
		e := exp[pred]
		t.Run(pred, func(t *testing.T) {
			truth := truths[e.Truth]
			if truth == nil {
				var err error
				if truth, _, err = nifti.ReadLabel(filepath.Join(fixtureDir, e.Truth)); err != nil {
					t.Fatal(err)
				}
				truths[e.Truth] = truth
			}
			p, _, err := nifti.ReadLabel(filepath.Join(fixtureDir, pred))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Compare(truth, p, Options{Taus: []float64{1, 3}})
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range []refFigures{e.Tau1, e.Tau3} {
				checkInt(t, "truth voxels", r.TruthVoxels, f.TruthVoxels)
				checkInt(t, "pred voxels", r.PredVoxels, f.PredVoxels)
				checkAbs(t, "truth_ml", r.TruthML, f.TruthML, 1e-9)
				checkAbs(t, "pred_ml", r.PredML, f.PredML, 1e-9)
				checkAbs(t, "dice", float64(r.Dice), f.Dice, 1e-9)
				checkAbs(t, "iou", float64(r.IoU), f.IoU, 1e-9)
				checkNullable(t, "hd95", r.HD95, f.HD95)
				checkNullable(t, "hd", r.HD, f.HD)
				checkRel(t, "nsd at "+fmtTau(r.Taus[i]), float64(r.NSD[i]), f.NSD, 1e-6)
			}
		})
	}
}

// checkNullable compares a distance with a reference that may be null.
func checkNullable(t *testing.T, what string, got Value, want *float64) {
	t.Helper()
	if want == nil {
		if got.Defined() {
			t.Errorf("%s = %v, want null", what, got)
		}
		return
	}
	checkRel(t, what, float64(got), *want, 1e-6)
}
