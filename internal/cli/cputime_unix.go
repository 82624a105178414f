//go:build unix

package cli

import (
	"syscall"
	"time"
)

// cpuMark is the process's CPU time (user + system) at some moment.
type cpuMark struct {
	t  time.Duration
	ok bool
}

// processCPUSeconds marks the process's CPU time now.
func processCPUSeconds() cpuMark {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuMark{}
	}
	return cpuMark{t: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ok: true}
}

// since returns the CPU seconds the process used since m, and whether the
// system says.
func (m cpuMark) since() (float64, bool) {
	now := processCPUSeconds()
	if !m.ok || !now.ok {
		return 0, false
	}
	return (now.t - m.t).Seconds(), true
}
