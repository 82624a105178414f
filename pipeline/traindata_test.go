package pipeline

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/covseg/covseg/train"
)

// TestLoaderResumeExact: training fed by the loader (cached preprocessing,
// augmentation, two prefetching workers), interrupted inside an epoch and
// resumed, trains exactly the steps of an uninterrupted run: the loader
// meets train.Source's contract.
func TestLoaderResumeExact(t *testing.T) {
	c := tinyDemoConfig()
	c.Train, c.Val, c.Test = 3, 1, 0
	data, err := writeDemoPhantoms(t.TempDir(), c, 4, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := train.ParseConfig([]byte(tinyTrainYAML))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data.Manifest = data.manifest
	cfg.Data.Cache = filepath.Join(t.TempDir(), "cache")
	cfg.Data.Workers = 2
	cfg.Data.Augment.Noise.P = 1 // every case drawn differently per epoch and place
	backend, err := train.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	runOnce := func(dir string, resume bool, stopAt int64) []train.StepRecord {
		tr, val, err := LoadTrainData(cfg, dir, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var steps []train.StepRecord
		_, err = train.Run(ctx, train.Options{Config: cfg, Dir: dir, Resume: resume, Backend: backend, Train: tr, Val: val,
			OnStep: func(r train.StepRecord) {
				steps = append(steps, r)
				if r.Step == stopAt {
					cancel()
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		return steps
	}
	full := runOnce(filepath.Join(t.TempDir(), "a"), false, 0)
	dir := filepath.Join(t.TempDir(), "b")
	resumed := slices.Concat(runOnce(dir, false, 2), runOnce(dir, true, 0))
	if len(full) != 6 || !slices.Equal(full, resumed) {
		t.Errorf("uninterrupted run\n%+v\nresumed run\n%+v", full, resumed)
	}
}

// tinyTrainYAML is a config for a tiny network on 8x32x32 inputs, one epoch
// per phase.
const tinyTrainYAML = `seed: 1
data:
  preprocess: {grid: 8x32x32}
model:
  width: 0.03125
phases:
  - {name: frozen, epochs: 1, lr: 0.01, freeze_encoder: true, train_frozen_bn: true}
  - {name: unfrozen, epochs: 1, lr: 0.001}
`
