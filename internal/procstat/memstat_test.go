package procstat

import (
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
