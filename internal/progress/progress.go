// Package progress shows the progress of long work: a bar with a rate and an
// ETA redrawn in place on a terminal, plain lines (at most one every few
// seconds) when the output is a file or a pipe.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar reports the progress of Total units of work. It is safe for concurrent
// use. A nil *Bar ignores every call, so callers can pass nil for "quiet".
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int
	done     int
	start    time.Time
	last     time.Time
	tty      bool
	minEvery time.Duration
	now      func() time.Time
	suffix   string
	shown    int // done at the last plain line, to avoid repeating it
}

// New returns a bar that writes to w. It redraws in place when w is a
// terminal, and otherwise prints a plain line at most every 5 seconds.
func New(w io.Writer, label string, total int) *Bar {
	b := &Bar{w: w, label: label, total: total, tty: isTerminal(w), now: time.Now}
	b.minEvery = 5 * time.Second
	if b.tty {
		b.minEvery = 100 * time.Millisecond
	}
	b.start = b.now()
	b.shown = -1
	return b
}

// Add records n more units done and redraws if it is time.
func (b *Bar) Add(n int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.maybeDraw(false)
}

// SetSuffix sets a short status text shown after the bar (e.g. "loss 0.31").
func (b *Bar) SetSuffix(s string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.suffix = s
	b.mu.Unlock()
}

// Println prints a line above the bar (on a terminal the bar is redrawn
// below it).
func (b *Bar) Println(s string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty {
		fmt.Fprint(b.w, "\r\033[K")
	}
	fmt.Fprintln(b.w, s)
	if b.tty {
		b.draw()
	}
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maybeDraw(true)
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

func (b *Bar) maybeDraw(force bool) {
	t := b.now()
	if !force && t.Sub(b.last) < b.minEvery && b.done < b.total {
		return
	}
	b.last = t
	if b.tty {
		b.draw()
		return
	}
	if force && b.shown == b.done {
		return
	}
	b.shown = b.done
	fmt.Fprintln(b.w, b.line())
}

func (b *Bar) draw() {
	const width = 30
	filled := 0
	if b.total > 0 {
		filled = width * min(b.done, b.total) / b.total
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	fmt.Fprintf(b.w, "\r\033[K%s %s %s", b.label, bar, b.status())
}

func (b *Bar) line() string { return fmt.Sprintf("%s: %s", b.label, b.status()) }

func (b *Bar) status() string {
	elapsed := b.now().Sub(b.start)
	s := fmt.Sprintf("%d/%d", b.done, b.total)
	if b.done > 0 && b.total > 0 {
		eta := time.Duration(float64(elapsed) / float64(b.done) * float64(b.total-b.done))
		s += fmt.Sprintf(" elapsed %s ETA %s", round(elapsed), round(eta))
	}
	if b.suffix != "" {
		s += " " + b.suffix
	}
	return s
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// isTerminal reports whether w is a character device (a terminal), looking
// through wrappers that have an Unwrap method (iocheck.Writer).
func isTerminal(w io.Writer) bool {
	for {
		u, ok := w.(interface{ Unwrap() io.Writer })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
