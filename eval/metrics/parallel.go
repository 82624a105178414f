package metrics

import "github.com/covseg/covseg/internal/parallel"

// workerCount returns n if positive, else GOMAXPROCS.
func workerCount(n int) int { return parallel.Workers(n) }

// parallelChunks calls fn(lo, hi) for consecutive chunks of [0, n) of at
// most chunk items, from up to workers goroutines, handed out dynamically
// so that uneven work (lines with and without features) balances.
func parallelChunks(n, chunk, workers int, fn func(lo, hi int)) {
	parallel.Chunks(n, chunk, workers, parallel.Stateless(fn))
}
