package lungs

import "github.com/covseg/covseg/internal/parallel"

// forEach calls work(scratch, i) for every i in [0, n) on up to workers
// goroutines (0 means GOMAXPROCS), handing out items one at a time so that
// slices of very different content balance (parallel.ForEach).
func forEach[S any](workers, n int, newScratch func() S, work func(s S, i int)) {
	parallel.ForEach(workers, n, newScratch, work)
}

// noScratch is the scratch factory of work that needs none.
func noScratch() struct{} { return struct{}{} }
