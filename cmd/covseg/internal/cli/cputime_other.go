//go:build !unix

package cli

// cpuSeconds cannot read the CPU time on this system.
func cpuSeconds() (float64, bool) { return 0, false }
