package parallel

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestChunksCoverOnce checks that every index is visited exactly once, in
// chunks of the asked size, for awkward sizes and worker counts, and that
// newWorker runs once per goroutine at most.
func TestChunksCoverOnce(t *testing.T) {
	for _, n := range []int{0, 1, 7, 64, 1000} {
		for _, chunk := range []int{-1, 1, 3, 64, 5000} {
			for _, workers := range []int{0, 1, 2, 9} {
				seen := make([]atomic.Int32, max(n, 1))
				var made atomic.Int32
				var mu sync.Mutex
				var bad []int
				Chunks(n, chunk, workers, func() func(lo, hi int) {
					made.Add(1)
					return func(lo, hi int) {
						if hi <= lo || (hi-lo > max(chunk, 1) && workers > 1 && (n+max(chunk, 1)-1)/max(chunk, 1) > 1) {
							mu.Lock()
							bad = append(bad, lo, hi)
							mu.Unlock()
						}
						for i := lo; i < hi; i++ {
							seen[i].Add(1)
						}
					}
				})
				for i := range n {
					if c := seen[i].Load(); c != 1 {
						t.Fatalf("n %d chunk %d workers %d: index %d visited %d times", n, chunk, workers, i, c)
					}
				}
				if len(bad) > 0 {
					t.Fatalf("n %d chunk %d workers %d: bad chunks %v", n, chunk, workers, bad)
				}
				if w := Workers(workers); n > 0 && int(made.Load()) > w {
					t.Fatalf("n %d workers %d: newWorker called %d times", n, workers, made.Load())
				}
			}
		}
	}
}

func TestBalancedAndForEach(t *testing.T) {
	for _, n := range []int{1, 5, 100, 12345} {
		var sum atomic.Int64
		Balanced(n, 7, Stateless(func(lo, hi int) {
			for i := lo; i < hi; i++ {
				sum.Add(int64(i))
			}
		}))
		if want := int64(n) * int64(n-1) / 2; sum.Load() != want {
			t.Fatalf("Balanced(%d): sum %d, want %d", n, sum.Load(), want)
		}
		hits := make([]int32, n)
		ForEach(3, n, func() *int { return new(int) }, func(s *int, i int) {
			*s++
			hits[i]++
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("ForEach(%d): item %d visited %d times", n, i, h)
			}
		}
	}
}
