package preprocess

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// BenchmarkCacheVersusPrepare loads a 256x256x60 phantom CT (NIfTI, gzip)
// prepared to the paper's 20x224x224 grid, from the disk cache and from the
// source, and reports how many times faster the cache is (measured in the
// same run).
func BenchmarkCacheVersusPrepare(b *testing.B) {
	dir := b.TempDir()
	cfg := phantom.Small(volume.Dims{256, 256, 60})
	ph, err := phantom.Generate(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	e := dataset.Entry{Image: filepath.Join(dir, "ct.nii.gz"), Mask: filepath.Join(dir, "mask.nii.gz"), Case: "ct"}
	if err := nifti.WriteVolume(e.Image, ph.Image, nifti.WriteOptions{Datatype: nifti.Float32}); err != nil {
		b.Fatal(err)
	}
	if err := nifti.WriteLabel(e.Mask, ph.Lesions); err != nil {
		b.Fatal(err)
	}
	pc := DefaultConfig()
	warm, _ := NewCache(filepath.Join(dir, "cache"), 0)
	if _, err := warm.Load(e, pc, 0); err != nil {
		b.Fatal(err)
	}
	var prep, hit time.Duration
	for b.Loop() {
		t0 := time.Now()
		cold, _ := NewCache("", 0)
		if _, err := cold.Load(e, pc, 0); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		disk, _ := NewCache(filepath.Join(dir, "cache"), 0)
		if _, err := disk.Load(e, pc, 0); err != nil || disk.Stats().Disk != 1 {
			b.Fatal(err, disk.Stats())
		}
		prep += t1.Sub(t0)
		hit += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(prep.Seconds()/n*1e3, "ms/prepare")
	b.ReportMetric(hit.Seconds()/n*1e3, "ms/cache-hit")
	b.ReportMetric(prep.Seconds()/hit.Seconds(), "x-faster")
}
