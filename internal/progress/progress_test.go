package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlainLinesAreThrottledAndEndWithTotal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "segment", 10)
	clock := b.start
	b.now = func() time.Time { return clock }
	for i := 0; i < 10; i++ {
		clock = clock.Add(time.Second)
		b.Add(1)
	}
	b.Finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// The first unit at once, then one line per 5 s, then the total once
	// (Finish does not repeat it).
	want := []string{"segment: 1/10 elapsed 1s ETA 9s", "segment: 6/10 elapsed 6s ETA 4s", "segment: 10/10 elapsed 10s ETA 0s"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), strings.Join(want, "\n"))
	}
	if !strings.Contains(lines[2], "10/10") || strings.Contains(buf.String(), "\r") {
		t.Errorf("last line %q (or a carriage return in plain output)", lines[2])
	}
}

func TestNilBarIsQuiet(t *testing.T) {
	var b *Bar
	b.Add(1)
	b.SetSuffix("x")
	b.Println("y")
	b.Finish()
}
