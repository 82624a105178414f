package ort_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/model"
)

var meta = onnx.Metadata{
	Version:       "test",
	Architecture:  json.RawMessage(`{}`),
	Preprocessing: json.RawMessage(`{}`),
	Classes:       []string{"background", "a", "b"},
}

// affineModel writes a model computing y[c'] = sum_c W[c',c] x[c] + b[c']
// with W = [[1,0],[0,2],[1,1]] and b = [0, 1, -1]: 2 channels in, 3 out.
func affineModel(t *testing.T) string {
	t.Helper()
	w := map[string]onnx.Tensor{
		"c.weight": {Shape: []int{3, 2, 1, 1, 1}, Data: []float32{1, 0, 0, 2, 1, 1}},
		"c.bias":   {Shape: []int{3}, Data: []float32{0, 1, -1}},
	}
	spec := model.ConvSpec{In: 2, Out: 3, Kernel: [3]int{1, 1, 1}, Stride: [3]int{1, 1, 1}, Bias: true}
	path := filepath.Join(t.TempDir(), "affine.onnx")
	m, err := onnx.Build(func(o model.Ops[string], x string) string { return o.Conv3d("c", x, spec) }, 2, w, meta, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

func affine(x []float32, shape [5]int64) []float32 {
	n, sp := int(shape[0]), int(shape[2]*shape[3]*shape[4])
	y := make([]float32, n*3*sp)
	for b := range n {
		for i := range sp {
			x0, x1 := x[(b*2)*sp+i], x[(b*2+1)*sp+i]
			y[(b*3)*sp+i] = x0
			y[(b*3+1)*sp+i] = 2*x1 + 1
			y[(b*3+2)*sp+i] = x0 + x1 - 1
		}
	}
	return y
}

func ramp(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%17) - 8
	}
	return x
}

func open(t *testing.T, path string, opts ort.Options) *ort.Session {
	t.Helper()
	s, err := ort.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRunDynamicShapes(t *testing.T) {
	s := open(t, affineModel(t), ort.Options{})
	if s.Threads() != runtime.NumCPU() {
		t.Errorf("default threads %d, want runtime.NumCPU() = %d", s.Threads(), runtime.NumCPU())
	}
	if v := ort.LibraryVersion(); v == "" {
		t.Error("no library version while a session is open")
	} else {
		t.Logf("ONNX Runtime %s", v)
	}
	for _, shape := range [][5]int64{{1, 2, 1, 1, 1}, {2, 2, 3, 5, 7}, {1, 2, 20, 1, 33}, {3, 2, 2, 2, 2}} {
		x := ramp(int(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]))
		y, ys, err := s.Run(x, shape)
		if err != nil {
			t.Fatal(err)
		}
		if want := [5]int64{shape[0], 3, shape[2], shape[3], shape[4]}; ys != want {
			t.Fatalf("output shape %v, want %v", ys, want)
		}
		want := affine(x, shape)
		for i := range want {
			if y[i] != want[i] {
				t.Fatalf("shape %v: y[%d] = %v, want %v", shape, i, y[i], want[i])
			}
		}
	}
}

func TestRunConcurrent(t *testing.T) {
	s := open(t, affineModel(t), ort.Options{Threads: 1})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shape := [5]int64{1, 2, int64(g + 1), 4, 5}
			x := ramp(int(2 * (g + 1) * 20))
			for range 20 {
				y, _, err := s.Run(x, shape)
				if err != nil {
					errs <- err.Error()
					return
				}
				want := affine(x, shape)
				for i := range want {
					if y[i] != want[i] {
						errs <- "wrong value"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestMetadata(t *testing.T) {
	s := open(t, affineModel(t), ort.Options{Threads: 1})
	m, err := onnx.ParseMetadata(s.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "test" || strings.Join(m.Classes, ",") != "background,a,b" {
		t.Errorf("metadata %+v", m)
	}
	s.Metadata()[onnx.KeyVersion] = "changed"
	if s.Metadata()[onnx.KeyVersion] != "test" {
		t.Error("Metadata returns the session's own map")
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	s := open(t, affineModel(t), ort.Options{Threads: 1})
	cases := []struct {
		n     int
		shape [5]int64
		want  string
	}{
		{10, [5]int64{1, 2, 1, 1, 4}, "needs 8 values, got 10"},
		{6, [5]int64{1, 3, 1, 1, 2}, "takes 2 channels, the input has 3"},
		{0, [5]int64{1, 2, 0, 1, 1}, "bad input shape"},
		{4, [5]int64{1, 2, -1, -1, 2}, "bad input shape"},
		{1, [5]int64{1 << 20, 1 << 20, 1 << 20, 1, 1}, "bad input shape"},
	}
	for _, c := range cases {
		_, _, err := s.Run(make([]float32, c.n), c.shape)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("shape %v with %d values: error %v, want %q", c.shape, c.n, err, c.want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := s.Run(make([]float32, 2), [5]int64{1, 2, 1, 1, 1}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close: %v", err)
	}
}

func TestTwoSessions(t *testing.T) {
	path := affineModel(t)
	a, err := ort.Open(path, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, path, ort.Options{Threads: 1})
	a.Close()
	shape := [5]int64{1, 2, 1, 2, 3}
	if _, _, err := b.Run(ramp(12), shape); err != nil {
		t.Fatalf("second session after the first closed: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not protobuf\xff\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(dir, "two.onnx")
	b := onnx.NewBuilder(nil)
	x, y := b.Input("x", 1), b.Input("y", 1)
	b.Output(b.Add(x, y), "z")
	m, err := b.Model(meta, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := onnx.Write(two, m); err != nil {
		t.Fatal(err)
	}
	good := affineModel(t)
	notLib := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(notLib, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, path string
		opts       ort.Options
		env        string
		want       []string
	}{
		{"missing model", filepath.Join(dir, "none.onnx"), ort.Options{}, "", []string{"none.onnx"}},
		{"garbage", garbage, ort.Options{}, "", []string{garbage, "not an ONNX model"}},
		{"two inputs", two, ort.Options{}, "", []string{two, "2 inputs"}},
		{"missing library", good, ort.Options{LibraryPath: filepath.Join(dir, "nolib.so")}, "", []string{"nolib.so", "scripts/setup", ort.EnvLibrary}},
		{"missing library from env", good, ort.Options{}, filepath.Join(dir, "nolib.so"), []string{"nolib.so", "from " + ort.EnvLibrary, "scripts/setup"}},
		{"not a library", good, ort.Options{LibraryPath: notLib}, "", []string{notLib, "scripts/setup"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv(ort.EnvLibrary, c.env)
			}
			s, err := ort.Open(c.path, c.opts)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			t.Log(err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("library nowhere", func(t *testing.T) {
		t.Setenv(ort.EnvLibrary, "")
		t.Chdir(t.TempDir())
		_, err := ort.Open(good, ort.Options{})
		if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "scripts/setup") {
			t.Errorf("error %v", err)
		}
		t.Log(err)
	})
	// After the failures the default library still loads.
	open(t, good, ort.Options{Threads: 1})
}
