package dicomseries

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/internal/procstat"
)

// BenchmarkReadSeries255 reads a 512x512x255 int16 series (a synthetic
// chest-like phantom with noise), written once per run: uncompressed
// explicit VR little endian, and the same files compressed to JPEG
// Lossless SV1 by dcmtk's dcmcjpeg when it is installed. MB/s counts the
// 16-bit voxels (133.7 MB). "files" is the reference measured in the same
// run: reading the same bytes with os.ReadFile on the same workers, i.e.
// what the disk and page cache allow; the ratio is printed (x_files), and
// so is the CPU time per read (cpu-s/op), which a machine busy with other
// work inflates less than the wall time.
func BenchmarkReadSeries255(b *testing.B) {
	const rows, cols, n = 512, 512, 255
	dir := b.TempDir()
	raw := filepath.Join(dir, "raw")
	st := stack{base: axialSpec("1.2.826.0.1.99", rows, cols), n: n, origin: [3]float64{-180, -180, -300}, step: 1.25}
	st.base.spacing = [2]float64{0.703125, 0.703125}
	rng := rand.New(rand.NewSource(1))
	noise := make([]int16, 1<<16)
	for i := range noise {
		noise[i] = int16(rng.NormFloat64() * 20)
	}
	st.value = func(i, j, k int) uint32 {
		return uint32(uint16(phantom(i, j, k, cols) + 1024 + int(noise[(i*7919+j*104729+k*15485863)&0xFFFF])))
	}
	specs := st.specs()
	paths := writeFiles(b, raw, specs, 1)
	bytes := int64(rows * cols * n * 2)

	var ref float64
	b.Run("files", func(b *testing.B) {
		b.SetBytes(bytes)
		for i := 0; i < b.N; i++ {
			parallel(len(paths), 0, func(k int) {
				if _, err := os.ReadFile(paths[k]); err != nil {
					b.Error(err)
				}
			})
		}
		ref = b.Elapsed().Seconds() / float64(b.N)
	})
	read := func(dir string) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(bytes)
			cpu := procstat.CPUTime()
			for i := 0; i < b.N; i++ {
				v, _, err := Read(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if v.Dims[2] != n {
					b.Fatalf("dims %v", v.Dims)
				}
			}
			per := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(per/ref, "x_files")
			if c := procstat.CPUTime() - cpu; c > 0 {
				b.ReportMetric(c.Seconds()/float64(b.N), "cpu-s/op")
			}
		}
	}
	b.Run("explicitLE", read(raw))

	if _, err := exec.LookPath("dcmcjpeg"); err != nil {
		b.Log("dcmcjpeg (dcmtk) is not installed: JPEG Lossless variant skipped")
		return
	}
	jpeg := filepath.Join(dir, "jpeg")
	if err := os.MkdirAll(jpeg, 0o755); err != nil {
		b.Fatal(err)
	}
	var compressed int64
	for k, p := range paths {
		out := filepath.Join(jpeg, fmt.Sprintf("IMG%04d", k))
		if msg, err := exec.Command("dcmcjpeg", "+e1", p, out).CombinedOutput(); err != nil {
			b.Fatalf("dcmcjpeg: %v: %s", err, msg)
		}
		if fi, err := os.Stat(out); err == nil {
			compressed += fi.Size()
		}
	}
	b.Logf("JPEG Lossless SV1 files: %.1f MB (%.2fx smaller)", float64(compressed)/1e6, float64(bytes)/float64(compressed))
	b.Run("jpegLosslessSV1", read(jpeg))
}

// phantom is a stored-value-free HU pattern: air, a body ellipse, two lungs
// and a spine, changing slowly along k.
func phantom(i, j, k, size int) int {
	x := float64(i)/float64(size)*2 - 1
	y := float64(j)/float64(size)*2 - 1
	z := float64(k) / 255
	switch {
	case x*x/0.8+y*y/0.5 > 1:
		return -1000
	case math.Hypot(x, y-0.45) < 0.08:
		return 700 // spine
	case math.Hypot(math.Abs(x)-0.38, y+0.05) < 0.25+0.05*math.Sin(6*z):
		return -850
	}
	return 40
}
