package infer_test

import (
	"testing"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
)

// BenchmarkPipeline measures what segmentation costs besides the network:
// reorientation, window, resize or resampling, softmax, patch blending, the
// way back to the CT's grid and the argmax, on a 256x256x128 CT with a
// one-convolution model (its forward pass is a negligible share). It
// reports nanoseconds per CT voxel for each step.
func BenchmarkPipeline(b *testing.B) {
	v := synth(volume.Dims{256, 256, 128}, [3]float64{1.4, 1.4, 2.5}, 1)
	cfg := model.DefaultConfig()
	e := openORTB(b, infertest.ThresholdONNX(b, b.TempDir(), "thr.onnx", cfg, -500.5))
	for _, c := range []struct {
		name string
		opts infer.Options
	}{
		{"resize", infer.Options{Mode: infer.ModeResize}},
		{"sliding", infer.Options{Mode: infer.ModeSliding, Spacing: [3]float64{5, 1.6, 1.6}, Overlap: 0.5}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := infer.New(e, c.opts)
			if err != nil {
				b.Fatal(err)
			}
			var t infer.Timing
			for b.Loop() {
				r, err := s.Segment(v)
				if err != nil {
					b.Fatal(err)
				}
				t.Preprocess += r.Timing.Preprocess
				t.Model += r.Timing.Model
				t.Resample += r.Timing.Resample
			}
			n := float64(b.N) * float64(v.Dims.Len())
			b.ReportMetric(float64(t.Preprocess.Nanoseconds())/n, "ns-preprocess/voxel")
			b.ReportMetric(float64(t.Model.Nanoseconds())/n, "ns-model/voxel")
			b.ReportMetric(float64(t.Resample.Nanoseconds())/n, "ns-resample/voxel")
		})
	}
}

func openORTB(b *testing.B, path string) infer.Engine {
	e, err := infer.OpenEngine(path, infer.EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}
