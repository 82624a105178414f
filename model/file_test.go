package model

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// savedModel writes a narrow model with an optimiser-like variable beside it
// and returns the file, its config and context.
func savedModel(t testing.TB, dir string) (string, Config, *context.Context) {
	cfg := narrow(2)
	cfg.Encoder.Seed = 7
	ctx, err := NewContext(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	// Optimiser state lives in other scopes; it must survive a save.
	ctx.InAbsPath("/optimizers/adam").Checked(false).VariableWithValue("step", int64(42)).SetTrainable(false)
	ctx.InAbsPath("/optimizers/adam/m").Checked(false).VariableWithValue("b1.up.0.weight", []float32{1, 2, 3}).SetTrainable(false)
	path := filepath.Join(dir, "m.ckpt")
	if err := Save(path, cfg, ctx); err != nil {
		t.Fatal(err)
	}
	return path, cfg, ctx
}

// TestSaveLoad: save → load gives the same config, variables, trainable
// flags and identical outputs.
func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path, cfg, ctx := savedModel(t, dir)
	cfg2, ctx2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg2.ClassNames, cfg.ClassNames) || cfg2.Width != cfg.Width || cfg2.Encoder != cfg.Encoder ||
		cfg2.Preprocess != cfg.Preprocess {
		t.Errorf("config %+v, want %+v", cfg2, cfg)
	}
	if ctx2.NumVariables() != ctx.NumVariables() {
		t.Fatalf("%d variables, want %d", ctx2.NumVariables(), ctx.NumVariables())
	}
	for v := range ctx.IterVariables() {
		v2 := ctx2.GetVariableByScopeAndName(v.Scope(), v.Name())
		if v2 == nil || v2.Trainable != v.Trainable || !v2.Shape().Equal(v.Shape()) {
			t.Fatalf("%s: loaded as %v", v.ScopeAndName(), v2)
		}
		a, b := v.MustValue(), v2.MustValue()
		if !a.Equal(b) {
			t.Fatalf("%s: values differ", v.ScopeAndName())
		}
	}
	if got := ctx2.GetVariableByScopeAndName("/optimizers/adam", "step").MustValue().Value(); got != int64(42) {
		t.Errorf("optimiser step %v, want 42", got)
	}
	x := randomInput(2, 1, 1, 5, 17, 19)
	var outs [][]float32
	for _, c := range []*context.Context{ctx, ctx2} {
		r, err := NewRunner(testBackend(), c, cfg2)
		if err != nil {
			t.Fatal(err)
		}
		y, err := r.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, flat(t, y))
	}
	if !slices.Equal(outs[0], outs[1]) {
		t.Error("outputs differ after save → load")
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after a save, want 1", len(entries))
	}
}

// rewriteZip copies a model file, letting edit change each entry.
func rewriteZip(t testing.TB, src, dst string, edit func(name string, b []byte) []byte) {
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		r, _ := f.Open()
		b, _ := io.ReadAll(r)
		r.Close()
		if b = edit(f.Name, b); b == nil {
			continue
		}
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		w.Write(b)
	}
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadErrors: truncated, corrupt and foreign files fail clearly.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := savedModel(t, dir)
	good, _ := os.ReadFile(path)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	editManifest := func(name string, f func(m map[string]any)) string {
		p := filepath.Join(dir, name)
		rewriteZip(t, path, p, func(n string, b []byte) []byte {
			if n != manifestName {
				return b
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			f(m)
			out, _ := json.Marshal(m)
			return out
		})
		return p
	}
	// A byte flipped inside a tensor: zip's own CRC or the manifest's catches it.
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)/3] ^= 0x55
	cases := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "none.ckpt"), "no such file"},
		{"text", write("text.ckpt", []byte("not a model")), "not a covseg model file"},
		{"truncated", write("trunc.ckpt", good[:len(good)-1000]), "not a covseg model file"},
		{"corrupt", write("corrupt.ckpt", corrupt), "checksum"},
		{"no manifest", func() string {
			p := filepath.Join(dir, "noman.ckpt")
			rewriteZip(t, path, p, func(n string, b []byte) []byte {
				if n == manifestName {
					return nil
				}
				return b
			})
			return p
		}(), "no manifest.json"},
		{"other format", editManifest("fmt.ckpt", func(m map[string]any) { m["format"] = "gomlx-checkpoint" }), "format \"gomlx-checkpoint\""},
		{"other architecture", editManifest("arch.ckpt", func(m map[string]any) {
			m["config"].(map[string]any)["arch"] = "unet2d"
		}), "architecture \"unet2d\""},
		{"other width", editManifest("width.ckpt", func(m map[string]any) {
			m["config"].(map[string]any)["width"] = 0.0625
		}), "variables do not match"},
		{"absurd shape", editManifest("shape.ckpt", func(m map[string]any) {
			v := m["variables"].([]any)[0].(map[string]any)
			v["shape"] = []int{1 << 30, 1 << 30, 1 << 30}
		}), "bad shape"},
		{"newer version", editManifest("ver.ckpt", func(m map[string]any) { m["version"] = 2 }), "version 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Load(c.path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if !strings.Contains(err.Error(), c.path) && !strings.Contains(err.Error(), filepath.Base(c.path)) {
				t.Errorf("error %v does not name the file", err)
			}
		})
	}
	// Save refuses a context that does not hold the model of cfg.
	cfg := narrow(2)
	ctx, _ := NewContext(cfg, 1, PartEncoder)
	if err := Save(filepath.Join(dir, "partial.ckpt"), cfg, ctx); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("saving an encoder-only context: %v", err)
	}
}

// FuzzLoad feeds damaged model files to Load: errors are fine, panics and
// unbounded allocations are not. A whole model file is hundreds of KB, which
// makes Go's byte-level mutator crawl (about one execution every few
// seconds), so the fuzzer mutates a small patch instead: patch is written
// over a valid file at offset at (counted from the end when the high bit is
// set, where the zip directory and manifest live), and cut, when not zero,
// truncates the result.
func FuzzLoad(f *testing.F) {
	dir := f.TempDir()
	path, _, _ := savedModel(f, dir)
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, uint32(0), uint32(0))
	f.Add([]byte{}, uint32(0), uint32(len(good)/2))
	f.Add([]byte("covseg-model"), uint32(1<<31|2000), uint32(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f}, uint32(1<<31|40), uint32(0))
	f.Fuzz(func(t *testing.T, patch []byte, at, cut uint32) {
		b := damaged(good, patch, at, cut)
		p := filepath.Join(dir, "fuzz.ckpt")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, ctx, err := Load(p)
		if err == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("loaded an invalid config: %v", err)
			}
			if _, _, err := Float32Value(ctx, "out.1.running_var"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// damaged returns a copy of good with patch written at offset at (from the
// end when at's high bit is set) and, when cut is not zero, cut to cut modulo
// its length.
func damaged(good, patch []byte, at, cut uint32) []byte {
	b := slices.Clone(good)
	off := int(at&(1<<31-1)) % len(b)
	if at&(1<<31) != 0 {
		off = len(b) - 1 - off
	}
	copy(b[off:], patch)
	if cut != 0 {
		b = b[:int(cut)%len(b)]
	}
	return b
}
