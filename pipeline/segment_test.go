package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// TestExpandInputsNIfTINames: a batch folder's cases are its NIfTI files in
// any letter case; x.nii.gz.bak, masks and probability maps are not cases.
func TestExpandInputsNIfTINames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.Nii.gz", "b.NII", "x.nii.gz.bak", "a_mask.nii.gz", "b_probs.nii.gz", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases, batch, err := expandInputs([]string{dir}, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.name)
	}
	if !batch || strings.Join(names, ",") != "a,b" {
		t.Errorf("cases %v (batch %v), want a,b in a batch", names, batch)
	}
	// One file given with an upper-case name: its mask's stem drops the
	// extension whatever its case.
	cases, batch, err = expandInputs([]string{filepath.Join(dir, "b.NII")}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := placeOutputs(cases, batch, filepath.Join(dir, "out", "B_SEG.Nii.gz")); err != nil {
		t.Fatal(err)
	}
	if c := cases[0]; c.name != "b" || c.stem != filepath.Join(dir, "out", "B_SEG") {
		t.Errorf("case %+v", c)
	}
}

// TestSegmentBatchResults: SegmentBatch lists every case as a
// metrics.CaseResult, a corrupt one with its error and the others with
// their mask and predicted volume, and its error names the failed case.
func TestSegmentBatchResults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cases")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	infertest.WriteRandomCT(t, filepath.Join(dir, "a.nii.gz"), volume.Dims{40, 30, 12}, 1)
	if err := os.WriteFile(filepath.Join(dir, "b.nii.gz"), []byte("not a NIfTI file"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{24, 48, 48}
	onnxPath := infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, -500.5)
	out := filepath.Join(t.TempDir(), "masks")
	res, err := SegmentBatch(context.Background(), SegmentOptions{Inputs: []string{dir}, Out: out, Model: onnxPath, Threads: 1})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 case(s) failed: b") {
		t.Errorf("err = %v, want case b named", err)
	}
	if res == nil || len(res.Cases) != 2 || res.Failed != 1 {
		t.Fatalf("result %+v", res)
	}
	a, b := res.Cases[0], res.Cases[1]
	if a.Case != "a" || a.Error != "" || a.Pred != filepath.Join(out, "a_mask.nii.gz") || !a.PredML.Defined() || *a.PredVoxels <= 0 || a.Dice.Defined() {
		t.Errorf("case a: %+v", a)
	}
	if b.Case != "b" || !strings.Contains(b.Error, "b.nii.gz") || b.Pred != "" {
		t.Errorf("case b: %+v", b)
	}
	mask, _, err := nifti.ReadLabel(a.Pred)
	if err != nil {
		t.Fatal(err)
	}
	fg := 0
	for _, l := range mask.Data {
		fg += int(l)
	}
	if fg != *a.PredVoxels {
		t.Errorf("%d foreground voxels in the mask, result says %d", fg, *a.PredVoxels)
	}

	// A cancelled context stops before the first case.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = SegmentBatch(ctx, SegmentOptions{Inputs: []string{dir}, Out: out, Model: onnxPath, Threads: 1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
