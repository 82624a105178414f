package nifti

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/covseg/covseg/internal/procstat"

	"github.com/covseg/covseg/volume"
)

// ctLike returns a chest-CT-like int16 volume in HU: air around an
// elliptical body (soft tissue), two lungs, a ring of bone, a table, and
// noise, so that it compresses like a real scan rather than like zeros.
func ctLike(d volume.Dims) *volume.Volume {
	v, _ := volume.New(d, volume.Affine{{-0.7, 0, 0, 179}, {0, -0.7, 0, 179}, {0, 0, 1.25, -320}, {0, 0, 0, 1}})
	x := uint32(2463534242)
	noise := func() float64 { // xorshift, roughly Gaussian (sum of 4 uniforms)
		s := 0.0
		for n := 0; n < 4; n++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			s += float64(x) / (1 << 32)
		}
		return s - 2
	}
	cx, cy := float64(d[0])/2, float64(d[1])/2
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				u, w := (float64(i)-cx)/(0.42*float64(d[0])), (float64(j)-cy)/(0.32*float64(d[1]))
				r := math.Hypot(u, w)
				lung := math.Min(math.Hypot((u-0.45)/0.35, w/0.7), math.Hypot((u+0.45)/0.35, w/0.7))
				hu := -1000 + 15*noise()
				switch {
				case j > int(0.85*float64(d[1])):
					hu = -1000 + 5*noise()
					if j < int(0.88*float64(d[1])) {
						hu = 200 + 40*noise() // table
					}
				case lung < 1:
					hu = -860 + 60*noise() + 30*math.Sin(float64(i+j+k)/9)
				case r < 1 && r > 0.9:
					hu = 700 + 150*noise() // ribs
				case r < 1:
					hu = 40 + 25*noise()
				}
				v.Set(i, j, k, float32(math.Round(hu)))
			}
		}
	}
	return v
}

// BenchmarkReadNiftiGz512 reads a 512x512x255 int16 .nii.gz (CT-like
// content) with Read and reports MB/s of uncompressed voxel data and the
// CPU seconds (user+system, all threads) per read; when /usr/bin/python3
// with nibabel is there it also times nibabel loading the same file
// (np.asarray(nib.load(p).dataobj), best of 3) and reports its MB/s, its
// CPU seconds and both ratios (x-nibabel: wall-clock speed; on a shared
// machine x-nibabel-cpu, the ratio of CPU time, is the steadier figure).
//
//	go test ./nifti -run '^$' -bench ReadNiftiGz512 -benchtime 5x
func BenchmarkReadNiftiGz512(b *testing.B) {
	d := volume.Dims{512, 512, 255}
	p := filepath.Join(b.TempDir(), "ct512.nii.gz")
	if err := WriteVolume(p, ctLike(d), WriteOptions{Datatype: Int16}); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	bytes := int64(d.Len()) * 2
	b.Logf("%s: %d MB compressed, %d MB of voxels", filepath.Base(p), st.Size()>>20, bytes>>20)
	b.SetBytes(bytes)
	cpu0 := procstat.CPUTime().Seconds()
	for b.Loop() {
		im, err := Read(p)
		if err != nil {
			b.Fatal(err)
		}
		if len(im.Data) != d.Len() {
			b.Fatal("wrong size")
		}
	}
	goCPU := (procstat.CPUTime().Seconds() - cpu0) / float64(b.N)
	goMBps := float64(bytes) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	b.ReportMetric(goCPU, "cpu-s/op")

	wall, cpu, err := nibabelLoadSeconds(p)
	if err != nil {
		b.Logf("no nibabel comparison: %v", err)
		return
	}
	nibMBps := float64(bytes) / wall / 1e6
	b.ReportMetric(nibMBps, "nibabel-MB/s")
	b.ReportMetric(cpu, "nibabel-cpu-s/op")
	b.ReportMetric(goMBps/nibMBps, "x-nibabel")
	b.ReportMetric(cpu/goCPU, "x-nibabel-cpu")
}

// nibabelLoadSeconds times nibabel loading p into a numpy array: the best
// wall-clock and CPU seconds of 3 loads.
func nibabelLoadSeconds(p string) (wall, cpu float64, err error) {
	const script = `
import resource, sys, time
import numpy as np, nibabel as nib
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
wall = cput = 1e9
for _ in range(3):
    t, c = time.perf_counter(), cpu()
    a = np.asarray(nib.load(sys.argv[1]).dataobj)
    wall, cput = min(wall, time.perf_counter() - t), min(cput, cpu() - c)
assert a.shape == (512, 512, 255), a.shape
print(wall, cput)
`
	ctx := exec.Command("/usr/bin/python3", "-c", script, p)
	ctx.WaitDelay = time.Minute
	out, err := ctx.Output()
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("nibabel timing printed %q", out)
	}
	if wall, err = strconv.ParseFloat(f[0], 64); err == nil {
		cpu, err = strconv.ParseFloat(f[1], 64)
	}
	return wall, cpu, err
}
