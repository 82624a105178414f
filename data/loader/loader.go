// Package loader feeds training: it prepares the next batches (image
// tensors [B, 1, D, H, W] float32 and masks [B, D, H, W] uint8) on other
// goroutines while the model trains, a bounded number ahead.
//
// The data a run sees depends only on the seed and the position: the order
// of the cases in an epoch is a permutation drawn from (seed, epoch), and
// each case's random patch and augmentation from (seed, epoch, place in the
// epoch). A run resumed at a Position therefore sees exactly the batches an
// uninterrupted run would have, whatever the number of workers.
package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"

	"github.com/covseg/covseg/data/augment"
	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/preprocess"
	"github.com/covseg/covseg/volume"
)

// Config controls a Loader.
type Config struct {
	BatchSize int
	// Prefetch is how many batches may be ready ahead of the consumer
	// (default 2); Workers how many are prepared at once (default 2).
	Prefetch int
	Workers  int
	// Shuffle draws a new order of the cases every epoch; otherwise they
	// come in manifest order (validation).
	Shuffle bool
	Seed    uint64
	// DropLast leaves out the last batch of an epoch when it would be
	// smaller than BatchSize.
	DropLast bool
	// Augment, when set, augments every case (training only).
	Augment *augment.Config
	// Preprocess is how cases become samples.
	Preprocess preprocess.Config
	// SamePatches, in preprocess.ModePatch, cuts the same patch of each
	// case every epoch (its seed leaves the epoch out): for validation, so
	// that epochs are compared on the same data and the best one is not
	// the one that drew the easiest patches.
	SamePatches bool
}

// Position is where a run is in its data: the next batch to deliver.
type Position struct {
	Epoch int `json:"epoch" yaml:"epoch"`
	Batch int `json:"batch" yaml:"batch"`
}

// Batch is one batch of training data.
type Batch struct {
	Epoch, Index int      // this is batch Index of Epoch
	Cases        []string // case names, in batch order
	// Shape is [B, 1, D, H, W]. Image holds B·D·H·W float32 in NCDHW
	// order, Mask B·D·H·W labels (1 = lesion) in NDHW order: voxel (i, j,
	// k) of case b is element ((b·D + k)·H + j)·W + i.
	Shape [5]int
	Image []float32
	Mask  []uint8
}

// Next returns the position after this batch (within its epoch; a
// position whose Batch equals BatchesPerEpoch is the epoch's end).
func (b *Batch) Next() Position { return Position{Epoch: b.Epoch, Batch: b.Index + 1} }

// Loader prepares batches of a list of cases.
type Loader struct {
	entries []dataset.Entry
	cache   *preprocess.Cache
	cfg     Config
}

// New returns a loader over entries, which must all have masks, loading
// them through cache.
func New(entries []dataset.Entry, cache *preprocess.Cache, cfg Config) (*Loader, error) {
	if cfg.BatchSize < 1 {
		return nil, fmt.Errorf("loader: batch size %d: want at least 1", cfg.BatchSize)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if err := cfg.Preprocess.Validate(); err != nil {
		return nil, err
	}
	if cfg.Augment != nil {
		if err := cfg.Augment.Validate(); err != nil {
			return nil, err
		}
	}
	if len(entries) == 0 {
		return nil, errors.New("loader: no cases")
	}
	if cfg.DropLast && len(entries) < cfg.BatchSize {
		return nil, fmt.Errorf("loader: %d cases make no full batch of %d", len(entries), cfg.BatchSize)
	}
	for _, e := range entries {
		if e.Mask == "" {
			return nil, fmt.Errorf("loader: case %s has no mask", e.Case)
		}
	}
	return &Loader{entries: append([]dataset.Entry(nil), entries...), cache: cache, cfg: cfg}, nil
}

// BatchesPerEpoch is the number of batches in an epoch.
func (l *Loader) BatchesPerEpoch() int {
	n, b := len(l.entries), l.cfg.BatchSize
	if l.cfg.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// Order returns the order of the cases (indices into the entries) in an
// epoch.
func (l *Loader) Order(epoch int) []int {
	p := make([]int, len(l.entries))
	for i := range p {
		p[i] = i
	}
	if !l.cfg.Shuffle {
		return p
	}
	// Fisher–Yates on PCG's raw output: math/rand's IntN and Perm may
	// change between Go releases, PCG's sequence may not.
	r := rand.NewPCG(l.cfg.Seed, mix(uint64(epoch)^0x5851f42d4c957f2d))
	for i := len(p) - 1; i > 0; i-- {
		j := int(r.Uint64() % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// itemSeed is the seed of the case at place n of an epoch.
func (l *Loader) itemSeed(epoch, n int) uint64 {
	return mix(l.cfg.Seed ^ mix(uint64(epoch)<<32|uint64(uint32(n))))
}

// mix is SplitMix64's finaliser.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Stream delivers the batches of one epoch in order.
type Stream struct {
	ctx    context.Context
	slots  chan chan result
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   bool
}

type result struct {
	b   *Batch
	err error
}

// Start begins preparing the batches of epoch p.Epoch from batch p.Batch
// on. Close the stream when done (also after an error or io.EOF); cancelling
// ctx stops the preparation too.
func (l *Loader) Start(ctx context.Context, p Position) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	s := &Stream{ctx: ctx, slots: make(chan chan result, l.cfg.Prefetch), cancel: cancel}
	order := l.Order(p.Epoch)
	type job struct {
		index int
		out   chan result
	}
	jobs := make(chan job)
	for range l.cfg.Workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for j := range jobs {
				b, err := l.batch(ctx, p.Epoch, j.index, order)
				j.out <- result{b, err} // buffered: never blocks
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(jobs)
		defer close(s.slots)
		for b := max(p.Batch, 0); b < l.BatchesPerEpoch(); b++ {
			out := make(chan result, 1)
			select {
			case s.slots <- out: // waits while Prefetch batches are pending
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{b, out}:
			case <-ctx.Done():
				out <- result{err: ctx.Err()}
				return
			}
		}
	}()
	return s
}

// Next returns the next batch, io.EOF after the epoch's last one, the
// context's error once it is cancelled, or the error that preparing the
// batch met (naming the case).
func (s *Stream) Next() (*Batch, error) {
	if s.done {
		return nil, io.EOF
	}
	slot, ok := <-s.slots
	if !ok {
		if err := s.ctx.Err(); err != nil {
			return nil, err
		}
		s.done = true
		return nil, io.EOF
	}
	r := <-slot
	return r.b, r.err
}

// Close stops the preparation and waits for the goroutines to end.
func (s *Stream) Close() {
	s.cancel()
	for slot := range s.slots {
		_ = slot // drain so the producer can finish
	}
	s.wg.Wait()
	s.done = true
}

// batch prepares batch index of an epoch.
func (l *Loader) batch(ctx context.Context, epoch, index int, order []int) (*Batch, error) {
	lo := index * l.cfg.BatchSize
	hi := min(lo+l.cfg.BatchSize, len(order))
	g := l.cfg.Preprocess.InputGrid(epoch)
	vox := g[0] * g[1] * g[2]
	b := &Batch{Epoch: epoch, Index: index, Shape: [5]int{hi - lo, 1, g[0], g[1], g[2]}}
	b.Image = make([]float32, (hi-lo)*vox)
	b.Mask = make([]uint8, (hi-lo)*vox)
	for n := lo; n < hi; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := l.entries[order[n]]
		img, mask, err := l.item(e, epoch, n)
		if err != nil {
			return nil, err
		}
		if got := preprocess.GridOf(img.Dims); got != g {
			return nil, fmt.Errorf("loader: case %s prepared as %s, the batch needs %s", e.Case, got, g)
		}
		copy(b.Image[(n-lo)*vox:], img.Data)
		copy(b.Mask[(n-lo)*vox:], mask.Data)
		b.Cases = append(b.Cases, e.Case)
	}
	return b, nil
}

// item prepares the case at place n of an epoch: the cached sample, its
// random patch (ModePatch) and its augmentation, all seeded by place.
func (l *Loader) item(e dataset.Entry, epoch, n int) (img *volume.Volume, mask *volume.Label, err error) {
	s, err := l.cache.Load(e, l.cfg.Preprocess, epoch)
	if err != nil {
		return nil, nil, err
	}
	seed := l.itemSeed(epoch, n)
	if l.cfg.Preprocess.Mode == preprocess.ModePatch {
		patchSeed := seed
		if l.cfg.SamePatches {
			patchSeed = l.itemSeed(0, n)
		}
		rng := rand.New(rand.NewPCG(patchSeed, 1))
		if s, err = preprocess.RandomPatch(s, l.cfg.Preprocess.Patch, l.cfg.Preprocess.LesionFraction, rng); err != nil {
			return nil, nil, err
		}
	}
	img, mask = s.Image, s.Mask
	if l.cfg.Augment != nil {
		if img, mask, err = l.cfg.Augment.Apply(img, mask, mix(seed^2)); err != nil {
			return nil, nil, fmt.Errorf("loader: case %s: %w", e.Case, err)
		}
	}
	return img, mask, nil
}
