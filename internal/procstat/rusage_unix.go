//go:build unix

package procstat

import (
	"runtime"
	"syscall"
	"time"
)

// CPUTime returns the CPU time (user and system) this process has used so
// far, all threads together, or 0 where it cannot be read. On a shared
// machine it is a steadier measure of work than wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS returns the process's peak resident set size in bytes, or 0
// where it cannot be read.
func PeakRSS() uint64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return uint64(ru.Maxrss) // bytes there
	}
	return uint64(ru.Maxrss) << 10 // kilobytes on Linux and the BSDs
}
