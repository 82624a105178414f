//go:build unix

package dicomseries

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) this process has used, so that
// benchmarks can report work done, which a loaded machine does not inflate
// as it does wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
