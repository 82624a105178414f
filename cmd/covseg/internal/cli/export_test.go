package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/ort"
)

// TestModelExport exports a narrow model and runs the result in ONNX Runtime
// at two input sizes.
func TestModelExport(t *testing.T) {
	dir := t.TempDir()
	ckpt, out := filepath.Join(dir, "m.ckpt"), filepath.Join(dir, "m.onnx")
	if _, errs, code := run(t, "model", "init", "--width", "0.0625", "--classes", "3", "-o", ckpt); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	stdout, errs, code := run(t, "model", "export", ckpt, "-o", out)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "wrote "+out) || !strings.Contains(stdout, "opset 17") {
		t.Errorf("export printed %q", stdout)
	}
	meta, err := onnx.ReadMetadata(out)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Version != Version || strings.Join(meta.Classes, ",") != "background,class1,class2" ||
		!strings.Contains(string(meta.Preprocessing), `"grid":[20,224,224]`) || !strings.Contains(string(meta.Architecture), `"width":0.0625`) {
		t.Errorf("metadata %+v, architecture %s, preprocessing %s", meta, meta.Architecture, meta.Preprocessing)
	}
	s, err := ort.Open(out, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, shape := range [][5]int64{{1, 1, 5, 19, 23}, {2, 1, 4, 16, 16}} {
		x := make([]float32, shape[0]*shape[2]*shape[3]*shape[4])
		for i := range x {
			x[i] = float32(i%7) / 7
		}
		y, ys, err := s.Run(x, shape)
		if err != nil {
			t.Fatal(err)
		}
		if want := [5]int64{shape[0], 3, shape[2], shape[3], shape[4]}; ys != want || len(y) != int(want[0]*3*want[2]*want[3]*want[4]) {
			t.Errorf("input %v: output %v (%d values), want %v", shape, ys, len(y), want)
		}
	}
}

func TestModelExportErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ckpt")
	if err := os.WriteFile(bad, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"model", "export", bad}, "-o MODEL.onnx is required"},
		{[]string{"model", "export", filepath.Join(dir, "none.ckpt"), "-o", filepath.Join(dir, "x.onnx")}, "none.ckpt"},
		{[]string{"model", "export", bad, "-o", filepath.Join(dir, "x.onnx")}, "bad.ckpt"},
		{[]string{"model", "export"}, "accepts 1 arg"},
	} {
		_, errs, code := run(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", c.args, code, errs, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.onnx")); !os.IsNotExist(err) {
		t.Errorf("a failed export left x.onnx behind: %v", err)
	}
}
