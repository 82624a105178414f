package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// evalJSON mirrors covseg evaluate --json for the tests: the keys of
// metrics.CaseResult, with NSD at the default tolerance of 1 mm and at 3.
type evalJSON struct {
	Taus  []float64 `json:"taus_mm"`
	Cases []struct {
		Case, Pred, Truth, Error string
		Dice, IoU, Sensitivity   *float64
		Precision                *float64
		HD95                     *float64 `json:"hd95_mm"`
		HD                       *float64 `json:"hd_mm"`
		NSD                      *float64 `json:"nsd_1mm"`
		NSD3                     *float64 `json:"nsd_3mm"`
		TruthML                  *float64 `json:"truth_ml"`
		PredML                   *float64 `json:"pred_ml"`
		DiffML                   *float64 `json:"volume_diff_ml"`
		TruthVoxels              *int     `json:"truth_voxels"`
		PredVoxels               *int     `json:"pred_voxels"`
	} `json:"cases"`
	Summary struct {
		Cases, Evaluated, Failed int
		EmptyTruths              int      `json:"empty_truths"`
		PooledDice               *float64 `json:"pooled_dice"`
		Dice                     struct {
			N                int
			Mean, SD, Median *float64
			Min, Max         *float64
		}
		NSD3 struct{ N int } `json:"nsd_3mm"`
	} `json:"summary"`
}

func runJSON(t *testing.T, args ...string) (int, evalJSON, string) {
	t.Helper()
	out, errs, code := run(t, append(args, "--json", "-q")...)
	var j evalJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("stdout is not JSON (%v): %q\nstderr: %s", err, out, errs)
	}
	return code, j, errs
}

// box returns a label map of dims d, spacing sp, with value v in [lo, hi).
func box(t *testing.T, d volume.Dims, sp [3]float64, lo, hi [3]int, v uint8) *volume.Label {
	t.Helper()
	l, err := volume.NewLabel(d, volume.Diag(sp, [3]float64{-20, 10, 5}))
	if err != nil {
		t.Fatal(err)
	}
	for k := lo[2]; k < hi[2]; k++ {
		for j := lo[1]; j < hi[1]; j++ {
			for i := lo[0]; i < hi[0]; i++ {
				l.Data[d.Index(i, j, k)] = v
			}
		}
	}
	return l
}

func writeLabel(t *testing.T, path string, l *volume.Label) {
	t.Helper()
	if err := nifti.WriteLabel(path, l); err != nil {
		t.Fatal(err)
	}
}

func ptr(f *float64) string {
	if f == nil {
		return "null"
	}
	return fmt.Sprint(*f)
}

// The real MosMedData fixtures through the whole command, via a manifest.
func TestEvaluateFixturesThroughManifest(t *testing.T) {
	dir, err := filepath.Abs(testutil.Shared(t, "fixtures", "metrics"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatalf("metrics fixture missing: %v", err)
	}
	var exp map[string]struct {
		Truth string
		Tau1  struct {
			TruthML float64 `json:"truth_ml"`
			PredML  float64 `json:"pred_ml"`
			Dice    float64
			IoU     float64
			HD95    *float64
			HD      *float64
			NSD     float64
		} `json:"tau_1mm"`
		Tau3 struct{ NSD float64 } `json:"tau_3mm"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	var m strings.Builder
	m.WriteString("case,truth,pred\n") // columns in another order than the default
	n := 0
	for pred, e := range exp {
		if strings.HasPrefix(pred, "study_0257") { // one study keeps the test quick
			fmt.Fprintf(&m, "%s,%s,%s\n", pred, filepath.Join(dir, e.Truth), filepath.Join(dir, pred))
			n++
		}
	}
	if n == 0 {
		t.Fatal("no study_0257 pairs in expected.json")
	}
	manifest := filepath.Join(t.TempDir(), "pairs.csv")
	if err := os.WriteFile(manifest, []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, j, errs := runJSON(t, "evaluate", "--manifest", manifest, "--tau", "1", "--tau", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if len(j.Cases) != n {
		t.Fatalf("%d cases, want %d", len(j.Cases), n)
	}
	for _, c := range j.Cases {
		e := exp[c.Case].Tau1
		near := func(what string, got *float64, want, tol float64, rel bool) {
			if rel {
				tol *= math.Abs(want)
			}
			if got == nil || math.Abs(*got-want) > tol {
				t.Errorf("%s %s = %s, want %.17g", c.Case, what, ptr(got), want)
			}
		}
		near("dice", c.Dice, e.Dice, 1e-9, false)
		near("iou", c.IoU, e.IoU, 1e-9, false)
		near("truth_ml", c.TruthML, e.TruthML, 1e-9, false)
		near("pred_ml", c.PredML, e.PredML, 1e-9, false)
		near("nsd", c.NSD, e.NSD, 1e-6, true)
		near("nsd at 3", c.NSD3, exp[c.Case].Tau3.NSD, 1e-6, true)
		for _, d := range []struct {
			name      string
			got, want *float64
		}{{"hd95", c.HD95, e.HD95}, {"hd", c.HD, e.HD}} {
			if d.want == nil {
				if d.got != nil {
					t.Errorf("%s %s = %v, want null", c.Case, d.name, *d.got)
				}
				continue
			}
			near(d.name, d.got, *d.want, 1e-6, true)
		}
	}
}

// A folder pairing with matched, unmatched, mismatched and unreadable
// cases: the good ones are evaluated, each bad one is reported, exit 1.
func TestEvaluateFoldersWithBadCases(t *testing.T) {
	root := t.TempDir()
	pd, td := filepath.Join(root, "pred"), filepath.Join(root, "truth")
	for _, d := range []string{pd, td} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := volume.Dims{12, 10, 6}
	sp := [3]float64{0.75, 0.5, 2}
	truthA := box(t, d, sp, [3]int{2, 2, 1}, [3]int{8, 7, 4}, 1)
	predA := box(t, d, sp, [3]int{3, 2, 1}, [3]int{9, 8, 4}, 1)
	writeLabel(t, filepath.Join(td, "case_a_mask.nii.gz"), truthA)
	writeLabel(t, filepath.Join(pd, "case_a.nii.gz"), predA)
	// Case b: identical masks, suffixes on both sides, uncompressed.
	writeLabel(t, filepath.Join(td, "case_b-SEG.nii"), truthA)
	writeLabel(t, filepath.Join(pd, "case_b_pred.nii"), truthA)
	// Case c: truth only; case d: prediction only.
	writeLabel(t, filepath.Join(td, "case_c_mask.nii.gz"), truthA)
	writeLabel(t, filepath.Join(pd, "case_d.nii.gz"), truthA)
	// Case e: the prediction is on a grid shifted by 2 mm.
	shifted := predA.Clone()
	shifted.Affine[0][3] += 2
	writeLabel(t, filepath.Join(td, "case_e.nii.gz"), truthA)
	writeLabel(t, filepath.Join(pd, "case_e.nii.gz"), shifted)
	// Case f: the prediction is not NIfTI.
	writeLabel(t, filepath.Join(td, "case_f.nii.gz"), truthA)
	if err := os.WriteFile(filepath.Join(pd, "case_f.nii.gz"), []byte("not a nifti file"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Other files are ignored.
	if err := os.WriteFile(filepath.Join(pd, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	csvPath, mdPath := filepath.Join(root, "out.csv"), filepath.Join(root, "out.md")
	code, j, _ := runJSON(t, "evaluate", "--pred", pd, "--truth", td, "--csv", csvPath, "--markdown", mdPath)
	if code == 0 {
		t.Error("exit 0 although cases failed")
	}
	want, err := metrics.Compare(truthA, predA, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	errs := map[string]string{
		"case_c": "no prediction in",
		"case_d": "no truth in",
		"case_e": "grids differ",
		"case_f": "case_f.nii.gz",
	}
	var names []string
	for _, c := range j.Cases {
		names = append(names, c.Case)
		if frag, bad := errs[c.Case]; bad {
			if !strings.Contains(c.Error, frag) || c.Dice != nil || c.TruthVoxels != nil {
				t.Errorf("%s: error %q (want it to contain %q), dice %s", c.Case, c.Error, frag, ptr(c.Dice))
			}
			continue
		}
		if c.Error != "" {
			t.Errorf("%s failed: %s", c.Case, c.Error)
		}
	}
	if got := strings.Join(names, " "); got != "case_a case_b case_c case_d case_e case_f" {
		t.Errorf("cases %q", got)
	}
	a, b := j.Cases[0], j.Cases[1]
	if a.Dice == nil || *a.Dice != float64(want.Dice) || *a.HD95 != float64(want.HD95) || *a.NSD != float64(want.NSD[0]) {
		t.Errorf("case_a dice %s hd95 %s nsd %s, library says %v %v %v", ptr(a.Dice), ptr(a.HD95), ptr(a.NSD), want.Dice, want.HD95, want.NSD[0])
	}
	if b.Dice == nil || *b.Dice != 1 || *b.HD95 != 0 || *b.DiffML != 0 {
		t.Errorf("case_b (identical): dice %s hd95 %s diff %s", ptr(b.Dice), ptr(b.HD95), ptr(b.DiffML))
	}
	if s := j.Summary; s.Cases != 6 || s.Evaluated != 2 || s.Failed != 4 || s.Dice.N != 2 {
		t.Errorf("summary %+v", s)
	}

	// CSV: header plus one row per case, empty cells for failed figures.
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 || rows[0][0] != "case" || rows[0][3] != "dice" || rows[3][3] != "" || !strings.Contains(rows[3][len(rows[3])-1], "no prediction") {
		t.Errorf("csv rows %q", rows)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{"| case | dice |", "| case_a |", "## Failed cases", "- case_d: no truth in", "| Dice |"} {
		if !strings.Contains(string(md), frag) {
			t.Errorf("markdown lacks %q:\n%s", frag, md)
		}
	}

	// The table names each failure and the exit status is still 1.
	out, _, code := run(t, "evaluate", "-q", "--pred", pd, "--truth", td)
	if code != 1 || !strings.Contains(out, "FAILED case_e: ") || !strings.Contains(out, "case_a") || !strings.Contains(out, "6 cases: 2 evaluated, 4 failed") {
		t.Errorf("exit %d, table:\n%s", code, out)
	}
}

// Non-binary masks are read as > 0, or as one class with --label.
func TestEvaluateNonBinaryAndLabel(t *testing.T) {
	dir := t.TempDir()
	d := volume.Dims{8, 8, 4}
	sp := [3]float64{1, 1, 2.5}
	truth := box(t, d, sp, [3]int{1, 1, 0}, [3]int{6, 6, 3}, 2)
	// A float prediction: 0.25 and 3 inside a box, -1 elsewhere in one row.
	pv := box(t, d, sp, [3]int{2, 1, 0}, [3]int{7, 6, 3}, 3).ToVolume()
	for i := 0; i < 8; i++ {
		pv.Data[d.Index(i, 0, 0)] = -1
	}
	pv.Data[d.Index(2, 1, 0)] = 0.25
	tp, pp := filepath.Join(dir, "t.nii.gz"), filepath.Join(dir, "p.nii.gz")
	writeLabel(t, tp, truth)
	if err := nifti.WriteVolume(pp, pv, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	code, j, errs := runJSON(t, "evaluate", "--pred", pp, "--truth", tp)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	c := j.Cases[0]
	if c.Case != "t" || *c.TruthVoxels != 75 || *c.PredVoxels != 75 || math.Abs(*c.Dice-60.0/75) > 1e-12 {
		t.Errorf("> 0 reading: case %q truth %d pred %d dice %s", c.Case, *c.TruthVoxels, *c.PredVoxels, ptr(c.Dice))
	}
	// --label 3: the truth holds no 3, the prediction 74 voxels of it.
	code, j, _ = runJSON(t, "evaluate", "--pred", pp, "--truth", tp, "--label", "3")
	c = j.Cases[0]
	if code != 0 || *c.TruthVoxels != 0 || *c.PredVoxels != 74 || *c.Dice != 0 || c.HD95 != nil || c.Sensitivity != nil || *c.Precision != 0 {
		t.Errorf("--label 3: exit %d, truth %d pred %d dice %s hd95 %s sens %s prec %s",
			code, *c.TruthVoxels, *c.PredVoxels, ptr(c.Dice), ptr(c.HD95), ptr(c.Sensitivity), ptr(c.Precision))
	}
	if j.Summary.EmptyTruths != 1 {
		t.Errorf("empty truths %d", j.Summary.EmptyTruths)
	}
}

// Empty masks follow metrics_ref.py's conventions, with null in JSON.
func TestEvaluateEmptyMasks(t *testing.T) {
	dir := t.TempDir()
	d := volume.Dims{6, 6, 3}
	sp := [3]float64{1, 1, 1}
	empty := box(t, d, sp, [3]int{}, [3]int{}, 1)
	some := box(t, d, sp, [3]int{1, 1, 1}, [3]int{3, 3, 2}, 1)
	writeLabel(t, filepath.Join(dir, "empty.nii"), empty)
	writeLabel(t, filepath.Join(dir, "some.nii"), some)
	m := "pred,truth,case\nempty.nii,empty.nii,both\nsome.nii,empty.nii,truth_empty\nempty.nii,some.nii,pred_empty\n"
	if err := os.WriteFile(filepath.Join(dir, "m.csv"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	code, j, errs := runJSON(t, "evaluate", "--manifest", filepath.Join(dir, "m.csv"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := map[string]string{}
	for _, c := range j.Cases {
		got[c.Case] = fmt.Sprintf("dice %s nsd %s hd95 %s hd %s", ptr(c.Dice), ptr(c.NSD), ptr(c.HD95), ptr(c.HD))
	}
	want := map[string]string{
		"both":        "dice 1 nsd 1 hd95 0 hd 0",
		"truth_empty": "dice 0 nsd 0 hd95 null hd null",
		"pred_empty":  "dice 0 nsd 0 hd95 null hd null",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s, want %s", k, got[k], w)
		}
	}
	if s := j.Summary; s.EmptyTruths != 2 || s.PooledDice == nil || *s.PooledDice != 0 || s.Dice.N != 3 || *s.Dice.Mean != 1.0/3 {
		t.Errorf("summary: empty truths %d pooled %s dice mean %s", s.EmptyTruths, ptr(s.PooledDice), ptr(s.Dice.Mean))
	}
}

func TestEvaluateUsageErrors(t *testing.T) {
	dir := t.TempDir()
	l := box(t, volume.Dims{4, 4, 4}, [3]float64{1, 1, 1}, [3]int{1, 1, 1}, [3]int{3, 3, 3}, 1)
	f := filepath.Join(dir, "a.nii.gz")
	writeLabel(t, f, l)
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("pred,truth\na.nii.gz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"evaluate"}, "need --pred and --truth"},
		{[]string{"evaluate", "--pred", f}, "need --pred and --truth"},
		{[]string{"evaluate", "--pred", f, "--truth", f, "--manifest", bad}, "not both"},
		{[]string{"evaluate", "--pred", dir, "--truth", f}, "both be files or both be folders"},
		{[]string{"evaluate", "--pred", dir, "--truth", filepath.Join(dir, "nope")}, "nope"},
		{[]string{"evaluate", "--pred", f, "--truth", f, "--tau", "-1"}, "--tau -1"},
		{[]string{"evaluate", "--pred", f, "--truth", f, "--label", "300"}, "--label 300"},
		{[]string{"evaluate", "--manifest", bad}, "bad.csv line 2"},
		{[]string{"evaluate", "--manifest", filepath.Join(dir, "missing.csv")}, "missing.csv"},
		{[]string{"evaluate", "--pred", f, "--truth", filepath.Join(dir, "gone.nii.gz")}, "gone.nii.gz"},
		{[]string{"evaluate", "--pred", t.TempDir(), "--truth", dir}, "holds no .nii"},
	} {
		out, errs, code := run(t, append(c.args, "-q")...)
		if code == 0 || !strings.Contains(out+errs, c.want) {
			t.Errorf("%q: exit %d, output %q %q; want an error containing %q", c.args, code, out, errs, c.want)
		}
	}
}

// --resample-to-truth puts a prediction on another grid onto the truth's
// (nearest, through world coordinates) instead of failing the case.
func TestEvaluateResampleToTruth(t *testing.T) {
	dir := t.TempDir()
	d := volume.Dims{12, 10, 6}
	sp := [3]float64{0.75, 0.5, 2}
	truth := box(t, d, sp, [3]int{2, 2, 1}, [3]int{8, 7, 4}, 1)
	// The same box on a grid moved by +2 voxels along i (1.5 mm), and on a
	// grid twice as fine in j covering the same field of view.
	moved := truth.Clone()
	moved.Affine[0][3] += 1.5
	fine := box(t, volume.Dims{12, 20, 6}, [3]float64{0.75, 0.25, 2}, [3]int{2, 4, 1}, [3]int{8, 14, 4}, 1)
	fine.Affine[1][3] = truth.Affine[1][3] - 0.125 // voxel edges of both grids line up
	// And the truth stored with its i axis reversed (the same world mask):
	// a flipped axis must not go unnoticed, nor be mistaken after resampling.
	flipped := truth.Clone()
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				flipped.Data[d.Index(i, j, k)] = truth.Data[d.Index(d[0]-1-i, j, k)]
			}
		}
	}
	for r := 0; r < 3; r++ {
		flipped.Affine[r][3] += float64(d[0]-1) * truth.Affine[r][0]
		flipped.Affine[r][0] = -truth.Affine[r][0]
	}
	writeLabel(t, filepath.Join(dir, "t.nii.gz"), truth)
	writeLabel(t, filepath.Join(dir, "moved.nii.gz"), moved)
	writeLabel(t, filepath.Join(dir, "fine.nii.gz"), fine)
	writeLabel(t, filepath.Join(dir, "flipped.nii.gz"), flipped)
	m := "pred,truth\nmoved.nii.gz,t.nii.gz\nfine.nii.gz,t.nii.gz\nflipped.nii.gz,t.nii.gz\n"
	if err := os.WriteFile(filepath.Join(dir, "m.csv"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	code, j, _ := runJSON(t, "evaluate", "--manifest", filepath.Join(dir, "m.csv"))
	if code == 0 || !strings.Contains(j.Cases[0].Error, "--resample-to-truth") || !strings.Contains(j.Cases[1].Error, "dims") ||
		!strings.Contains(j.Cases[2].Error, "affine") {
		t.Errorf("without the flag: exit %d, errors %q, %q, %q", code, j.Cases[0].Error, j.Cases[1].Error, j.Cases[2].Error)
	}
	code, j, errs := runJSON(t, "evaluate", "--manifest", filepath.Join(dir, "m.csv"), "--resample-to-truth")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, err := metrics.Compare(truth, box(t, d, sp, [3]int{4, 2, 1}, [3]int{10, 7, 4}, 1), metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c := j.Cases[0]; *c.Dice != float64(want.Dice) || *c.HD95 != float64(want.HD95) || *c.PredVoxels != want.PredVoxels {
		t.Errorf("moved: dice %s hd95 %s pred voxels %d, want %v %v %d", ptr(c.Dice), ptr(c.HD95), *c.PredVoxels, want.Dice, want.HD95, want.PredVoxels)
	}
	for _, c := range j.Cases[1:] {
		if *c.Dice != 1 || *c.HD != 0 {
			t.Errorf("%s: dice %s hd %s, want 1 and 0", c.Pred, ptr(c.Dice), ptr(c.HD))
		}
	}
}
