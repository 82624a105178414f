package lungs

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// forEach calls work(worker, i) for every i in [0, n) on up to workers
// goroutines (0 means GOMAXPROCS), handing out items one at a time so that
// slices of very different content balance. newScratch is called once per
// goroutine; work receives that goroutine's scratch. Results must not depend
// on which goroutine handles which item.
func forEach[S any](workers, n int, newScratch func() S, work func(s S, i int)) {
	if n <= 0 {
		return
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	if workers == 1 {
		s := newScratch()
		for i := 0; i < n; i++ {
			work(s, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newScratch()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				work(s, i)
			}
		}()
	}
	wg.Wait()
}

// noScratch is the scratch factory of work that needs none.
func noScratch() struct{} { return struct{}{} }
