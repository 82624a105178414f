package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSS returns the process's resident set size and its peak (VmRSS and
// VmHWM of /proc/self/status, Linux only) in bytes: unlike the Go heap,
// they count only memory that was touched, which is what the system runs
// out of.
func RSS() (cur, peak uint64, err error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("procstat: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("procstat: %s: %w", line, err)
		}
		if k == "VmRSS" {
			cur = n << 10
		} else {
			peak = n << 10
		}
	}
	if cur == 0 {
		return 0, 0, fmt.Errorf("procstat: no VmRSS in /proc/self/status")
	}
	return cur, peak, nil
}

// ResetPeakRSS sets the process's peak RSS (VmHWM) back to its current RSS,
// so that the peak of one phase can be measured (Linux 4.0 and later).
func ResetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("procstat: resetting the peak RSS: %w", err)
	}
	return nil
}
