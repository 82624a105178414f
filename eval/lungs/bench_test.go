package lungs

import (
	"testing"
	"time"

	"github.com/covseg/covseg/internal/procstat"

	"github.com/covseg/covseg/volume"
)

// benchSegment reports, beside wall time, process CPU seconds per call
// (all threads; on a shared machine wall time mostly measures the
// neighbours) and CPU nanoseconds per voxel.
func benchSegment(b *testing.B, v *volume.Volume) {
	b.ResetTimer()
	cpu0 := procstat.CPUTime()
	for i := 0; i < b.N; i++ {
		if _, err := Segment(v, DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
	if cpu := procstat.CPUTime() - cpu0; cpu > 0 {
		per := float64(cpu) / float64(b.N)
		b.ReportMetric(per/float64(time.Second), "cpu-s/op")
		b.ReportMetric(per/float64(len(v.Data)), "cpu-ns/voxel")
	}
}

// BenchmarkSegmentClinical runs on a phantom of a clinical chest CT's grid,
// 512x512x300 voxels of 0.7x0.7x1 mm, whose lungs touch (the split by
// erosion runs).
func BenchmarkSegmentClinical(b *testing.B) {
	ph := phantom{spacing: [3]float64{0.7, 0.7, 1}, dims: volume.Dims{512, 512, 300}, consolidation: true, bridge: true}
	v, _ := ph.build()
	benchSegment(b, v)
}

// BenchmarkSegmentTotalSeg runs on the TotalSegmentator chest crop
// (122x102x112, stored LPS).
func BenchmarkSegmentTotalSeg(b *testing.B) {
	v, _, err := readBench("totalseg_chest_crop.nii.gz")
	if err != nil {
		b.Fatal(err)
	}
	benchSegment(b, v)
}
