package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/internal/procstat"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// writeBomb writes the hostile file of issue 14: a 2 MB .nii.gz whose
// header claims 1024³ int16 voxels, all zero (2 GiB decoded, 4 GiB as
// float32). It takes about a second.
func writeBomb(t *testing.T, path string) {
	t.Helper()
	v, err := volume.New(volume.Dims{1, 1, 1}, volume.Identity())
	if err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(t.TempDir(), "small.nii")
	if err := nifti.WriteVolume(small, v, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		t.Fatal(err)
	}
	h, err := nifti.ReadHeader(small)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(small)
	if err != nil {
		t.Fatal(err)
	}
	hdr := raw[:h.VoxOffset]
	for i := 1; i <= 3; i++ { // NIfTI-1: dim[i] is an int16 at byte 40 + 2i
		binary.LittleEndian.PutUint16(hdr[40+2*i:], 1024)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	zw.Write(hdr)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 2048; i++ {
		if _, err := zw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGzipBomb: the 2 MB file claiming 2 GiB of voxels neither crashes nor
// exhausts memory. info streams it (its peak RSS growth is measured and
// must stay a few hundred MiB); convert, lungs and segment refuse it before
// allocating, with a message giving the size, the budget and how to raise
// it; a batch holding it still writes every other case.
func TestGzipBomb(t *testing.T) {
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.nii.gz")
	writeBomb(t, bomb)
	if st, err := os.Stat(bomb); err != nil || st.Size() > 3<<20 {
		t.Fatalf("bomb: %v, %v", st, err)
	}

	t.Run("info", func(t *testing.T) {
		before, _, err := procstat.RSS()
		if err != nil {
			t.Fatal(err)
		}
		if err := procstat.ResetPeakRSS(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		stdout, stderr, code := run(t, "info", "--json", "--mem-budget", "1G", bomb)
		_, peak, err := procstat.RSS()
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r struct {
			Shape []int `json:"shape"`
			Stats struct {
				Min, Max, Mean, SD *float64
				NonFinite          int
			} `json:"stats"`
		}
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%v: %s", err, stdout)
		}
		s := r.Stats
		if len(r.Shape) != 3 || r.Shape[2] != 1024 || s.Min == nil || *s.Min != 0 || *s.Max != 0 || *s.Mean != 0 || *s.SD != 0 {
			t.Errorf("info: %s", stdout)
		}
		growth := int64(peak) - int64(before)
		t.Logf("info of a 1024³ int16 volume (2 GiB int16, 4 GiB float32): peak RSS %d MiB, %d MiB over the %d MiB before, %v",
			peak>>20, growth>>20, before>>20, time.Since(start).Round(time.Millisecond))
		if growth > 300<<20 {
			t.Errorf("info's peak RSS grew by %d MiB", growth>>20)
		}
	})

	refused := func(t *testing.T, stderr string, code int) {
		t.Helper()
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, want := range []string{"bomb.nii.gz", "[1024 1024 1024]", "over the memory budget of 1.0 GiB", "--mem-budget", "COVSEG_MEM_BUDGET"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("convert", func(t *testing.T) {
		_, stderr, code := run(t, "convert", "--mem-budget", "1G", bomb, filepath.Join(out, "c.nii.gz"))
		refused(t, stderr, code)
	})
	t.Run("lungs", func(t *testing.T) {
		_, stderr, code := run(t, "lungs", "--mem-budget", "1G", bomb, "-o", filepath.Join(out, "l.nii.gz"))
		refused(t, stderr, code)
	})
	t.Run("report", func(t *testing.T) {
		_, stderr, code := run(t, "report", "--mem-budget", "1G", "--ct", bomb, "--mask", bomb)
		refused(t, stderr, code)
	})
	t.Run("segment batch", func(t *testing.T) {
		cases := filepath.Join(dir, "cases")
		if err := os.Mkdir(cases, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(bomb, filepath.Join(cases, "bomb.nii.gz")); err != nil {
			t.Fatal(err)
		}
		infertest.WriteRandomCT(t, filepath.Join(cases, "a.nii.gz"), volume.Dims{40, 30, 12}, 1)
		infertest.WriteRandomCT(t, filepath.Join(cases, "z.nii"), volume.Dims{20, 30, 10}, 2)
		masks := filepath.Join(dir, "masks")
		stdout, stderr, code := run(t, "segment", "--mem-budget", "1G", cases, "-o", masks, "--model", thresholdModel(t))
		refused(t, stderr, code)
		if !strings.Contains(stdout, "segmented 2 of 3") || !strings.Contains(stderr, "bomb FAILED") {
			t.Errorf("stdout %q\nstderr %s", stdout, stderr)
		}
		checkMaskOn(t, filepath.Join(masks, "a_mask.nii.gz"), filepath.Join(cases, "a.nii.gz"))
		checkMaskOn(t, filepath.Join(masks, "z_mask.nii.gz"), filepath.Join(cases, "z.nii"))
	})
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("refused commands left %v", ents)
	}
}

// sameFileSetup writes a small CT, a mask and a model and returns their
// paths; the test's working folder is dir, so relative paths work.
func sameFileSetup(t *testing.T) (dir, ct, mask string) {
	dir = t.TempDir()
	t.Chdir(dir)
	ct = filepath.Join(dir, "ct.nii")
	infertest.WriteRandomCT(t, ct, volume.Dims{24, 20, 8}, 1)
	l, err := volume.NewLabel(volume.Dims{24, 20, 8}, volume.Diag([3]float64{1.5, 1.5, 3}, [3]float64{-30, 10, 50}))
	if err != nil {
		t.Fatal(err)
	}
	mask = filepath.Join(dir, "mask.nii")
	if err := nifti.WriteLabel(mask, l); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ct.nii", filepath.Join(dir, "ct_link.nii")); err != nil {
		t.Fatal(err)
	}
	return dir, ct, mask
}

// TestOutputIsInputRefused: every command with an output refuses, before
// doing any work, an output that is one of its inputs, whether named alike,
// by a relative path or through a symbolic link; the input's bytes stay.
func TestOutputIsInputRefused(t *testing.T) {
	dir, ct, mask := sameFileSetup(t)
	model := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(model, []byte("not read: refused first"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("m.onnx", filepath.Join(dir, "model_link.nii.gz")); err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{}
	for _, p := range []string{ct, mask, model} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inputs[p] = b
	}
	for _, args := range [][]string{
		{"lungs", ct, "-o", ct},
		{"lungs", ct, "-o", "ct_link.nii"},
		{"lungs", "ct_link.nii", "-o", "ct.nii"},
		{"lungs", ct, "-o", "l.nii", "--png", "ct.nii"},
		{"convert", ct, ct},
		{"convert", "ct.nii", "ct_link.nii"},
		{"segment", "ct.nii", "-o", "ct.nii", "--model", model},
		{"segment", "ct.nii", "-o", "ct_link.nii", "--model", model},
		{"segment", "ct.nii", "-o", "model_link.nii.gz", "--model", model},
		{"report", "--ct", ct, "--mask", mask, "--markdown", "ct.nii"},
		{"report", "--ct", ct, "--mask", mask, "--png", mask},
		{"model", "export", model, "-o", model},
		{"model", "init", "--pretrained", model, "-o", "m.onnx"},
		{"evaluate", "--pred", mask, "--truth", mask, "--csv", "mask.nii"},
	} {
		_, stderr, code := run(t, args...)
		if code != 1 || !strings.Contains(stderr, "refusing to overwrite the input") {
			t.Errorf("%v: exit %d, stderr %s", args, code, stderr)
		}
	}
	if err := os.Mkdir("sub", 0o755); err == nil {
		_, stderr, code := run(t, "lungs", "ct.nii", "-o", "./sub/../ct.nii")
		if code != 1 || !strings.Contains(stderr, "refusing to overwrite the input") {
			t.Errorf("through sub/..: exit %d, stderr %s", code, stderr)
		}
	}
	for p, want := range inputs {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s changed (%v)", p, err)
		}
	}
}

// TestOutputFolderChecked: an output into a missing folder is refused before
// any work, naming the output (not a temporary file) and the folder.
func TestOutputFolderChecked(t *testing.T) {
	dir, ct, _ := sameFileSetup(t)
	missing := filepath.Join(dir, "no", "such")
	for _, args := range [][]string{
		{"lungs", ct, "-o", filepath.Join(missing, "l.nii.gz")},
		{"convert", ct, filepath.Join(missing, "c.nii.gz")},
		{"segment", ct, "-o", filepath.Join(missing, "s.nii.gz"), "--model", "unused.onnx"},
	} {
		_, stderr, code := run(t, args...)
		if code != 1 || !strings.Contains(stderr, "the folder "+missing+" does not exist") || strings.Contains(stderr, "covseg-tmp") {
			t.Errorf("%v: exit %d, stderr %s", args, code, stderr)
		}
	}
}

// TestStdoutFullFails: a command whose standard output cannot be written
// (/dev/full) exits 1, with or without --json.
func TestStdoutFullFails(t *testing.T) {
	_, ct, mask := sameFileSetup(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("this test needs /dev/full: %v", err)
	}
	defer full.Close()
	for _, args := range [][]string{
		{"info", ct},
		{"info", "--json", ct},
		{"convert", ct, "c.nii.gz"},
		{"lungs", ct, "-o", "l.nii.gz"},
		{"report", "--ct", ct, "--mask", mask},
		{"report", "--json", "--ct", ct, "--mask", mask},
		{"evaluate", "--pred", mask, "--truth", mask},
		{"train", "--print-config"},
	} {
		var errb bytes.Buffer
		code := Execute(args, full, &errb)
		if code != 1 || !strings.Contains(errb.String(), "standard output") {
			t.Errorf("%v: exit %d, stderr %s", args, code, errb.String())
		}
	}
}

// TestNonFiniteVoxels: NaN and ±Inf voxels are counted by info, warned
// about (with their count) and read as -1024 HU by lungs and report, and
// refused with --strict.
func TestNonFiniteVoxels(t *testing.T) {
	dir := t.TempDir()
	v, err := volume.New(volume.Dims{24, 20, 8}, volume.Diag([3]float64{1.5, 1.5, 3}, [3]float64{-30, 10, 50}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range v.Data {
		v.Data[i] = -1000
	}
	v.Data[5] = float32(math.NaN())
	v.Data[77] = float32(math.Inf(1))
	v.Data[300] = float32(math.Inf(-1))
	ct := filepath.Join(dir, "nan.nii.gz")
	if err := nifti.WriteVolume(ct, v, nifti.WriteOptions{Datatype: nifti.Float32}); err != nil {
		t.Fatal(err)
	}
	l, _ := volume.NewLabel(v.Dims, v.Affine)
	mask := filepath.Join(dir, "mask.nii")
	if err := nifti.WriteLabel(mask, l); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := run(t, "info", ct)
	if code != 0 || !strings.Contains(stdout, "non-finite 3") {
		t.Errorf("info: exit %d: %s", code, stdout)
	}
	for _, args := range [][]string{
		{"lungs", ct, "-o", filepath.Join(dir, "l.nii.gz")},
		{"report", "--ct", ct, "--mask", mask},
	} {
		_, stderr, code := run(t, args...)
		if code != 0 || !strings.Contains(stderr, "warning: "+ct+": 3 voxels are NaN or infinite; they are read as -1024 HU") {
			t.Errorf("%v: exit %d, stderr %s", args, code, stderr)
		}
		_, stderr, code = run(t, append(args, "--strict")...)
		if code != 1 || !strings.Contains(stderr, "3 voxels are NaN or infinite (--strict)") {
			t.Errorf("%v --strict: exit %d, stderr %s", args, code, stderr)
		}
	}
	seg := []string{"segment", ct, "-o", filepath.Join(dir, "s.nii.gz"), "--model", thresholdModel(t)}
	_, stderr, code := run(t, seg...)
	if code != 0 || !strings.Contains(stderr, "warning: "+ct+": 3 voxels are NaN or infinite; they are read as -1024 HU") {
		t.Errorf("segment: exit %d, stderr %s", code, stderr)
	}
	_, stderr, code = run(t, append(seg, "--strict")...)
	if code != 1 || !strings.Contains(stderr, "3 voxels are NaN or infinite (--strict)") {
		t.Errorf("segment --strict: exit %d, stderr %s", code, stderr)
	}
}
