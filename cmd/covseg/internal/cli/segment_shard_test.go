package cli

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// TestSegmentShard splits a folder of 7 small CTs among 3 workers as a
// cluster array job would: the shards are disjoint and together segment
// every case once; a worker run again with --skip-existing does nothing,
// and one whose outputs were partly removed redoes only those.
func TestSegmentShard(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var names []string
	for i := range 7 {
		v, _ := volume.New(volume.Dims{12, 10, 6}, volume.Diag([3]float64{1, 1, 2}, [3]float64{}))
		for j := range v.Data {
			v.Data[j] = float32(math.Round(-1000 + 1500*rng.Float64()))
		}
		name := fmt.Sprintf("ct%02d", (i*5)%7) // listed out of order
		names = append(names, name)
		if err := nifti.WriteVolume(filepath.Join(in, name+".nii.gz"), v, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(names)
	mdl := thresholdModel(t)
	out := filepath.Join(dir, "out")
	for k := 1; k <= 3; k++ {
		_, stderr, code := run(t, "segment", in, "-o", out, "--model", mdl, "--shard", fmt.Sprintf("%d/3", k), "--skip-existing")
		if code != 0 {
			t.Fatalf("shard %d/3: exit %d: %s", k, code, stderr)
		}
		for i, n := range names {
			_, err := os.Stat(filepath.Join(out, n+"_mask.nii.gz"))
			if mine := i%3 == k-1; mine && err != nil {
				t.Errorf("shard %d/3 did not segment %s (sorted position %d)", k, n, i)
			} else if i%3 > k-1 && err == nil {
				t.Errorf("shard %d/3 segmented %s, another shard's case", k, n)
			}
		}
	}
	stdout, _, code := run(t, "segment", in, "-o", out, "--model", mdl, "--shard", "2/3", "--skip-existing")
	if code != 0 || !strings.Contains(stdout, "nothing to do") {
		t.Errorf("shard 2/3 again: exit %d, %q; want nothing to do", code, stdout)
	}
	os.Remove(filepath.Join(out, names[4]+"_mask.nii.gz")) // position 4: shard 2/3
	stdout, stderr, code := run(t, "segment", in, "-o", out, "--model", mdl, "--shard", "2/3", "--skip-existing")
	if code != 0 || !strings.Contains(stdout, "segmented 1 of 1") || !strings.Contains(stderr, names[1]+": outputs exist, skipped") {
		t.Errorf("shard 2/3 after removing %s: exit %d, %q, %q", names[4], code, stdout, stderr)
	}
	if _, _, code := run(t, "segment", in, "-o", out, "--model", mdl, "--shard", "4/3"); code == 0 {
		t.Error("--shard 4/3 was accepted")
	}
}
