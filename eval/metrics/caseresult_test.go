package metrics

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestCaseResultJSON: the unified keys, one nsd_<τ>mm per tolerance, null
// for undefined figures, and a round trip through JSON.
func TestCaseResultJSON(t *testing.T) {
	r := &Result{TruthVoxels: 10, PredVoxels: 8, TruthML: 1.5, PredML: 1.25, DiffML: -0.25,
		Dice: 0.8, IoU: 0.7, Sensitivity: 0.75, Precision: 0.9, HD95: 2.5, HD: Undefined(),
		Taus: []float64{1, 2.5}, NSD: []Value{0.6, 0.95}}
	c := NewCaseResult("study_0255", r, nil, nil)
	c.Pred, c.Truth = "p.nii.gz", "t.nii.gz"
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	want := map[string]any{"case": "study_0255", "pred": "p.nii.gz", "truth": "t.nii.gz", "dice": 0.8, "iou": 0.7,
		"sensitivity": 0.75, "precision": 0.9, "hd95_mm": 2.5, "hd_mm": nil, "nsd_1mm": 0.6, "nsd_2.5mm": 0.95,
		"truth_ml": 1.5, "pred_ml": 1.25, "volume_diff_ml": -0.25, "truth_voxels": 10.0, "pred_voxels": 8.0}
	for k, v := range want {
		if got, ok := obj[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if len(obj) != len(want) {
		t.Errorf("keys %v, want those of %v", obj, want)
	}
	var back CaseResult
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.NSDAt(2.5) != 0.95 || back.NSDAt(1) != 0.6 || back.Dice != 0.8 || back.HD.Defined() || *back.TruthVoxels != 10 {
		t.Errorf("read back %+v", back)
	}

	failed := NewCaseResult("bad", nil, errors.New("unreadable"), []float64{1})
	b, err = json.Marshal(failed)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, `"error":"unreadable"`) || !strings.Contains(s, `"nsd_1mm":null`) || !strings.Contains(s, `"dice":null`) {
		t.Errorf("failed case %s", s)
	}
}

// TestNSDKey names tolerances without trailing zeros.
func TestNSDKey(t *testing.T) {
	for tau, want := range map[float64]string{1: "nsd_1mm", 2.5: "nsd_2.5mm", 0: "nsd_0mm", 10: "nsd_10mm"} {
		if got := NSDKey(tau); got != want {
			t.Errorf("NSDKey(%g) = %q, want %q", tau, got, want)
		}
		if back, ok := tauOfKey(want); !ok || back != tau {
			t.Errorf("tauOfKey(%q) = %g, %v", want, back, ok)
		}
	}
	if _, err := AppendNSDKeys([]byte("{}"), []float64{1}, []any{Value(0.5)}); err != nil {
		t.Error(err)
	}
	if b, _ := AppendNSDKeys([]byte("{}"), []float64{1}, []any{Value(0.5)}); string(b) != `{"nsd_1mm":0.5}` {
		t.Errorf("AppendNSDKeys on {} = %s", b)
	}
}
