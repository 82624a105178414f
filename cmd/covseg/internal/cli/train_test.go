package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/train"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// writeCases writes n synthetic CT/mask NIfTI pairs (40x40x10 voxels of
// 1x1x2.5 mm: air-like background, a brighter "lesion" ellipsoid) and a
// manifest naming them, the last case as val. It returns the manifest path.
func writeCases(t *testing.T, dir string, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(4, 4))
	d := volume.Dims{40, 40, 10}
	aff := volume.Diag([3]float64{1, 1, 2.5}, [3]float64{-20, -20, 0})
	var lines []string
	for c := range n {
		img := &volume.Volume{Dims: d, Data: make([]float32, d.Len()), Affine: aff}
		mask := &volume.Label{Dims: d, Data: make([]uint8, d.Len()), Affine: aff}
		ci, cj, ck := 10+rng.Float64()*20, 10+rng.Float64()*20, 3+rng.Float64()*4
		for k := range d[2] {
			for j := range d[1] {
				for i := range d[0] {
					idx := (k*d[1]+j)*d[0] + i
					r := math.Pow((float64(i)-ci)/8, 2) + math.Pow((float64(j)-cj)/8, 2) + math.Pow((float64(k)-ck)/2, 2)
					img.Data[idx] = float32(-800 + 40*rng.NormFloat64())
					if r <= 1 {
						img.Data[idx] += 500
						mask.Data[idx] = 1
					}
				}
			}
		}
		ip, mp := fmt.Sprintf("img%d.nii.gz", c), fmt.Sprintf("mask%d.nii.gz", c)
		if err := nifti.WriteVolume(filepath.Join(dir, ip), img, nifti.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := nifti.WriteLabel(filepath.Join(dir, mp), mask); err != nil {
			t.Fatal(err)
		}
		split := "train"
		if c == n-1 {
			split = "val"
		}
		lines = append(lines, fmt.Sprintf("%s,%s,%s,synthetic", ip, mp, split))
	}
	path := filepath.Join(dir, "manifest.csv")
	body := "image,mask,split,dataset\n# synthetic cases\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tinyTrainYAML is a config for a tiny network on 8x32x32 inputs, one epoch
// per phase; the manifest path is relative to the config file.
const tinyTrainYAML = `seed: 1
data:
  manifest: manifest.csv
  preprocess: {grid: 8x32x32}
model:
  width: 0.03125
phases:
  - {name: frozen, epochs: 1, lr: 0.01, freeze_encoder: true, train_frozen_bn: true}
  - {name: unfrozen, epochs: 1, lr: 0.001}
`

// TestTrainCommand trains on a synthetic manifest through the command, then
// resumes the finished run.
func TestTrainCommand(t *testing.T) {
	data := t.TempDir()
	writeCases(t, data, 4)
	cfgPath := filepath.Join(data, "train.yaml")
	if err := os.WriteFile(cfgPath, []byte(tinyTrainYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(t.TempDir(), "run")
	out, errs, code := run(t, "train", "--config", cfgPath, "-o", runDir)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"data: 3 training and 1 validation cases", "resize 8x32x32", "backend covcpu", "epoch 2/2 (unfrozen 1): train loss", "val Dice", "finished 2 epochs"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	saved, err := train.ReadConfig(filepath.Join(runDir, train.FileConfig))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Data.Manifest != filepath.Join(data, "manifest.csv") || saved.Model.Width != 0.03125 {
		t.Errorf("saved config: manifest %q width %v (the manifest path should be absolute)", saved.Data.Manifest, saved.Model.Width)
	}
	for _, f := range []string{train.FileLast, train.FileBest, train.FileMetricsCSV, train.FileCurves} {
		if _, err := os.Stat(filepath.Join(runDir, f)); err != nil {
			t.Error(err)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(runDir, "cache", "*")); len(files) < 4 {
		t.Errorf("the run folder's cache holds %d files, want the 4 preprocessed cases", len(files))
	}
	man, err := model.ReadManifest(filepath.Join(runDir, train.FileBest))
	if err != nil {
		t.Fatal(err)
	}
	if p := man.Config.Preprocess; p.Grid != [3]int{8, 32, 32} || p.Orientation != "RAS" || p.WindowLow != -1024 || p.WindowHigh != 600 || p.Mode != model.ModeResize {
		t.Errorf("best.ckpt records preprocessing %+v", p)
	}
	out, errs, code = run(t, "train", "--resume", runDir)
	if code != 0 || !strings.Contains(out, "already finished") {
		t.Errorf("resume of a finished run: exit %d\n%s\n%s", code, out, errs)
	}
	if _, errs, code = run(t, "train", "--resume", runDir, "--config", cfgPath); code == 0 || !strings.Contains(errs, "leave out --config") {
		t.Errorf("--resume with --config: exit %d: %s", code, errs)
	}
}

// TestTrainInterrupted: a cancelled context (what SIGINT does) stops the
// command with pipeline.ErrInterrupted after saving last.ckpt.
func TestTrainInterrupted(t *testing.T) {
	data := t.TempDir()
	writeCases(t, data, 3)
	cfgPath := filepath.Join(data, "train.yaml")
	if err := os.WriteFile(cfgPath, []byte(tinyTrainYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out strings.Builder
	err := runTrain(ctx, trainArgs{config: cfgPath, out: runDir}, &out, io.Discard)
	if !errors.Is(err, pipeline.ErrInterrupted) {
		t.Fatalf("error %v, want pipeline.ErrInterrupted\n%s", err, out.String())
	}
	if _, _, st, err := train.ReadCheckpoint(filepath.Join(runDir, train.FileLast)); err != nil || st.Step != 0 {
		t.Errorf("last.ckpt after the interruption: %+v %v", st, err)
	}
}

// TestTrainPrintConfig prints the defaults, and a config's resolved values.
func TestTrainPrintConfig(t *testing.T) {
	out, errs, code := run(t, "train", "--print-config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	c, err := train.ParseConfig([]byte(out))
	if err != nil || c.Phases[1].Epochs != 50 || c.Optimizer.Beta2 != 0.99 {
		t.Errorf("printed defaults: %v\n%s", err, out)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("optimizer: {accumulate: 8}\n"), 0o644)
	out, _, _ = run(t, "train", "--config", path, "--print-config")
	if !strings.Contains(out, "accumulate: 8") || !strings.Contains(out, "beta2: 0.99") {
		t.Errorf("resolved config:\n%s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("optimizer: {acumulate: 8}\n"), 0o644)
	if _, errs, code := run(t, "train", "--config", bad, "--print-config"); code == 0 || !strings.Contains(errs, bad) || !strings.Contains(errs, "acumulate") {
		t.Errorf("misspelt field: exit %d: %s", code, errs)
	}
	if _, errs, code := run(t, "train", "--config", path); code == 0 || !strings.Contains(errs, "-o RUNDIR") {
		t.Errorf("no run folder: exit %d: %s", code, errs)
	}
}

// TestTrainManifestErrors: manifest problems name the file.
func TestTrainManifestErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.csv")
	os.WriteFile(path, []byte("image,split\na.nii.gz,train\n"), 0o644)
	cfg := train.DefaultConfig()
	cfg.Data.Manifest = path
	if _, _, err := pipeline.LoadTrainData(cfg, dir, io.Discard); err == nil || !strings.Contains(err.Error(), "mask") || !strings.Contains(err.Error(), path) {
		t.Errorf("missing column: %v", err)
	}
	os.WriteFile(path, []byte("image,mask,split,dataset\nmissing.nii.gz,m.nii.gz,train,x\n"), 0o644)
	if _, _, err := pipeline.LoadTrainData(cfg, dir, io.Discard); err == nil || !strings.Contains(err.Error(), "missing.nii.gz") {
		t.Errorf("missing image: %v", err)
	}
	data := t.TempDir()
	writeCases(t, data, 2)
	cfg.Data.Manifest = filepath.Join(data, "manifest.csv")
	os.WriteFile(cfg.Data.Manifest, []byte("image,mask,split,dataset\nimg0.nii.gz,mask0.nii.gz,test,x\n"), 0o644)
	if _, _, err := pipeline.LoadTrainData(cfg, dir, io.Discard); err == nil || !strings.Contains(err.Error(), "no train cases") {
		t.Errorf("no training cases: %v", err)
	}
}

// TestBenchTrain runs the benchmark command at a tiny size and reads its
// JSON lines.
func TestBenchTrain(t *testing.T) {
	out, errs, code := run(t, "bench", "train", "--shape", "8x32x32", "--steps", "3", "--width", "0.03125")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var events []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		events = append(events, m)
	}
	if len(events) != 5 || events[0]["event"] != "start" || events[4]["event"] != "summary" {
		t.Fatalf("events %v", events)
	}
	s := events[4]
	if s["steps"] != 3.0 || !(s["step_median_s"].(float64) > 0) || s["peak_device_mb"] != nil || s["params"] != 94494.0 {
		t.Errorf("summary %v", s)
	}
	if _, errs, code := run(t, "bench", "train", "--shape", "8x32", "--steps", "3"); code == 0 || !strings.Contains(errs, "DxHxW") {
		t.Errorf("bad shape: exit %d: %s", code, errs)
	}
	if _, errs, code := run(t, "bench", "train", "--dtype", "f16"); code == 0 || !strings.Contains(errs, "f32 or bf16") {
		t.Errorf("bad dtype: exit %d: %s", code, errs)
	}
}

// TestInterruptibleSignal: the first SIGTERM cancels the training context
// (and says so) instead of killing the process.
func TestInterruptibleSignal(t *testing.T) {
	var msg strings.Builder
	ctx, stop := interruptible(context.Background(), &msg)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	if !strings.Contains(msg.String(), "saving and stopping after the current batch") {
		t.Errorf("message %q", msg.String())
	}
}
