package quant

import (
	"fmt"
	"testing"
	"time"

	"github.com/covseg/covseg/engine/ort"
)

// BenchmarkConvLayer times the three-convolution network of convNet at a
// size like R3D-18's layer1 (64 channels, 20x56x56) in float32 and int8
// (QDQ, fused by ONNX Runtime), in one run, and reports int8's speed-up.
//
//	go test -run '^$' -bench ConvLayer -benchtime 5x ./engine/quant
func BenchmarkConvLayer(b *testing.B) {
	const ch = 64
	shape := [5]int64{1, ch, 20, 56, 56}
	m, q := buildPair(b, ch, [5]int64{1, ch, 8, 32, 32})
	x := randomInput(ch, shape, 3)
	times := map[string]time.Duration{}
	for _, c := range []struct {
		name string
		path string
	}{{"float32", write(b, m, "f.onnx")}, {"int8", write(b, q, "q.onnx")}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := ort.Open(c.path, ort.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, _, err := s.Run(x.Data, x.Shape); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, _, err := s.Run(x.Data, x.Shape); err != nil {
					b.Fatal(err)
				}
			}
			times[c.name] = time.Since(start) / time.Duration(b.N)
			flop := 2 * 2 * float64(ch*ch*27) * float64(shape[2]*shape[3]*shape[4])
			b.ReportMetric(flop/times[c.name].Seconds()/1e9, "GFLOP/s")
		})
	}
	if times["int8"] > 0 {
		fmt.Printf("conv layer 64ch 20x56x56: float32 %v, int8 %v, int8 speed-up %.2fx\n",
			times["float32"], times["int8"], float64(times["float32"])/float64(times["int8"]))
	}
}
