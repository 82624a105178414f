package procstat

import (
	"runtime"
	"testing"
	"time"
)

// TestStartPeakHeapSeesAnAllocation: a 64 MiB slice held while sampling
// shows in the peak.
func TestStartPeakHeapSeesAnAllocation(t *testing.T) {
	stop := StartPeakHeap()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	time.Sleep(60 * time.Millisecond)
	peak := stop()
	if buf[12345] != byte(12345%256) || peak < 64<<20 {
		t.Errorf("peak heap %d bytes while holding 64 MiB", peak)
	}
}

// TestCPUTimeAndPeakRSS: a busy loop shows in the CPU time, and
// the peak RSS covers at least a touched 32 MiB buffer (on unix; elsewhere
// both are 0 by definition).
func TestCPUTimeAndPeakRSS(t *testing.T) {
	// Busy until CPU time shows 5 ms more, for at most 10 s of wall time:
	// on a loaded machine a fixed wall-time loop may get little CPU.
	c0 := CPUTime()
	x := 0
	c1 := c0
	for start := time.Now(); c1-c0 < 5*time.Millisecond && time.Since(start) < 10*time.Second; c1 = CPUTime() {
		for range 100000 {
			x++
		}
	}
	buf := make([]byte, 32<<20)
	for i := range buf {
		buf[i] = 1
	}
	rss := PeakRSS()
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" || runtime.GOOS == "plan9" {
		if c1 != 0 || rss != 0 {
			t.Errorf("CPUTime %v, PeakRSS %d where getrusage is missing: want 0", c1, rss)
		}
		return
	}
	if c1-c0 < 5*time.Millisecond || x == 0 {
		t.Errorf("CPU time grew by %v over 10 s of busy loop", c1-c0)
	}
	if rss < 32<<20 || buf[len(buf)-1] != 1 {
		t.Errorf("peak RSS %d bytes after touching 32 MiB", rss)
	}
}
