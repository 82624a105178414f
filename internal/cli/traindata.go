package cli

// This file is the training command's interim data loader: it reads the
// manifest's train and val cases, resizes them the paper's way and holds
// them in memory. The data package's loader (caching, augmentation,
// prefetching) replaces it by implementing train.Source.

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/covseg/covseg/train"
	"github.com/covseg/covseg/volio"
	"github.com/covseg/covseg/volume"
)

// trainEntry is one labelled case of a manifest.
type trainEntry struct {
	name, image, mask, split string
}

// maxManifestCases bounds a manifest before anything is read for it.
const maxManifestCases = 1 << 20

// readTrainManifest reads the image, mask and split columns of a manifest
// CSV (header row; lines starting with # are comments; other columns are
// ignored here). Relative paths are resolved against the manifest's folder.
func readTrainManifest(path string) ([]trainEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: manifest: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("train: manifest %s: header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"image", "mask", "split"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("train: manifest %s: no %q column (header %v)", path, need, header)
		}
	}
	base := filepath.Dir(path)
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	var cases []trainEntry
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("train: manifest %s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		get := func(name string) string {
			if i := col[name]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		c := trainEntry{image: resolve(get("image")), mask: resolve(get("mask")), split: strings.ToLower(get("split"))}
		if c.split == "validation" {
			c.split = "val"
		}
		if c.image == "" {
			return nil, fmt.Errorf("train: manifest %s:%d: no image", path, line)
		}
		c.name = get("case")
		if c.name == "" {
			c.name = filepath.Base(c.image)
		}
		if len(cases) == maxManifestCases {
			return nil, fmt.Errorf("train: manifest %s: more than %d cases", path, maxManifestCases)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// loadTrainData reads the manifest's train and val cases into memory,
// resized to the config's grid: the training source shuffles per epoch
// with the config's seed, the validation source keeps manifest order.
func loadTrainData(cfg train.Config, log io.Writer) (trainSrc, valSrc train.Source, err error) {
	if cfg.Data.Manifest == "" {
		return nil, nil, errors.New("train: data.manifest is not set in the config")
	}
	entries, err := readTrainManifest(cfg.Data.Manifest)
	if err != nil {
		return nil, nil, err
	}
	var tr, val []train.Case
	for _, e := range entries {
		if e.split != "train" && e.split != "val" {
			continue
		}
		if e.mask == "" {
			return nil, nil, fmt.Errorf("train: manifest %s: %s case %s has no mask", cfg.Data.Manifest, e.split, e.name)
		}
		c, err := prepareCase(e, cfg.Data)
		if err != nil {
			return nil, nil, err
		}
		if e.split == "train" {
			tr = append(tr, c)
		} else {
			val = append(val, c)
		}
	}
	if len(tr) == 0 {
		return nil, nil, fmt.Errorf("train: manifest %s has no train cases", cfg.Data.Manifest)
	}
	fmt.Fprintf(log, "data: %d training and %d validation cases from %s, resized to %dx%dx%d\n",
		len(tr), len(val), cfg.Data.Manifest, cfg.Data.Grid[0], cfg.Data.Grid[1], cfg.Data.Grid[2])
	trs, err := train.NewMemorySource(tr, cfg.Data.BatchSize, true, cfg.Seed)
	if err != nil {
		return nil, nil, err
	}
	vs, err := train.NewMemorySource(val, 1, false, 0)
	if err != nil {
		return nil, nil, err
	}
	return trs, vs, nil
}

// prepareCase reads a case and brings it to the network's input: canonical
// (RAS+) orientation, the HU window mapped onto 0..1, the whole volume
// resized to the grid (image trilinear, mask nearest), D×H×W = k×j×i.
func prepareCase(e trainEntry, d train.DataConfig) (train.Case, error) {
	img, _, err := volio.Read(e.image, volio.Options{})
	if err != nil {
		return train.Case{}, fmt.Errorf("train: case %s: %w", e.name, err)
	}
	mask, _, err := volio.ReadLabel(e.mask)
	if err != nil {
		return train.Case{}, fmt.Errorf("train: case %s: %w", e.name, err)
	}
	if mask.Dims != img.Dims {
		return train.Case{}, fmt.Errorf("train: case %s: mask %s is %v, image %s is %v", e.name, e.mask, mask.Dims, e.image, img.Dims)
	}
	for i, v := range mask.Data {
		if v > 0 {
			mask.Data[i] = 1
		}
	}
	grid := volume.Dims{d.Grid[2], d.Grid[1], d.Grid[0]}
	v := img.Canonical()
	lo, hi := float32(d.Window[0]), float32(d.Window[1])
	v.ReplaceNonFinite(lo)
	if err := v.Clip(lo, hi); err != nil {
		return train.Case{}, fmt.Errorf("train: case %s: %w", e.name, err)
	}
	if err := v.Window(lo, hi); err != nil {
		return train.Case{}, fmt.Errorf("train: case %s: %w", e.name, err)
	}
	if v, err = v.ResizeTo(grid, volume.Linear); err != nil {
		return train.Case{}, fmt.Errorf("train: case %s: %w", e.name, err)
	}
	m, err := mask.Canonical().ResizeTo(grid)
	if err != nil {
		return train.Case{}, fmt.Errorf("train: case %s: %w", e.name, err)
	}
	return train.Case{Name: e.name, Grid: d.Grid, Image: v.Data, Mask: m.Data}, nil
}
