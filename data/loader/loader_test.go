package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/covseg/covseg/data/augment"
	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/data/preprocess"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// cases writes n small phantoms as NIfTI pairs.
func cases(t *testing.T, n int) []dataset.Entry {
	t.Helper()
	dir := t.TempDir()
	var es []dataset.Entry
	for i := range n {
		ph, err := phantom.Generate(phantom.Small(volume.Dims{24, 24, 8}), uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		e := dataset.Entry{Image: filepath.Join(dir, fmt.Sprintf("c%d.nii.gz", i)), Mask: filepath.Join(dir, fmt.Sprintf("c%d_mask.nii.gz", i)),
			Case: fmt.Sprintf("c%d", i), Dataset: "p", Split: dataset.Train}
		if err := nifti.WriteVolume(e.Image, ph.Image, nifti.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := nifti.WriteLabel(e.Mask, ph.Lesions); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

func config() Config {
	pc := preprocess.DefaultConfig()
	pc.Grid = preprocess.Grid{6, 16, 20}
	return Config{BatchSize: 2, Preprocess: pc, Seed: 7, Shuffle: true}
}

// epoch collects every batch of an epoch from a position.
func epoch(t *testing.T, l *Loader, p Position) []*Batch {
	t.Helper()
	s := l.Start(context.Background(), p)
	defer s.Close()
	var out []*Batch
	for {
		b, err := s.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestBatches(t *testing.T) {
	es := cases(t, 5)
	cache, _ := preprocess.NewCache("", 1<<30)
	cfg := config()
	cfg.Shuffle = false
	l, err := New(es, cache, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l.BatchesPerEpoch() != 3 {
		t.Fatalf("%d batches", l.BatchesPerEpoch())
	}
	bs := epoch(t, l, Position{})
	if len(bs) != 3 || bs[2].Shape != [5]int{1, 1, 6, 16, 20} || bs[0].Shape != [5]int{2, 1, 6, 16, 20} {
		t.Fatalf("batches %v", bs)
	}
	// Without shuffling or augmentation a batch holds the prepared samples.
	for n, e := range es {
		b := bs[n/2]
		if b.Cases[n%2] != e.Case {
			t.Fatalf("batch %d holds %v", n/2, b.Cases)
		}
		s, err := cache.Load(e, cfg.Preprocess, 0)
		if err != nil {
			t.Fatal(err)
		}
		vox := 6 * 16 * 20
		if !reflect.DeepEqual(b.Image[(n%2)*vox:(n%2+1)*vox], s.Image.Data) || !reflect.DeepEqual(b.Mask[(n%2)*vox:(n%2+1)*vox], s.Mask.Data) {
			t.Fatalf("case %s: batch differs from its sample", e.Case)
		}
	}
	if bs[1].Next() != (Position{0, 2}) {
		t.Errorf("Next %v", bs[1].Next())
	}
	cfg.DropLast = true
	l, _ = New(es, cache, cfg)
	if got := len(epoch(t, l, Position{})); got != 2 {
		t.Errorf("drop last: %d batches", got)
	}
}

// TestDeterministicAndResumable checks that the data depend on (seed,
// epoch, position) only: the same with 1 or 3 workers, the same when
// resumed mid-epoch, different across epochs.
func TestDeterministicAndResumable(t *testing.T) {
	es := cases(t, 6)
	cache, _ := preprocess.NewCache("", 1<<30)
	aug := augment.DefaultConfig()
	aug.Affine.P, aug.Noise.P = 1, 1
	cfg := config()
	cfg.Augment = &aug
	cfg.Workers = 1
	l1, _ := New(es, cache, cfg)
	cfg.Workers, cfg.Prefetch = 3, 4
	l3, _ := New(es, cache, cfg)
	a := epoch(t, l1, Position{Epoch: 1})
	b := epoch(t, l3, Position{Epoch: 1})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("1 and 3 workers give different batches")
	}
	resumed := epoch(t, l3, Position{Epoch: 1, Batch: 2})
	if !reflect.DeepEqual(resumed, a[2:]) {
		t.Fatal("a resumed epoch differs")
	}
	other := epoch(t, l1, Position{Epoch: 2})
	if reflect.DeepEqual(other[0].Cases, a[0].Cases) && reflect.DeepEqual(other[1].Cases, a[1].Cases) {
		t.Error("epochs 1 and 2 have the same order")
	}
	if reflect.DeepEqual(l1.Order(1), l1.Order(2)) {
		t.Error("Order does not change by epoch")
	}
	seen := map[string]bool{}
	for _, bt := range a {
		for _, c := range bt.Cases {
			seen[c] = true
		}
	}
	if len(seen) != 6 {
		t.Errorf("an epoch saw %d of 6 cases", len(seen))
	}
	// Augmentation changed the data.
	cfg.Augment = nil
	plain, _ := New(es, cache, cfg)
	if reflect.DeepEqual(epoch(t, plain, Position{Epoch: 1})[0].Image, a[0].Image) {
		t.Error("augmentation changed nothing")
	}
}

func TestPatchMode(t *testing.T) {
	es := cases(t, 3)
	cache, _ := preprocess.NewCache("", 1<<30)
	cfg := config()
	cfg.Preprocess.Mode = preprocess.ModePatch
	cfg.Preprocess.Spacing = [3]float64{20, 7, 7}
	cfg.Preprocess.Patch = preprocess.Grid{4, 12, 12}
	cfg.Preprocess.LesionFraction = 1
	l, err := New(es, cache, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := epoch(t, l, Position{Epoch: 0})
	b := epoch(t, l, Position{Epoch: 0})
	if !reflect.DeepEqual(a, b) || a[0].Shape != [5]int{2, 1, 4, 12, 12} {
		t.Fatalf("patch batches differ or shape %v", a[0].Shape)
	}
	for _, bt := range a {
		for n := range bt.Cases {
			vox := 4 * 12 * 12
			sum := 0
			for _, x := range bt.Mask[n*vox : (n+1)*vox] {
				sum += int(x)
			}
			if sum == 0 {
				t.Errorf("case %s: a lesion-centred patch without lesion", bt.Cases[n])
			}
		}
	}
}

// TestPrefetchBoundAndCancel checks that the loader runs at most Prefetch
// batches ahead (counted by the cache) and stops when cancelled.
func TestPrefetchBoundAndCancel(t *testing.T) {
	es := cases(t, 8)
	cache, _ := preprocess.NewCache("", 1<<30)
	cfg := config()
	cfg.BatchSize, cfg.Prefetch, cfg.Workers = 1, 2, 4
	l, _ := New(es, cache, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	s := l.Start(ctx, Position{})
	time.Sleep(300 * time.Millisecond) // give the workers every chance to run ahead
	if st := cache.Stats(); st.Prepared > 2 {
		t.Errorf("%d batches prepared ahead with prefetch 2", st.Prepared)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	var err error
	for range 10 {
		if _, err = s.Next(); err != nil {
			break
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("Next after Close: %v", err)
	}
	// Closing early, without cancelling, stops too.
	s = l.Start(context.Background(), Position{})
	s.Next()
	s.Close()
}

func TestErrors(t *testing.T) {
	es := cases(t, 2)
	cache, _ := preprocess.NewCache("", 0)
	if _, err := New(es, cache, Config{BatchSize: 0, Preprocess: preprocess.DefaultConfig()}); err == nil {
		t.Error("batch size 0 accepted")
	}
	bad := append([]dataset.Entry(nil), es...)
	bad[1].Mask = ""
	if _, err := New(bad, cache, config()); err == nil || !strings.Contains(err.Error(), "c1") {
		t.Errorf("no mask: %v", err)
	}
	bad[1] = es[1]
	bad[1].Image = bad[1].Image + ".missing"
	cfg := config()
	cfg.Shuffle = false
	cfg.BatchSize = 1
	l, _ := New(bad, cache, cfg)
	s := l.Start(context.Background(), Position{})
	defer s.Close()
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), "c1") {
		t.Errorf("missing image: %v", err)
	}
}

// TestSamePatches: validation's patches stay the same from epoch to epoch
// with SamePatches, and change without.
func TestSamePatches(t *testing.T) {
	es := cases(t, 3)
	cache, _ := preprocess.NewCache("", 1<<30)
	cfg := config()
	cfg.BatchSize, cfg.Shuffle = 1, false
	cfg.Preprocess.Mode = preprocess.ModePatch
	cfg.Preprocess.Spacing = [3]float64{20, 7, 7}
	cfg.Preprocess.Patch = preprocess.Grid{4, 8, 8}
	for _, same := range []bool{false, true} {
		cfg.SamePatches = same
		l, err := New(es, cache, cfg)
		if err != nil {
			t.Fatal(err)
		}
		a, b := epoch(t, l, Position{Epoch: 0}), epoch(t, l, Position{Epoch: 3})
		equal := true
		for i := range a {
			equal = equal && reflect.DeepEqual(a[i].Image, b[i].Image)
		}
		if equal != same {
			t.Errorf("SamePatches %v: epochs 0 and 3 cut the same patches: %v", same, equal)
		}
	}
}
