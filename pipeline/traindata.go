package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/loader"
	"github.com/covseg/covseg/data/preprocess"
	"github.com/covseg/covseg/train"
)

// LoadTrainData opens the manifest's train and val cases as loaders: the
// training one shuffled and augmented from the config's seed, the
// validation one in manifest order without augmentation. Both share one
// cache of preprocessed cases (data.cache, or runDir/cache).
func LoadTrainData(cfg train.Config, runDir string, log io.Writer) (trainSrc, valSrc train.Source, err error) {
	if cfg.Data.Manifest == "" {
		return nil, nil, fmt.Errorf("train: data.manifest is not set in the config")
	}
	m, err := dataset.ReadManifest(cfg.Data.Manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	tr, val := m.Select(dataset.Train), m.Select(dataset.Val)
	if len(tr) == 0 {
		return nil, nil, fmt.Errorf("train: manifest %s has no train cases", cfg.Data.Manifest)
	}
	dir := cfg.Data.Cache
	if dir == "" {
		dir = filepath.Join(runDir, "cache")
	}
	cache, err := preprocess.NewCache(dir, int64(cfg.Data.CacheMemoryMB)<<20)
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	d := cfg.Data
	aug := d.Augment
	trl, err := loader.New(tr, cache, loader.Config{
		BatchSize: d.BatchSize, Prefetch: d.Prefetch, Workers: d.Workers,
		Shuffle: true, Seed: cfg.Seed, Augment: &aug, Preprocess: d.Preprocess,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	trainSrc = loaderSource{trl}
	if len(val) > 0 {
		vl, err := loader.New(val, cache, loader.Config{
			BatchSize: 1, Prefetch: d.Prefetch, Workers: d.Workers, Seed: cfg.Seed, Preprocess: d.Preprocess,
			SamePatches: true,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
		valSrc = loaderSource{vl}
	}
	fmt.Fprintf(log, "data: %d training and %d validation cases from %s, %s %s, preprocessed cases cached in %s\n",
		len(tr), len(val), cfg.Data.Manifest, d.Preprocess.Mode, d.Preprocess.InputGrid(0), dir)
	return trainSrc, valSrc, nil
}

// loaderSource makes a loader a train.Source. The loader's batches depend
// only on its seed and their position, as train.Source requires.
type loaderSource struct{ l *loader.Loader }

func (s loaderSource) Len() int { return s.l.BatchesPerEpoch() }

func (s loaderSource) Epoch(ctx context.Context, epoch, skip int) (train.Batches, error) {
	return &loaderBatches{s.l.Start(ctx, loader.Position{Epoch: epoch, Batch: skip})}, nil
}

type loaderBatches struct{ s *loader.Stream }

func (b *loaderBatches) Next(ctx context.Context) (train.Batch, error) {
	lb, err := b.s.Next()
	if err != nil {
		return train.Batch{}, err
	}
	sh := lb.Shape // [B, 1, D, H, W]
	if sh[1] != 1 {
		return train.Batch{}, fmt.Errorf("train: loader batch of shape %v: want one channel", sh)
	}
	return train.Batch{Shape: [4]int{sh[0], sh[2], sh[3], sh[4]}, Image: lb.Image, Mask: lb.Mask, Cases: lb.Cases}, nil
}

func (b *loaderBatches) Close() error {
	b.s.Close()
	return nil
}

// ErrInterrupted ends a training run stopped by a signal after its
// checkpoint was saved.
var ErrInterrupted = errors.New("train: interrupted (last.ckpt saved; continue with --resume)")

// AbsConfigPaths makes the config's file paths absolute, relative paths
// being taken from the config file's folder, so that the run folder's
// config.yaml resumes from anywhere.
func AbsConfigPaths(cfg train.Config, configPath string) (train.Config, error) {
	base := "."
	if configPath != "" {
		base = filepath.Dir(configPath)
	}
	for _, p := range []*string{&cfg.Data.Manifest, &cfg.Data.Cache, &cfg.Model.Init, &cfg.Model.Pretrained} {
		if *p == "" || filepath.IsAbs(*p) {
			continue
		}
		abs, err := filepath.Abs(filepath.Join(base, *p))
		if err != nil {
			return cfg, fmt.Errorf("train: %w", err)
		}
		*p = abs
	}
	return cfg, nil
}

// PrintSplits prints how many cases each split of each data set of m
// holds.
func PrintSplits(w io.Writer, m *dataset.Manifest) {
	count := map[string]map[dataset.Split]int{}
	var names []string
	for _, e := range m.Entries {
		if count[e.Dataset] == nil {
			count[e.Dataset] = map[dataset.Split]int{}
			names = append(names, e.Dataset)
		}
		count[e.Dataset][e.Split]++
	}
	for _, n := range names {
		c := count[n]
		fmt.Fprintf(w, "%s: %d train, %d val, %d test", n, c[dataset.Train], c[dataset.Val], c[dataset.Test])
		if c[dataset.Unlabelled] > 0 {
			fmt.Fprintf(w, ", %d unlabelled", c[dataset.Unlabelled])
		}
		fmt.Fprintln(w)
	}
}
