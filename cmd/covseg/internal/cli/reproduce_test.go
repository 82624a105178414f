package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/volume"
)

// tinyRecipeYAML is the paper's recipe shape (a frozen phase, then an
// unfrozen one) at a size that trains in seconds.
const tinyRecipeYAML = `seed: 2
data:
  preprocess:
    grid: 8x16x24
    schedule: []
model:
  width: 0.03125
phases:
  - {name: frozen, epochs: 1, lr: 0.01, freeze_encoder: true, train_frozen_bn: true}
  - {name: unfrozen, epochs: 1, lr: 0.001}
`

// standIns writes tiny synthetic stand-ins of the three public layouts.
func standIns(t *testing.T) (ricord, ann, cc, mm string) {
	t.Helper()
	dir := t.TempDir()
	cfg := phantom.Small(volume.Dims{24, 20, 8})
	si, err := phantom.WriteRICORD(filepath.Join(dir, "ricord"), 3, cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := phantom.WriteCoronacases(filepath.Join(dir, "coronacases"), 2, cfg, 12); err != nil {
		t.Fatal(err)
	}
	if _, err := phantom.WriteMosMed(filepath.Join(dir, "mosmed"), 2, 1, cfg, 13); err != nil {
		t.Fatal(err)
	}
	return si.DICOM, si.Annotations, filepath.Join(dir, "coronacases"), filepath.Join(dir, "mosmed")
}

// runReproduceJSON runs covseg reproduce --json and decodes its output.
func runReproduceJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Execute(append([]string{"reproduce", "--json"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("reproduce %v: exit %d\n%s", args, code, stderr.String())
	}
	var obj map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &obj); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}
	return obj
}

// TestReproduceStandIns runs the paper's protocol end to end on the
// stand-ins: RICORD through its MD.ai conversion and training with a tiny
// config, then the two test sets; the table has the three rows with the
// paper's figures, every case a mask on its CT's grid. A second run with
// --model reuses the conversion and skips training.
func TestReproduceStandIns(t *testing.T) {
	ricord, ann, cc, mm := standIns(t)
	out := filepath.Join(t.TempDir(), "out")
	cfgPath := filepath.Join(t.TempDir(), "tiny.yaml")
	if err := os.WriteFile(cfgPath, []byte(tinyRecipeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	data := []string{"--ricord", ricord, "--ricord-annotations", ann, "--coronacases", cc, "--mosmed", mm, "-o", out}
	obj := runReproduceJSON(t, append(data, "--config", cfgPath)...)

	type row struct {
		Dataset   string  `json:"dataset"`
		Cases     int     `json:"cases"`
		Failed    int     `json:"failed"`
		PaperDice float64 `json:"paper_dice"`
		Dice      struct {
			N    int      `json:"n"`
			Mean *float64 `json:"mean"`
		} `json:"dice"`
		PerCase []struct {
			Case, Image, Pred string
		} `json:"per_case"`
	}
	var res struct {
		Rows     []row `json:"rows"`
		Training struct {
			Phases    string `json:"phases"`
			BestEpoch int    `json:"best_epoch"`
		} `json:"training"`
		Model string `json:"model"`
	}
	b, _ := json.Marshal(obj)
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name  string
		cases int
		paper float64
	}{{"ricord", 1, 0.679}, {"coronacases", 2, 0.648}, {"mosmed", 2, 0.405}}
	if len(res.Rows) != len(want) {
		t.Fatalf("rows %+v", res.Rows)
	}
	for i, w := range want {
		r := res.Rows[i]
		if r.Dataset != w.name || r.Cases != w.cases || r.Failed != 0 || r.PaperDice != w.paper || r.Dice.N != w.cases || r.Dice.Mean == nil {
			t.Errorf("row %d: %+v, want %s with %d cases and paper Dice %v", i, r, w.name, w.cases, w.paper)
		}
		for _, c := range r.PerCase {
			if strings.Contains(c.Image, "radiopaedia") {
				t.Errorf("radiopaedia volume %s evaluated", c.Image)
			}
			checkMaskOn(t, c.Pred, c.Image)
		}
	}
	// The rows and their cases have metrics.CaseResult's keys.
	row0, _ := obj["rows"].([]any)[0].(map[string]any)
	case0, _ := row0["per_case"].([]any)[0].(map[string]any)
	for _, k := range []string{"nsd_1mm", "hd95_mm", "dice"} {
		if _, ok := row0[k]; !ok {
			t.Errorf("row lacks %q: %v", k, row0)
		}
	}
	for _, k := range []string{"case", "dataset", "split", "image", "pred", "truth", "dice", "hd95_mm", "nsd_1mm", "truth_ml", "pred_ml", "volume_diff_ml"} {
		if _, ok := case0[k]; !ok {
			t.Errorf("per_case entry lacks %q: %v", k, case0)
		}
	}
	if !strings.Contains(res.Training.Phases, "frozen 1 epochs") || res.Training.BestEpoch < 1 {
		t.Errorf("training %+v", res.Training)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| dataset | cases | paper mean Dice |", "| RICORD (tuning) | 1 | 0.679 |", "| Coronacases | 2 | 0.648 |", "| MosMedData | 2 | 0.405 |", "NSD (1 mm)"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("results.md lacks %q:\n%s", s, md)
		}
	}
	fh, err := os.Open(filepath.Join(out, "cases.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(fh).ReadAll()
	fh.Close()
	if err != nil || len(recs) != 1+5 {
		t.Errorf("cases.csv: %d records, %v", len(recs), err)
	}

	// With the trained model: no training, the conversion reused, the
	// same masks.
	var stdout, stderr bytes.Buffer
	if code := Execute(append([]string{"reproduce", "--model", res.Model}, data...), &stdout, &stderr); code != 0 {
		t.Fatalf("reproduce --model: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, s := range []string{"reusing the conversion", "training: skipped", "MosMedData", "0.405"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("reproduce --model output lacks %q:\n%s", s, stdout.String())
		}
	}
}

// TestReproduceUsage: missing or contradictory flags are refused before
// any work.
func TestReproduceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"reproduce", "--coronacases", "x"},                                       // training needs RICORD
		{"reproduce", "--ricord", "x"},                                            // without annotations
		{"reproduce", "--model", "m.ckpt"},                                        // no data set
		{"reproduce", "--model", "m.ckpt", "--config", "c.yaml", "--mosmed", "x"}, // config without training
		{"reproduce", "--ricord", "x", "--ricord-annotations", "y", "--val-fraction", "1"},
		{"reproduce", "--model", "m.ckpt", "--mosmed", "x", "--engine", "torch"},
	} {
		var out, errb bytes.Buffer
		if code := Execute(args, &out, &errb); code == 0 || !strings.Contains(errb.String(), "reproduce:") {
			t.Errorf("%v: exit %d, %s", args, code, errb.String())
		}
	}
}
