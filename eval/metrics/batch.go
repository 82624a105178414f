package metrics

import (
	"runtime"
	"sync"

	"github.com/covseg/covseg/volume"
)

// CompareAll compares n cases, up to jobs at a time (0 means
// min(GOMAXPROCS, 4): each case already uses every core for its distance
// transforms, and a MosMed-sized case holds a few hundred megabytes while it
// runs). load(i) supplies case i just before it is compared, so that at most
// jobs cases are in memory at once. A case whose load or comparison fails
// gets its error in errs[i] and a nil result; the other cases go on. done,
// if not nil, is called from the worker goroutines after each case.
func CompareAll(n, jobs int, opt Options, load func(i int) (truth, pred *volume.Label, err error),
	done func(i int, r *Result, err error)) (results []*Result, errs []error) {
	results, errs = make([]*Result, n), make([]error, n)
	if jobs <= 0 {
		jobs = min(runtime.GOMAXPROCS(0), 4)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(jobs, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				truth, pred, err := load(i)
				if err == nil {
					results[i], err = Compare(truth, pred, opt)
				}
				errs[i] = err
				if done != nil {
					done(i, results[i], err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return results, errs
}
