package cli

import (
	"regexp"
	"strings"
	"testing"
)

// TestBenchCommands runs both benchmarks on a narrow network and small
// inputs (without PyTorch): they must finish and report their figures.
func TestBenchCommands(t *testing.T) {
	out, stderr, code := run(t, "bench", "infer", "--width", "0.0625", "--shape", "4,16,16", "--runs", "1", "--torch", "")
	if code != 0 {
		t.Fatalf("bench infer: exit %d: %s", code, stderr)
	}
	for _, re := range []string{`GFLOP in the convolutions`, `median [0-9.]+ s of 1 runs`, `[0-9.]+ GFLOP/s`, `clock ≈ [0-9.]+ GHz`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("bench infer output lacks %q:\n%s", re, out)
		}
	}
	out, stderr, code = run(t, "bench", "segment", "--width", "0.0625", "--dims", "40,36,24", "--spacing", "6,3,3")
	if code != 0 {
		t.Fatalf("bench segment: exit %d: %s", code, stderr)
	}
	for _, mode := range []string{"resize:", "sliding:"} {
		if !strings.Contains(out, mode) || !strings.Contains(out, "preprocess") || !strings.Contains(out, "write") {
			t.Errorf("bench segment output lacks the %s line:\n%s", mode, out)
		}
	}
	if _, stderr, code := run(t, "bench", "infer", "--shape", "4,16"); code == 0 || !strings.Contains(stderr, "--shape") {
		t.Errorf("a bad --shape was accepted: %s", stderr)
	}
}
