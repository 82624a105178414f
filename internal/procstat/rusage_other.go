//go:build !unix

package procstat

import "time"

// CPUTime cannot read the CPU time on this system: it returns 0.
func CPUTime() time.Duration { return 0 }

// PeakRSS cannot read the peak resident set size on this system: it
// returns 0.
func PeakRSS() uint64 { return 0 }
