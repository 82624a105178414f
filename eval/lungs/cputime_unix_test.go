//go:build unix

package lungs

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) the process has used, all
// threads together: benchmarks report it beside wall time because on a
// shared machine wall time mostly measures the neighbours.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
