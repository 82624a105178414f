package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/model"
)

func TestModelQuantizeCommand(t *testing.T) {
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{16, 64, 64}
	dir := t.TempDir()
	src := infertest.ThresholdONNX(t, dir, "thr.onnx", cfg, -500.5)
	ct, held := fixture(t, "totalseg_chest_crop.nii.gz"), fixture(t, "ibsi_chest_ct/image.nii.gz")
	out := filepath.Join(dir, "thr.int8.onnx")
	for _, bad := range [][]string{
		{"model", "quantize", src, "--calibrate", ct, "--held-out", held}, // no -o
		{"model", "quantize", src, "--held-out", held, "-o", out},         // no calibration
		{"model", "quantize", src, "--calibrate", ct, "-o", out},          // no held-out CTs
		{"model", "quantize", src, "--calibrate", ct, "--held-out", held, "-o", out, "--min-dice", "1.5"},
		{"model", "quantize", src, "--calibrate", ct, "--held-out", held, "-o", out, "--method", "entropy"},
	} {
		if _, stderr, code := run(t, bad...); code == 0 {
			t.Errorf("%v: exit 0\n%s", bad, stderr)
		}
	}
	stdout, stderr, code := run(t, "model", "quantize", src, "--calibrate", ct, "--held-out", held, "-o", out, "--json", "--min-dice", "0.9")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "int8 kernel") {
		t.Errorf("stderr does not name the CPU's int8 kernel:\n%s", stderr)
	}
	var rep infer.QuantizeReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !rep.Written || len(rep.Cases) != 1 || rep.Cases[0].Name != "image" || rep.Cases[0].Dice < 0.9 || rep.Method != "minmax" {
		t.Errorf("report %+v", rep)
	}
}
