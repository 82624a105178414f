package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/model/torchpth"
)

// TestModelInitInfo creates a narrow model and reads it back.
func TestModelInitInfo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.ckpt")
	out, errs, code := run(t, "model", "init", "--width", "0.03125", "--classes", "3", "--seed", "5",
		"--grid", "16,64,64", "-o", path)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "wrote "+path) {
		t.Errorf("init printed %q", out)
	}
	out, errs, code = run(t, "model", "info", path)
	if code != 0 {
		t.Fatalf("info: exit %d: %s", code, errs)
	}
	for _, want := range []string{"r3d18-unet3d", "width         0.03125", "classes 3: background, class1, class2",
		"random initialisation (seed 5)", "16x64x64", "encoder", "bridge", "decoder", "head", "total"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	cfg, _, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Classes != 3 || cfg.Preprocess.Grid != [3]int{16, 64, 64} || cfg.Encoder.Seed != 5 {
		t.Errorf("loaded config %+v", cfg)
	}
}

// TestModelInitPretrained builds the full network with the encoder from the
// shared r3d_18 fixture (torchvision's file format) and checks that the
// stem's kernel is torchvision's summed over RGB.
func TestModelInitPretrained(t *testing.T) {
	testutil.Long(t)
	pth := testutil.Shared(t, "fixtures", "r3d18", "r3d_18.pth")
	if _, err := os.Stat(pth); err != nil {
		t.Fatalf("shared fixture missing: %v", err)
	}
	path := filepath.Join(t.TempDir(), "full.ckpt")
	if _, errs, code := run(t, "model", "init", "--pretrained", pth, "-o", path); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	out, _, _ := run(t, "model", "info", path)
	for _, want := range []string{"total          95,325,440", "encoder        33,147,456", "torchvision weights r3d_18.pth (sha256 "} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	_, ctx, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := torchpth.ReadStateDict(pth)
	if err != nil {
		t.Fatal(err)
	}
	got, shape, err := model.Float32Value(ctx, "stem.0.weight")
	if err != nil {
		t.Fatal(err)
	}
	w := sd.Tensors["stem.0.weight"]
	if !slices.Equal(shape, []int{64, 1, 3, 7, 7}) {
		t.Fatalf("stem shape %v", shape)
	}
	const k = 3 * 7 * 7
	for o := range 64 {
		for i := range k {
			want := w.F32[(o*3)*k+i] + w.F32[(o*3+1)*k+i] + w.F32[(o*3+2)*k+i]
			if d := got[o*k+i] - want; d > 1e-6 || d < -1e-6 {
				t.Fatalf("stem[%d,0,%d] = %v, want %v", o, i, got[o*k+i], want)
			}
		}
	}
	got, _, _ = model.Float32Value(ctx, "layer4.1.conv2.1.running_var")
	if !slices.Equal(got, sd.Tensors["layer4.1.conv2.1.running_var"].F32) {
		t.Error("layer4.1.conv2.1.running_var differs from the file")
	}
}

// TestModelErrors: wrong arguments and files give errors naming the problem.
func TestModelErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pth")
	os.WriteFile(junk, []byte("junk"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"model", "init"}, "-o MODEL.ckpt is required"},
		{[]string{"model", "init", "--width", "0.3", "-o", filepath.Join(dir, "a")}, "width 0.3"},
		{[]string{"model", "init", "--width", "0.5", "--pretrained", junk, "-o", filepath.Join(dir, "b")}, junk},
		{[]string{"model", "init", "--grid", "20,224", "-o", filepath.Join(dir, "c")}, "--grid"},
		{[]string{"model", "init", "--class-names", "a,b,c", "-o", filepath.Join(dir, "d")}, "3 class names for 2 classes"},
		{[]string{"model", "info", junk}, "not a covseg model file"},
		{[]string{"model", "info", filepath.Join(dir, "none")}, "no such file"},
	}
	for _, c := range cases {
		_, errs, code := run(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to say %q", c.args, code, errs, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("failed commands left %d files", len(entries)-1)
	}
}
