//go:build !unix

package train

// peakRSSMB is unknown on this system.
func peakRSSMB() float64 { return 0 }

func cpuSeconds() float64 { return 0 }
