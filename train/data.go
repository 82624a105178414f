package train

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Batch is a batch of preprocessed cases, all on one grid.
type Batch struct {
	// Shape is B, D, H, W.
	Shape [4]int
	// Image holds the intensities, [B, 1, D, H, W] row-major.
	Image []float32
	// Mask holds the class of every voxel, [B, D, H, W] row-major.
	Mask []uint8
	// Cases names the cases (optional; len B when set).
	Cases []string
}

// maxBatchVoxels bounds a batch so that a corrupt source is refused before
// tensors are allocated.
const maxBatchVoxels = 1 << 31

// Check reports a batch whose slices do not match its shape.
func (b Batch) Check() error {
	n := 1
	for _, d := range b.Shape {
		if d < 1 || n > maxBatchVoxels/d {
			return fmt.Errorf("train: batch shape %v: sizes must be positive and at most %d voxels", b.Shape, maxBatchVoxels)
		}
		n *= d
	}
	if len(b.Image) != n || len(b.Mask) != n {
		return fmt.Errorf("train: batch %v has %d image and %d mask values, want %d", b.Shape, len(b.Image), len(b.Mask), n)
	}
	if b.Cases != nil && len(b.Cases) != b.Shape[0] {
		return fmt.Errorf("train: batch %v names %d cases", b.Shape, len(b.Cases))
	}
	return nil
}

// tensors returns the image [B, 1, D, H, W] and mask [B, D, H, W] tensors.
func (b Batch) tensors() (x, y *tensors.Tensor) {
	s := b.Shape
	return tensors.FromFlatDataAndDimensions(b.Image, s[0], 1, s[1], s[2], s[3]),
		tensors.FromFlatDataAndDimensions(b.Mask, s[0], s[1], s[2], s[3])
}

// Batches yields the batches of one pass over a data set. Next returns
// io.EOF after the last one, and the context's error if it is cancelled.
type Batches interface {
	Next(ctx context.Context) (Batch, error)
	// Close releases what the pass holds (prefetching goroutines, files).
	Close() error
}

// Source makes passes over a data set: the data package's loader (which
// reads, preprocesses, augments and prefetches) and MemorySource implement
// it.
type Source interface {
	// Len is the number of batches in every epoch.
	Len() int
	// Epoch returns the batches of epoch (0-based, counted over the whole
	// run), skipping the first skip. The order and any augmentation of the
	// batch at index i of an epoch must depend only on the source's seed,
	// the epoch and i — not on how many batches were drawn before in this
	// process — so that a resumed run sees exactly the batches an
	// uninterrupted one would have.
	Epoch(ctx context.Context, epoch, skip int) (Batches, error)
}

// Case is one preprocessed case held in memory.
type Case struct {
	Name  string
	Grid  [3]int    // D, H, W
	Image []float32 // [D, H, W]
	Mask  []uint8   // [D, H, W]
}

// MemorySource serves cases held in memory, in batches, shuffled per epoch
// or in order. It does no augmentation.
type MemorySource struct {
	cases   []Case
	batch   int
	shuffle bool
	seed    uint64
}

// NewMemorySource checks the cases and returns a source of batches of
// batchSize (the last batch of an epoch may be smaller). With shuffle, the
// order of every epoch is a permutation drawn from (seed, epoch).
func NewMemorySource(cases []Case, batchSize int, shuffle bool, seed uint64) (*MemorySource, error) {
	if batchSize < 1 {
		return nil, fmt.Errorf("train: batch size %d", batchSize)
	}
	for _, c := range cases {
		n := c.Grid[0] * c.Grid[1] * c.Grid[2]
		if c.Grid[0] < 1 || c.Grid[1] < 1 || c.Grid[2] < 1 || len(c.Image) != n || len(c.Mask) != n {
			return nil, fmt.Errorf("train: case %q: grid %v with %d image and %d mask values", c.Name, c.Grid, len(c.Image), len(c.Mask))
		}
	}
	return &MemorySource{cases: cases, batch: batchSize, shuffle: shuffle, seed: seed}, nil
}

// Len implements Source.
func (s *MemorySource) Len() int { return (len(s.cases) + s.batch - 1) / s.batch }

// Order returns the case indices of an epoch in the order they are served.
func (s *MemorySource) Order(epoch int) []int {
	if !s.shuffle {
		order := make([]int, len(s.cases))
		for i := range order {
			order[i] = i
		}
		return order
	}
	return rand.New(rand.NewPCG(s.seed, uint64(epoch))).Perm(len(s.cases))
}

// Epoch implements Source.
func (s *MemorySource) Epoch(_ context.Context, epoch, skip int) (Batches, error) {
	if skip < 0 || skip > s.Len() {
		return nil, fmt.Errorf("train: skipping %d of %d batches", skip, s.Len())
	}
	return &memBatches{src: s, order: s.Order(epoch), next: skip}, nil
}

type memBatches struct {
	src   *MemorySource
	order []int
	next  int
}

func (m *memBatches) Next(ctx context.Context) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	lo := m.next * m.src.batch
	if lo >= len(m.order) {
		return Batch{}, io.EOF
	}
	hi := min(lo+m.src.batch, len(m.order))
	m.next++
	first := m.src.cases[m.order[lo]]
	var b Batch
	b.Shape = [4]int{hi - lo, first.Grid[0], first.Grid[1], first.Grid[2]}
	for _, i := range m.order[lo:hi] {
		c := m.src.cases[i]
		if c.Grid != first.Grid {
			return Batch{}, fmt.Errorf("train: cases %q (%v) and %q (%v) in one batch have different grids", first.Name, first.Grid, c.Name, c.Grid)
		}
		b.Image = append(b.Image, c.Image...)
		b.Mask = append(b.Mask, c.Mask...)
		b.Cases = append(b.Cases, c.Name)
	}
	return b, nil
}

func (m *memBatches) Close() error { return nil }
