// Package membudget holds covseg's memory budget: the most memory a command
// may plan to use for the volumes it reads and the working copies it makes
// of them. Readers check a volume's decoded size against it from the
// header, before allocating anything, so that a huge or hostile volume is
// refused with a clear message instead of ending the process (or a whole
// batch) with "fatal error: out of memory".
//
// The budget comes from --mem-budget, else the environment variable
// COVSEG_MEM_BUDGET, else DefaultShare of the machine's memory (the
// smaller of physical memory and the cgroup limit, when there is one).
package membudget

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
)

// Env is the environment variable that sets the budget.
const Env = "COVSEG_MEM_BUDGET"

// DefaultShare is the share of the machine's memory the default budget
// allows: the rest is left to the Go runtime's garbage headroom, the model
// and the system.
const DefaultShare = 0.6

// limit is the budget in bytes; 0 means not yet set (Limit computes the
// default), -1 means unlimited.
var limit atomic.Int64

// Limit returns the budget in bytes (math.MaxInt64 when unlimited).
func Limit() int64 {
	switch b := limit.Load(); {
	case b > 0:
		return b
	case b < 0:
		return math.MaxInt64
	}
	b, err := FromEnv()
	if err != nil || b == 0 {
		b = Default()
	}
	limit.CompareAndSwap(0, b)
	return Limit()
}

// Set sets the budget in bytes; b <= 0 means unlimited.
func Set(b int64) {
	if b <= 0 {
		b = -1
	}
	limit.Store(b)
}

// ApplyToRuntime makes the budget the Go runtime's soft memory limit
// (debug.SetMemoryLimit) unless GOMEMLIMIT is set: near the budget the
// garbage collector then frees dead copies (a volume before reorientation,
// say) before the heap grows, instead of letting the heap reach twice what
// is live. It is a soft limit: nothing fails when it is passed.
func ApplyToRuntime() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(Limit())
}

// Reset forgets a budget given with Set: the next Limit reads
// COVSEG_MEM_BUDGET or computes the default again.
func Reset() { limit.Store(0) }

// FromEnv parses COVSEG_MEM_BUDGET; it returns 0 when the variable is unset.
func FromEnv() (int64, error) {
	s := strings.TrimSpace(os.Getenv(Env))
	if s == "" {
		return 0, nil
	}
	b, err := Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", Env, err)
	}
	return b, nil
}

// Default is DefaultShare of the machine's memory, or 8 GiB when it cannot
// be found.
func Default() int64 {
	m := machineMemory()
	if m <= 0 {
		return 8 << 30
	}
	return int64(float64(m) * DefaultShare)
}

// Parse reads a budget: a number of bytes with an optional unit (K, M, G,
// T, with or without "iB"/"B", powers of 1024), a percentage of the
// machine's memory ("50%"), or "off"/"unlimited" (returned as -1).
func Parse(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "off", "unlimited", "none":
		return -1, nil
	case "":
		return 0, errors.New("empty memory budget")
	}
	if p, ok := strings.CutSuffix(t, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(f > 0 && f <= 100) {
			return 0, fmt.Errorf("memory budget %q: want a percentage in (0, 100]", s)
		}
		m := machineMemory()
		if m <= 0 {
			return 0, fmt.Errorf("memory budget %q: the machine's memory is unknown; give bytes (e.g. 8G)", s)
		}
		return int64(float64(m) * f / 100), nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || !(f > 0) || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("memory budget %q: want a size such as 512M, 8G or 60%%, or off", s)
	}
	return int64(f * mult), nil
}

// TooLargeError says that a volume does not fit the budget.
type TooLargeError struct {
	What   string // the file and what was to be held
	Need   int64  // bytes the command would need
	Budget int64
}

func (e *TooLargeError) Error() string {
	g := roundUpGiB(e.Need) >> 30
	return fmt.Sprintf("%s needs about %s of memory, over the memory budget of %s; raise it with --mem-budget %dG or %s=%dG (if the machine has the memory), or crop or downsample the volume",
		e.What, Format(e.Need), Format(e.Budget), g, Env, g)
}

// ErrTooLarge matches every TooLargeError with errors.Is.
var ErrTooLarge = errors.New("over the memory budget")

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Check returns a *TooLargeError when need bytes exceed the budget. what
// names the file and what it is needed for, for the message.
func Check(what string, need int64) error {
	if b := Limit(); need > b {
		return &TooLargeError{What: what, Need: need, Budget: b}
	}
	return nil
}

// Format writes a byte count for people: 1.5 GiB, 300 MiB.
func Format(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", b)
}

func roundUpGiB(b int64) int64 {
	return (b + 1<<30 - 1) / (1 << 30) * (1 << 30)
}

// machineMemory is the smaller of MemTotal in /proc/meminfo and the cgroup
// (v2 or v1) memory limit; 0 when neither can be read.
func machineMemory() int64 {
	var m int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m = parseMemTotal(string(b))
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if c, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && c > 0 && (m == 0 || c < m) {
			m = c
		}
	}
	return m
}

// parseMemTotal returns MemTotal in bytes from /proc/meminfo's text.
func parseMemTotal(s string) int64 {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
