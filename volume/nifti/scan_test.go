package nifti

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/membudget"
	"github.com/covseg/covseg/volume"
)

// TestScanMatchesRead: Scan hands over, chunk by chunk, exactly the values
// Read returns, and both count the NaN and ±Inf voxels.
func TestScanMatchesRead(t *testing.T) {
	v := filled(volume.Dims{130, 70, 40}, volume.Identity(), func(i, j, k int) float32 { return float32(i - j*k) })
	v.Data[3] = float32(math.NaN())
	v.Data[300000] = float32(math.Inf(-1))
	for _, name := range []string{"s.nii", "s.nii.gz"} {
		p := writeTemp(t, name, v, WriteOptions{Datatype: Float32})
		im, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		var got []float32
		chunks := 0
		_, nonFinite, err := Scan(p, func(vals []float32) error {
			got = append(got, vals...)
			chunks++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if im.NonFinite != 2 || nonFinite != 2 || len(got) != len(im.Data) || chunks < 2 {
			t.Fatalf("%s: Read counted %d non-finite, Scan %d; %d and %d voxels in %d chunks", name, im.NonFinite, nonFinite, len(im.Data), len(got), chunks)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(im.Data[i]) {
				t.Fatalf("%s: voxel %d: Scan %v, Read %v", name, i, got[i], im.Data[i])
			}
		}
		stop := errors.New("stop")
		if _, _, err := Scan(p, func([]float32) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("%s: Scan's callback error was %v", name, err)
		}
	}
}

// TestReadAllocatesOnce: an honest file (plain, or gzip with a matching
// size trailer) is decoded into one buffer of the header's size: the read
// allocates little more than the float32 voxels.
func TestReadAllocatesOnce(t *testing.T) {
	v := filled(volume.Dims{128, 128, 64}, volume.Identity(), func(i, j, k int) float32 { return float32(i + j - k) })
	for _, name := range []string{"a.nii", "a.nii.gz"} {
		p := writeTemp(t, name, v, WriteOptions{Datatype: Int16})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := Read(p); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		voxels := uint64(len(v.Data) * 4)
		if got := after.TotalAlloc - before.TotalAlloc; got > voxels+8<<20 {
			t.Errorf("%s: allocated %d MiB for %d MiB of float32 voxels", name, got>>20, voxels>>20)
		}
	}
}

// TestReadRefusesOverBudget: a volume whose float32 size exceeds the
// memory budget is refused from its header, naming the file and sizes.
func TestReadRefusesOverBudget(t *testing.T) {
	defer membudget.Reset()
	p := writeTemp(t, "b.nii.gz", smallInt16(), WriteOptions{Datatype: Int16})
	membudget.Set(16)
	_, err := Read(p)
	if !errors.Is(err, membudget.ErrTooLarge) || !strings.Contains(err.Error(), "b.nii.gz") {
		t.Errorf("error %v", err)
	}
	membudget.Reset()
	if _, err := Read(p); err != nil {
		t.Error(err)
	}
}
