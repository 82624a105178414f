// Package procstat measures this process's CPU time and memory use, for
// covseg's benchmarks and the demo's report: CPUTime and PeakRSS read
// getrusage (unix; elsewhere they say they cannot), StartPeakHeap samples
// the Go heap.
package procstat

import (
	"runtime/metrics"
	"sync"
	"time"
)

// StartPeakHeap samples the Go heap (live and not yet swept objects) every
// 20 ms until the returned function is called, which returns the largest
// value seen in bytes.
func StartPeakHeap() (stop func() uint64) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			mu.Lock()
			peak = max(peak, samples[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
