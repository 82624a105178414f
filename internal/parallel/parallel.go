// Package parallel runs loops over index ranges on several goroutines, for
// the voxel loops of covseg's packages.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers returns n if it is positive, else GOMAXPROCS.
func Workers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Chunks calls work(lo, hi) for consecutive chunks of [0, n) of chunk items
// (the last may be shorter) from up to workers goroutines (0 or less:
// GOMAXPROCS). Each goroutine calls newWorker once first, so per-goroutine
// scratch is made once per goroutine, never per chunk. Chunks are handed
// out dynamically, so uneven work balances; results must not depend on
// which goroutine runs which chunk. With one worker (or one chunk) work
// runs once over [0, n) on the caller's goroutine.
func Chunks(n, chunk, workers int, newWorker func() func(lo, hi int)) {
	if n <= 0 {
		return
	}
	chunk = max(chunk, 1)
	chunks := (n + chunk - 1) / chunk
	workers = min(Workers(workers), chunks)
	if workers <= 1 {
		newWorker()(0, n)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := newWorker()
			for {
				c := int(next.Add(1)) - 1
				if c >= chunks {
					return
				}
				lo := c * chunk
				work(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}

// Balanced calls work(lo, hi) over [0, n) in chunks of at least grain
// items, about four per goroutine (which keeps the tail short without much
// overhead), on up to GOMAXPROCS goroutines, as Chunks does.
func Balanced(n, grain int, newWorker func() func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	workers := min(runtime.GOMAXPROCS(0), (n+grain-1)/grain)
	chunk := max(grain, (n+4*workers-1)/(4*workers))
	Chunks(n, chunk, workers, newWorker)
}

// ForEach calls work(s, i) for every i in [0, n), handing out items one at
// a time (for items of very different cost) to up to workers goroutines
// (0 or less: GOMAXPROCS); newScratch is called once per goroutine and
// work receives that goroutine's scratch.
func ForEach[S any](workers, n int, newScratch func() S, work func(s S, i int)) {
	Chunks(n, 1, workers, func() func(lo, hi int) {
		s := newScratch()
		return func(lo, hi int) {
			for i := lo; i < hi; i++ {
				work(s, i)
			}
		}
	})
}

// Stateless adapts a function without per-goroutine scratch to the worker
// factories of Chunks and Balanced.
func Stateless(work func(lo, hi int)) func() func(lo, hi int) {
	return func() func(lo, hi int) { return work }
}
