//go:build !unix

package cli

// cpuMark would be the process's CPU time; this system does not say.
type cpuMark struct{}

// processCPUSeconds marks nothing here.
func processCPUSeconds() cpuMark { return cpuMark{} }

// since reports that the CPU time is unknown.
func (cpuMark) since() (float64, bool) { return 0, false }
