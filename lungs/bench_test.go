package lungs

import (
	"testing"

	"github.com/covseg/covseg/volume"
)

// BenchmarkSegment measures Segment on a phantom of a clinical chest CT's
// size: 512x512x300 voxels of 0.7x0.7x1 mm... (the grid's size is what
// costs; the phantom body fills it as a chest fills a CT).
func BenchmarkSegment(b *testing.B) {
	ph := phantom{spacing: [3]float64{0.7, 0.7, 1}, dims: volume.Dims{512, 512, 300}, consolidation: true, bridge: true}
	v, _ := ph.build()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Segment(v, DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
}
