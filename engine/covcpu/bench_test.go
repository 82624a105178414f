package covcpu

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/covseg/covseg/internal/procstat"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// benchConvs are single 3D convolution layers at the sizes of the
// network's encoder on a 1x1x16x64x64 input.
var benchConvs = []struct {
	name string
	c    convCase
}{
	{"layer1 64x16x32x32 k3 s1", convCase{x: []int{1, 64, 16, 32, 32}, out: 64, kernel: [3]int{3, 3, 3}, stride: [3]int{1, 1, 1}, pad: [3]int{1, 1, 1}}},
	{"layer2 down 64x16x32x32 k3 s2", convCase{x: []int{1, 64, 16, 32, 32}, out: 128, kernel: [3]int{3, 3, 3}, stride: [3]int{2, 2, 2}, pad: [3]int{1, 1, 1}}},
}

// BenchmarkConv3D times one convolution layer, forward and forward +
// backward (gradients with respect to input and kernel), on the adapter
// and on a reference in the same run, and reports the ratio. The forward
// reference is plain simplego; the backward one is the adapter with
// "conv=simplego" (simplego's convolution kernel), since plain simplego
// cannot compute convolution gradients. A third run compares the adapter's
// default kernels (native where BLAS loads) with its pure-Go ones
// ("kernels=go": graph-level im2col, tiled, and simplego's DotGeneral).
//
//	go test -run '^$' -bench Conv3D -benchtime 1x ./engine/covcpu
func BenchmarkConv3D(b *testing.B) {
	for _, bc := range benchConvs {
		c := bc.c
		rng := rand.New(rand.NewPCG(41, 42))
		x, w, r := randArr(rng, c.x...), randArr(rng, c.kernelDims()...), randArr(rng, c.outDims()...)
		forward := func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.build(in[0], in[1])} }
		backward := func(in []*graph.Node) []*graph.Node {
			loss := graph.ReduceAllSum(graph.Mul(c.build(in[0], in[1]), in[2]))
			return graph.Gradient(loss, in[0], in[1])
		}
		direct, err := NewAdapter("conv=simplego")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name+"/forward", func(b *testing.B) {
			compareExecs(b, newAdapter(b), newSimplego(b), forward, x, w)
		})
		b.Run(bc.name+"/forward+backward", func(b *testing.B) {
			compareExecs(b, newAdapter(b), direct, backward, x, w, r)
		})
		b.Run(bc.name+"/forward+backward default vs pure-Go kernels", func(b *testing.B) {
			compareExecs(b, newAdapter(b), newPureGo(b), backward, x, w, r)
		})
	}
}

// compareExecs runs fn on both backends b.N times each, interleaved (after
// one untimed run that compiles), and reports wall and CPU seconds per run
// and the speedups.
func compareExecs(b *testing.B, backend, reference backends.Backend, fn func([]*graph.Node) []*graph.Node, inputs ...arr) {
	run := func(be backends.Backend) func() {
		e, err := graph.NewExec(be, fn)
		if err != nil {
			b.Fatal(err)
		}
		return func() {
			args := make([]any, len(inputs))
			for i, in := range inputs {
				args[i] = in.tensor(true)
			}
			outs, err := e.Exec(args...)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range outs {
				o.MustFinalizeAll()
			}
		}
	}
	ours, ref := run(backend), run(reference)
	ours()
	ref()
	var tOurs, tRef, cOurs, cRef time.Duration
	b.ResetTimer()
	for range b.N {
		start, cpu := time.Now(), procstat.CPUTime()
		ours()
		tOurs += time.Since(start)
		cOurs += procstat.CPUTime() - cpu
		start, cpu = time.Now(), procstat.CPUTime()
		ref()
		tRef += time.Since(start)
		cRef += procstat.CPUTime() - cpu
	}
	b.ReportMetric(tOurs.Seconds()/float64(b.N), "covcpu-s/op")
	b.ReportMetric(tRef.Seconds()/float64(b.N), "ref-s/op")
	b.ReportMetric(tRef.Seconds()/tOurs.Seconds(), "speedup")
	if cOurs > 0 && cRef > 0 {
		// CPU time is steadier than wall time on a machine shared with other jobs.
		b.ReportMetric(cOurs.Seconds()/float64(b.N), "covcpu-cpu-s/op")
		b.ReportMetric(cRef.Seconds()/float64(b.N), "ref-cpu-s/op")
		b.ReportMetric(cRef.Seconds()/cOurs.Seconds(), "cpu-speedup")
	}
}
