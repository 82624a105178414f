package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/covseg/covseg/internal/procstat"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
)

// mosmedDims and mosmedSpacing are those of a typical MosMedData study.
var (
	mosmedDims    = volume.Dims{512, 512, 40}
	mosmedSpacing = [3]float64{0.75, 0.75, 8}
)

// ellipsoidMM ORs value 1 into l where ((x−c)/r)² summed over axes ≤ 1,
// x and c in millimetres from voxel (0, 0, 0), scanning only the box of the
// ellipsoid.
func ellipsoidMM(l *volume.Label, c, r [3]float64) {
	var lo, hi [3]int
	sp := mosmedSpacing
	for a := 0; a < 3; a++ {
		lo[a] = max(0, int(math.Floor((c[a]-r[a])/sp[a])))
		hi[a] = min(l.Dims[a]-1, int(math.Ceil((c[a]+r[a])/sp[a])))
	}
	for k := lo[2]; k <= hi[2]; k++ {
		dz := (float64(k)*sp[2] - c[2]) / r[2]
		for j := lo[1]; j <= hi[1]; j++ {
			dy := (float64(j)*sp[1] - c[1]) / r[1]
			for i := lo[0]; i <= hi[0]; i++ {
				dx := (float64(i)*sp[0] - c[0]) / r[0]
				if dx*dx+dy*dy+dz*dz <= 1 {
					l.Data[l.Dims.Index(i, j, k)] = 1
				}
			}
		}
	}
}

// lesion is a lumpy blob: a cluster of overlapping ellipsoids.
type lesion struct{ c, r [][3]float64 }

// mosmedPair makes a truth with 2–14 lumpy lesions in the periphery of two
// lung-shaped regions, and a prediction that misses some lesions, shifts
// and rescales the others and adds a few false positives — Dice around the
// 0.4–0.8 of real models.
func mosmedPair(seed uint64) (truth, pred *volume.Label) {
	rng := rand.New(rand.NewPCG(seed, 42))
	aff := volume.Diag(mosmedSpacing, [3]float64{-190, -190, -330})
	truth, _ = volume.NewLabel(mosmedDims, aff)
	pred, _ = volume.NewLabel(mosmedDims, aff)
	w := [3]float64{float64(mosmedDims[0]) * mosmedSpacing[0], float64(mosmedDims[1]) * mosmedSpacing[1], float64(mosmedDims[2]) * mosmedSpacing[2]}
	newLesion := func(size float64) lesion {
		// Lungs: two ellipses left and right of the midline; lesions sit
		// near their outer rim.
		side := []float64{0.3, 0.7}[rng.IntN(2)]
		ang := 2 * math.Pi * rng.Float64()
		rad := 0.6 + 0.35*rng.Float64()
		centre := [3]float64{
			w[0] * (side + 0.17*rad*math.Cos(ang)),
			w[1] * (0.5 + 0.3*rad*math.Sin(ang)),
			w[2] * (0.15 + 0.7*rng.Float64()),
		}
		var les lesion
		for n := 2 + rng.IntN(6); n > 0; n-- {
			off := [3]float64{size * rng.NormFloat64() * 0.6, size * rng.NormFloat64() * 0.6, size * rng.NormFloat64() * 0.4}
			les.c = append(les.c, [3]float64{centre[0] + off[0], centre[1] + off[1], centre[2] + off[2]})
			les.r = append(les.r, [3]float64{size * (0.5 + rng.Float64()), size * (0.5 + rng.Float64()), size * (0.4 + rng.Float64())})
		}
		return les
	}
	for n := 2 + rng.IntN(13); n > 0; n-- {
		les := newLesion(5 + 25*rng.Float64())
		for i := range les.c {
			ellipsoidMM(truth, les.c[i], les.r[i])
		}
		if rng.Float64() < 0.15 {
			continue // missed by the model
		}
		shift := [3]float64{4 * rng.NormFloat64(), 4 * rng.NormFloat64(), 3 * rng.NormFloat64()}
		for i := range les.c {
			s := 0.8 + 0.45*rng.Float64()
			c, r := les.c[i], les.r[i]
			ellipsoidMM(pred, [3]float64{c[0] + shift[0], c[1] + shift[1], c[2] + shift[2]}, [3]float64{s * r[0], s * r[1], s * r[2]})
		}
	}
	for n := rng.IntN(3); n > 0; n-- {
		fp := newLesion(3 + 8*rng.Float64())
		for i := range fp.c {
			ellipsoidMM(pred, fp.c[i], fp.r[i])
		}
	}
	return truth, pred
}

// refTimer times metrics_ref.metrics on one pair written as raw bytes.
const refTimer = `
import importlib.util, json, sys, time
import numpy as np
spec = importlib.util.spec_from_file_location("metrics_ref", sys.argv[1])
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
shape = tuple(int(x) for x in sys.argv[4:7])
sp = tuple(float(x) for x in sys.argv[7:10])
t = np.fromfile(sys.argv[2], np.uint8).reshape(shape, order="F") > 0
p = np.fromfile(sys.argv[3], np.uint8).reshape(shape, order="F") > 0
t0, c0 = time.perf_counter(), time.process_time()
r = ref.metrics(t, p, sp, 1.0)
r["seconds"], r["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps(r))
`

// timeReference runs metrics_ref.metrics on (truth, pred) with
// /usr/bin/python3, if it has numpy, scipy and nibabel, and returns its
// figures and seconds.
func timeReference(b *testing.B, truth, pred *volume.Label) (map[string]any, bool) {
	refPath, err := filepath.Abs(testutil.Shared(b, "tools", "metrics_ref.py"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(refPath); err != nil {
		b.Fatalf("reference implementation missing: %v", err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		b.Logf("no /usr/bin/python3: no reference timing")
		return nil, false
	}
	dir := b.TempDir()
	tp, pp, script := filepath.Join(dir, "t.raw"), filepath.Join(dir, "p.raw"), filepath.Join(dir, "time_ref.py")
	for path, data := range map[string][]byte{tp: truth.Data, pp: pred.Data, script: []byte(refTimer)} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	args := []string{script, refPath, tp, pp}
	for _, x := range truth.Dims {
		args = append(args, Value(x).String())
	}
	for _, x := range truth.Spacing() {
		args = append(args, Value(x).String())
	}
	var out, errb bytes.Buffer
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Logf("reference not timed (python3 lacks numpy/scipy/nibabel?): %v: %s", err, errb.String())
		return nil, false
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		b.Fatalf("reference output %q: %v", out.String(), err)
	}
	return r, true
}

// BenchmarkEvaluate50MosMed evaluates 50 synthetic MosMed-sized pairs
// (512x512x40, 0.75x0.75x8 mm) held in memory, as covseg evaluate does
// (CompareAll, cases in parallel), and reports wall and CPU seconds per
// case. With /usr/bin/python3 and scipy it also times metrics_ref.metrics
// on the first pair (single-threaded numpy/scipy), checks that its figures
// agree, and reports the wall-time speed-up and the CPU-time ratio.
func BenchmarkEvaluate50MosMed(b *testing.B) {
	const n = 50
	truths, preds := make([]*volume.Label, n), make([]*volume.Label, n)
	for i := range truths {
		truths[i], preds[i] = mosmedPair(uint64(i))
	}
	load := func(i int) (*volume.Label, *volume.Label, error) { return truths[i], preds[i], nil }
	opt := Options{Taus: []float64{1}}
	b.ResetTimer()
	start, cpu0 := time.Now(), procstat.CPUTime()
	var results []*Result
	for it := 0; it < b.N; it++ {
		var errs []error
		results, errs = CompareAll(n, 0, opt, load, nil)
		for i, err := range errs {
			if err != nil {
				b.Fatalf("case %d: %v", i, err)
			}
		}
	}
	perCase := time.Since(start).Seconds() / float64(b.N*n)
	cpuPerCase := (procstat.CPUTime() - cpu0).Seconds() / float64(b.N*n)
	b.StopTimer()
	b.ReportMetric(perCase, "s/case")
	b.ReportMetric(cpuPerCase, "cpu_s/case")
	dice := make([]float64, n)
	for i, r := range results {
		dice[i] = float64(r.Dice)
	}
	st := Describe(dice)
	b.Logf("synthetic Dice mean %.3f ± %.3f (min %.3f, max %.3f); case 0: %d truth voxels, %d surface voxels",
		float64(st.Mean), float64(st.SD), float64(st.Min), float64(st.Max), results[0].TruthVoxels, results[0].TruthSurfaceVoxels)

	ref, ok := timeReference(b, truths[0], preds[0])
	if !ok {
		return
	}
	one, err := Compare(truths[0], preds[0], opt)
	if err != nil {
		b.Fatal(err)
	}
	for key, got := range map[string]float64{"dice": float64(one.Dice), "iou": float64(one.IoU), "hd95": float64(one.HD95), "hd": float64(one.HD), "nsd": float64(one.NSD[0]), "truth_ml": one.TruthML} {
		want, _ := ref[key].(float64)
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			b.Errorf("case 0 %s = %.17g, metrics_ref.py %.17g", key, got, want)
		}
	}
	refSec, _ := ref["seconds"].(float64)
	refCPU, _ := ref["cpu_seconds"].(float64)
	b.ReportMetric(refSec, "ref_s/case")
	b.ReportMetric(refSec/perCase, "speedup_vs_ref")
	b.ReportMetric(refCPU/cpuPerCase, "cpu_ratio_vs_ref")
}

// BenchmarkDistanceTransformMosMed times one SquaredDistanceTransform of a
// MosMed-sized lesion surface, on one goroutine, per voxel.
func BenchmarkDistanceTransformMosMed(b *testing.B) {
	truth, _ := mosmedPair(3)
	m := make([]bool, truth.Dims.Len())
	for p, x := range truth.Data {
		m[p] = x > 0
	}
	s, err := Surface(m, truth.Dims)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]float64, len(s))
	b.ResetTimer()
	cpu0 := procstat.CPUTime()
	for i := 0; i < b.N; i++ {
		squaredEDT(s, truth.Dims, mosmedSpacing, 1, nil, out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(s)), "ns/voxel")
	b.ReportMetric(float64((procstat.CPUTime()-cpu0).Nanoseconds())/float64(b.N*len(s)), "cpu_ns/voxel")
}
