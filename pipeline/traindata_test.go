package pipeline

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/covseg/covseg/data/preprocess"
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
	// A tiny network on 8x32x32 inputs, one epoch per phase.
	cfg := train.DefaultConfig()
	cfg.Seed = 1
	cfg.Data.Preprocess.Grid = preprocess.Grid{8, 32, 32}
	cfg.Model.Width = 1.0 / 32
	cfg.Phases = []train.Phase{
		{Name: "frozen", Epochs: 1, LR: 0.01, EncoderLRMult: 1, FreezeEncoder: true, TrainFrozenBN: true},
		{Name: "unfrozen", Epochs: 1, LR: 0.001, EncoderLRMult: 1},
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
