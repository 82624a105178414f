package volume

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/covseg/covseg/internal/procstat"
)

// The benchmarks use the paper's sizes: a 512x512x255 chest CT resized to
// the network's 20x224x224 grid (Dims{224, 224, 20}, x fastest) and the
// prediction put back. Each reports ns per output voxel of wall time and
// cpu-ns/voxel of process CPU time (all threads; on a shared machine wall
// time mostly measures the neighbours), MB/s of input plus output, and,
// where /usr/bin/python3 has torch, torch_ratio and torch_cpu_ratio: this
// benchmark's wall and CPU time over F.interpolate's on the same sizes with
// as many threads as GOMAXPROCS, measured in the same run (below 1 =
// covseg faster).
//
//	go test -run '^$' -bench . -benchtime 5x ./volume

var (
	ctDims  = Dims{512, 512, 255}
	netDims = Dims{224, 224, 20}
	ctAff   = Affine{{-0.7, 0, 0, 180}, {0, -0.7, 0, 170}, {0, 0, 1.25, -300}, {0, 0, 0, 1}}
)

var benchData = sync.OnceValues(func() (*Volume, *Label) {
	v, _ := New(ctDims, ctAff)
	for i := range v.Data {
		v.Data[i] = float32(i%4096) - 1024
	}
	return v, Binarize(v)
})

// start resets the benchmark timer and returns the process CPU time then.
func start(b *testing.B) time.Duration {
	b.ResetTimer()
	return procstat.CPUTime()
}

func report(b *testing.B, cpu0 time.Duration, outVoxels int, inBytes, outBytes int64, torchKey string) {
	cpu := float64(procstat.CPUTime()-cpu0) / float64(b.N)
	b.StopTimer()
	b.SetBytes(inBytes + outBytes)
	wall := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(wall/float64(outVoxels), "ns/voxel")
	if cpu > 0 {
		b.ReportMetric(cpu/float64(outVoxels), "cpu-ns/voxel")
	}
	if torchKey == "" {
		return
	}
	ref, err := torchTimes()
	if err != nil {
		b.Logf("no torch reference: %v", err)
		return
	}
	if t, ok := ref[torchKey]; ok {
		b.ReportMetric(wall/(t[0]*1e9), "torch_ratio")
		if cpu > 0 && t[1] > 0 {
			b.ReportMetric(cpu/(t[1]*1e9), "torch_cpu_ratio")
		}
		b.Logf("torch F.interpolate %s: %.1f ms wall, %.1f ms CPU (%d threads)", torchKey, t[0]*1e3, t[1]*1e3, runtime.GOMAXPROCS(0))
	}
}

// torchScript times F.interpolate on the benchmark sizes (median of 5 after
// a warm-up) and prints "key wall_seconds cpu_seconds" lines.
const torchScript = `
import sys, time, statistics, torch, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
x = torch.rand(1, 1, 255, 512, 512)
lab = (x > 0.5).to(torch.uint8)
s = torch.rand(1, 1, 20, 224, 224)
s2 = torch.rand(1, 2, 20, 224, 224)
def t(f):
    f()
    ws, cs = [], []
    for _ in range(5):
        w0, c0 = time.perf_counter(), time.process_time()
        f()
        ws.append(time.perf_counter() - w0); cs.append(time.process_time() - c0)
    return "%g %g" % (statistics.median(ws), statistics.median(cs))
print("down_linear", t(lambda: F.interpolate(x, size=(20, 224, 224), mode="trilinear", align_corners=False)))
print("down_nearest", t(lambda: F.interpolate(x, size=(20, 224, 224), mode="nearest-exact")))
print("down_nearest_u8", t(lambda: F.interpolate(lab, size=(20, 224, 224), mode="nearest-exact")))
print("up_linear", t(lambda: F.interpolate(s, size=(255, 512, 512), mode="trilinear", align_corners=False)))
print("up_linear_2ch", t(lambda: F.interpolate(s2, size=(255, 512, 512), mode="trilinear", align_corners=False)))
`

var torchTimes = sync.OnceValues(func() (map[string][2]float64, error) {
	cmd := exec.Command("/usr/bin/python3", "-c", torchScript, strconv.Itoa(runtime.GOMAXPROCS(0)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	ref := map[string][2]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		w, err1 := strconv.ParseFloat(f[1], 64)
		c, err2 := strconv.ParseFloat(f[2], 64)
		if err1 == nil && err2 == nil {
			ref[f[0]] = [2]float64{w, c}
		}
	}
	return ref, nil
})

func BenchmarkResizeCTToNetLinear(b *testing.B) {
	v, _ := benchData()
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		if _, err := v.ResizeTo(netDims, Linear); err != nil {
			b.Fatal(err)
		}
	}
	report(b, cpu0, netDims.Len(), int64(4*ctDims.Len()), int64(4*netDims.Len()), "down_linear")
}

func BenchmarkResizeCTToNetNearest(b *testing.B) {
	v, _ := benchData()
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		if _, err := v.ResizeTo(netDims, Nearest); err != nil {
			b.Fatal(err)
		}
	}
	report(b, cpu0, netDims.Len(), int64(4*ctDims.Len()), int64(4*netDims.Len()), "down_nearest")
}

func BenchmarkResizeCTToNetLabel(b *testing.B) {
	_, l := benchData()
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		if _, err := l.ResizeTo(netDims); err != nil {
			b.Fatal(err)
		}
	}
	report(b, cpu0, netDims.Len(), int64(ctDims.Len()), int64(netDims.Len()), "down_nearest_u8")
}

// BenchmarkResampleNetToCT puts a 20x224x224 prediction back onto the CT's
// own grid through world coordinates (the separable path).
func BenchmarkResampleNetToCT(b *testing.B) {
	v, _ := benchData()
	small, _ := v.ResizeTo(netDims, Linear)
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		if _, err := small.ResampleToGrid(ctDims, ctAff, Linear, 0); err != nil {
			b.Fatal(err)
		}
	}
	report(b, cpu0, ctDims.Len(), int64(4*netDims.Len()), int64(4*ctDims.Len()), "up_linear")
}

// BenchmarkResampleNetToCT2Channels does the same for two class
// probabilities at once.
func BenchmarkResampleNetToCT2Channels(b *testing.B) {
	v, _ := benchData()
	s0, _ := v.ResizeTo(netDims, Linear)
	s1 := s0.Clone()
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		if _, err := ResampleChannels([]*Volume{s0, s1}, ctDims, ctAff, Linear, 0); err != nil {
			b.Fatal(err)
		}
	}
	report(b, cpu0, ctDims.Len(), int64(8*netDims.Len()), int64(8*ctDims.Len()), "up_linear_2ch")
}

// BenchmarkResampleOblique samples onto a grid rotated against the source
// (the general path), 256x256x128 voxels.
func BenchmarkResampleOblique(b *testing.B) {
	v, _ := benchData()
	d := Dims{256, 256, 128}
	a := Affine{{-1.2, 0.3, 0, 170}, {-0.3, -1.2, 0.2, 160}, {0, -0.1, 2.5, -290}, {0, 0, 0, 1}}
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		if _, err := v.ResampleToGrid(d, a, Linear, -1024); err != nil {
			b.Fatal(err)
		}
	}
	report(b, cpu0, d.Len(), int64(4*d.Len()), int64(4*d.Len()), "")
}

func BenchmarkCanonicalCT(b *testing.B) {
	v, _ := benchData()
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		v.Canonical()
	}
	report(b, cpu0, ctDims.Len(), int64(4*ctDims.Len()), int64(4*ctDims.Len()), "")
}

func BenchmarkWindowCT(b *testing.B) {
	v, _ := benchData()
	w := v.Clone()
	cpu0 := start(b)
	for i := 0; i < b.N; i++ {
		if err := w.Window(DefaultWindowLo, DefaultWindowHi); err != nil {
			b.Fatal(err)
		}
	}
	report(b, cpu0, ctDims.Len(), int64(4*ctDims.Len()), int64(4*ctDims.Len()), "")
}
