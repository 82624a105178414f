package volume

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelFor calls work(lo, hi) over [0, n) split into contiguous chunks of
// at least grain items, on up to GOMAXPROCS goroutines. Each goroutine first
// calls newWorker once, so per-goroutine scratch buffers are allocated once
// per goroutine, never per item. Chunks are handed out dynamically, so slow
// and fast regions balance; results must not depend on which goroutine runs
// which chunk.
func parallelFor(n, grain int, newWorker func() func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	workers := runtime.GOMAXPROCS(0)
	if most := (n + grain - 1) / grain; workers > most {
		workers = most
	}
	if workers <= 1 {
		newWorker()(0, n)
		return
	}
	// Four chunks per worker keeps the tail short without much overhead.
	chunk := max(grain, (n+4*workers-1)/(4*workers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := newWorker()
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				work(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}

// simple adapts a stateless function to parallelFor's worker factory.
func simple(work func(lo, hi int)) func() func(lo, hi int) {
	return func() func(lo, hi int) { return work }
}

// rowGrain is the number of rows of length rowLen that make a chunk worth a
// goroutine (about 32k voxels).
func rowGrain(rowLen int) int {
	return max(1, (1<<15)/max(rowLen, 1))
}
