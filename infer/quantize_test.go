package infer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/model"
)

// TestQuantizeModelAgreement quantises the threshold model (its mask is
// "HU > −500.5", so the int8 input's steps move voxels near the threshold
// across it), calibrated on one real CT and checked on another: the
// agreement is reported per case, a threshold above it refuses to write
// the model, and --force writes an int8 model that segments.
func TestQuantizeModelAgreement(t *testing.T) {
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{16, 64, 64}
	dir := t.TempDir()
	src := infertest.ThresholdONNX(t, dir, "thr.onnx", cfg, thresholdHU)
	calib := []infer.NamedVolume{{Name: "totalseg", V: read(t, testutil.IO(t, "totalseg_chest_crop.nii.gz"))}}
	held := []infer.NamedVolume{{Name: "ibsi", V: read(t, testutil.IO(t, "ibsi_chest_ct/image.nii.gz"))}}
	dst := filepath.Join(dir, "thr.int8.onnx")

	rep, err := infer.QuantizeModel(src, dst, calib, held, infer.QuantizeOptions{MinDice: 0.999999, Segment: infer.DefaultOptions()})
	if rep == nil || len(rep.Cases) != 1 {
		t.Fatalf("report %+v, error %v", rep, err)
	}
	c := rep.Cases[0]
	t.Logf("%s: Dice %.5f, largest probability difference %.4f, %.2f ml vs %.2f ml", c.Name, c.Dice, c.MaxProbDiff, c.Float32ML, c.Int8ML)
	if !(c.Dice > 0.98 && c.Dice < 1) || c.Float32ML <= 0 || c.MaxProbDiff <= 0 || c.MaxProbDiff > 1 {
		t.Fatalf("implausible agreement %+v (the check needs 0.98 < Dice < 1)", c)
	}
	if err == nil || !strings.Contains(err.Error(), "below") || rep.Written {
		t.Errorf("agreement below the threshold: error %v, written %v", err, rep.Written)
	}
	if _, serr := os.Stat(dst); !os.IsNotExist(serr) {
		t.Errorf("refused model was written: %v", serr)
	}

	rep, err = infer.QuantizeModel(src, dst, calib, held, infer.QuantizeOptions{MinDice: 0.999999, Force: true, Segment: infer.DefaultOptions()})
	if err != nil || !rep.Written || rep.Activations != 1 {
		t.Fatalf("forced: %v, report %+v", err, rep)
	}
	meta, err := onnx.ReadMetadata(dst)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Preprocessing == nil {
		t.Error("the int8 model lost covseg's metadata")
	}
	e, err := infer.OpenORT(dst, infer.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Precision() != "int8" || !strings.Contains(e.Name(), "int8") {
		t.Errorf("engine %q precision %q, want int8", e.Name(), e.Precision())
	}
	if _, err := infer.QuantizeModel(dst, dst+".again", calib, held, infer.QuantizeOptions{}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("quantising an int8 model: %v", err)
	}
}
