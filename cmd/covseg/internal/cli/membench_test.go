package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/internal/procstat"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/volume"
)

// execEnv makes the test binary run covseg itself (see TestMain), so that a
// benchmark can measure a command's peak RSS in a process of its own.
const execEnv = "COVSEG_TEST_EXEC"

// peakMark starts the line on which the child reports its peak RSS.
const peakMark = "covseg-test-peak-rss: "

func TestMain(m *testing.M) {
	if args := os.Getenv(execEnv); args != "" {
		code := Execute(strings.Split(args, "\x1f"), os.Stdout, os.Stderr)
		// VmHWM belongs to this process's own address space, made at exec:
		// getrusage's maxrss would also count the parent's, which Go's
		// vfork-style start shares until exec.
		if _, peak, err := procstat.RSS(); err == nil {
			fmt.Fprintf(os.Stderr, "\n%s%d\n", peakMark, peak)
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// peakRSS runs covseg with args in a child process and returns its peak
// resident set size (VmHWM) and its wall time.
func peakRSS(b *testing.B, args ...string) (uint64, time.Duration) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), execEnv+"="+strings.Join(args, "\x1f"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("covseg %v: %v\n%s", args, err, out)
	}
	wall := time.Since(start)
	_, rest, ok := strings.Cut(string(out), peakMark)
	var peak uint64
	if _, err := fmt.Sscan(rest, &peak); !ok || err != nil {
		b.Fatalf("covseg %v did not report its peak RSS:\n%s", args, out)
	}
	return peak, wall
}

// BenchmarkPeakRSS measures the peak RSS of covseg info, convert, lungs and
// segment (a small ONNX model, resize mode) on a synthetic int16 chest CT
// of COVSEG_BENCH_DIMS voxels (default 512x512x600, 300 MiB as int16), each
// in its own process, and reports it as a multiple of the CT's decoded
// int16 size (and of its float32 size, which most commands work in).
// covseg --version, measured in the same run, is the process's baseline.
// Run it alone: go test -run '^$' -bench PeakRSS -benchtime 1x ./cmd/covseg/internal/cli
func BenchmarkPeakRSS(b *testing.B) {
	d := volume.Dims{512, 512, 600}
	if s := os.Getenv("COVSEG_BENCH_DIMS"); s != "" {
		if _, err := fmt.Sscanf(s, "%dx%dx%d", &d[0], &d[1], &d[2]); err != nil {
			b.Fatalf("COVSEG_BENCH_DIMS=%q: want e.g. 512x512x600", s)
		}
	}
	dir := b.TempDir()
	ct := filepath.Join(dir, "ct.nii.gz")
	v, err := pipeline.SyntheticCT(d, [3]float64{0.7, 0.7, 0.5}, 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := pipeline.WriteInt16(ct, v); err != nil {
		b.Fatal(err)
	}
	v = nil
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{24, 48, 48}
	onnx := infertest.ThresholdONNX(b, dir, "thr.onnx", cfg, -500.5)
	int16Size := float64(d.Len()) * 2
	runs := []struct {
		name string
		args []string
	}{
		{"baseline", []string{"--version"}},
		{"info", []string{"info", ct}},
		{"convert", []string{"convert", ct, filepath.Join(dir, "c.nii.gz")}},
		{"lungs", []string{"lungs", ct, "-o", filepath.Join(dir, "l.nii.gz")}},
		{"segment", []string{"segment", ct, "-o", filepath.Join(dir, "s.nii.gz"), "--model", onnx}},
	}
	b.ResetTimer()
	for range b.N {
		var base uint64
		for _, r := range runs {
			peak, wall := peakRSS(b, r.args...)
			if r.name == "baseline" {
				base = peak
			}
			over := float64(peak-min(peak, base)) / int16Size
			b.Logf("%-8s peak RSS %6d MiB = %5.2f x int16 size (%5.2f x float32); above the baseline %5.2f x int16 size; %v",
				r.name, peak>>20, float64(peak)/int16Size, float64(peak)/(2*int16Size), over, wall.Round(100*time.Millisecond))
			b.ReportMetric(float64(peak)/int16Size, r.name+"-x-int16")
		}
	}
	b.Logf("CT %v int16: %.0f MiB decoded as int16, %.0f MiB as float32", d, int16Size/(1<<20), 2*int16Size/(1<<20))
}
