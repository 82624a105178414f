package volume

import "github.com/covseg/covseg/internal/parallel"

// parallelFor calls work(lo, hi) over [0, n) in contiguous chunks of at
// least grain items on up to GOMAXPROCS goroutines (parallel.Balanced).
func parallelFor(n, grain int, newWorker func() func(lo, hi int)) {
	parallel.Balanced(n, grain, newWorker)
}

// simple adapts a stateless function to parallelFor's worker factory.
func simple(work func(lo, hi int)) func() func(lo, hi int) { return parallel.Stateless(work) }

// rowGrain is the number of rows of length rowLen that make a chunk worth a
// goroutine (about 32k voxels).
func rowGrain(rowLen int) int {
	return max(1, (1<<15)/max(rowLen, 1))
}
