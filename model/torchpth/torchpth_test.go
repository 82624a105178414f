package torchpth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type expectedTensor struct {
	DType  string    `json:"dtype"`
	Shape  []int     `json:"shape"`
	Values []float64 `json:"values"`
}

// TestReadStateDictFormats reads the same state_dict saved in both torch.save
// formats (made by tools/make_torch_testdata.py) and compares every tensor,
// including strided views, 0-d tensors and every element type.
func TestReadStateDictFormats(t *testing.T) {
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	exp := map[string]expectedTensor{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&exp); err != nil {
		t.Fatal(err)
	}
	// json maps lose order; recover the file order from the raw text.
	for _, line := range strings.Split(string(raw), "\n") {
		if k, ok := strings.CutPrefix(line, "\""); ok && strings.HasSuffix(line, "\": {") {
			keys = append(keys, strings.TrimSuffix(k, "\": {"))
		}
	}
	for _, file := range []string{"small_zip.pth", "small_legacy.pth"} {
		t.Run(file, func(t *testing.T) {
			sd, err := ReadStateDict(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sd.Keys, keys) {
				t.Fatalf("keys %v, want %v", sd.Keys, keys)
			}
			for name, e := range exp {
				got := sd.Tensors[name]
				if got.DType != e.DType || !slices.Equal(got.Shape, e.Shape) {
					t.Errorf("%s: %s%v, want %s%v", name, got.DType, got.Shape, e.DType, e.Shape)
					continue
				}
				for i, want := range e.Values {
					var v float64
					if got.F32 != nil {
						v = float64(got.F32[i])
					} else {
						v = float64(got.I64[i])
					}
					if float32(v) != float32(want) {
						t.Errorf("%s[%d] = %v, want %v", name, i, v, want)
						break
					}
				}
			}
		})
	}
}

// TestReadStateDictErrors checks that wrong files fail with a message that
// says what is wrong.
func TestReadStateDictErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("testdata/small_zip.pth")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile("testdata/small_legacy.pth")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	zipOf := func(files map[string][]byte) []byte {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		for name, b := range files {
			f, _ := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
			f.Write(b)
		}
		w.Close()
		return buf.Bytes()
	}
	// Flip a byte of the first value of conv.weight where it is stored.
	sd, err := ReadStateDict("testdata/small_zip.pth")
	if err != nil {
		t.Fatal(err)
	}
	corrupt := slices.Clone(good)
	first := binary.LittleEndian.AppendUint32(nil, math.Float32bits(sd.Tensors["conv.weight"].F32[0]))
	i := bytes.Index(corrupt, first)
	if i < 0 {
		t.Fatal("conv.weight's first value not found in the file")
	}
	corrupt[i] ^= 0xff
	cases := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "nope.pth"), "no such file"},
		{"empty", write("empty.pth", nil), "too short"},
		{"text", write("text.pth", []byte("hello, world\n")), "neither a zip"},
		{"truncated zip", write("trunc.pth", good[:len(good)/2]), "not a valid zip"},
		{"truncated legacy", write("trunc_legacy.pth", legacy[:len(legacy)-100]), "ends early"},
		{"zip without pickle", write("nopkl.pth", zipOf(map[string][]byte{"a/x": {1}})), "without data.pkl"},
		{"torchscript", write("ts.pth", zipOf(map[string][]byte{"a/data.pkl": {'.'}, "a/constants.pkl": {'.'}})), "TorchScript"},
		{"bad pickle", write("badpkl.pth", zipOf(map[string][]byte{"a/data.pkl": {0x80, 2, 'X', 0xff, 0xff, 0xff, 0x7f}})), "runs past the end"},
		{"corrupt storage", write("crc.pth", corrupt), "checksum"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadStateDict(c.path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Fatalf("error %v, want one naming %s and saying %q", err, c.path, c.want)
			}
		})
	}
}

// FuzzReadStateDict feeds mutated torch files to the reader: it may refuse
// them, but must neither panic nor allocate beyond what the input holds.
func FuzzReadStateDict(f *testing.F) {
	for _, name := range []string{"small_zip.pth", "small_legacy.pth"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x80, 2, '.'})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.pth")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sd, err := ReadStateDict(p)
		if err == nil {
			for _, k := range sd.Keys {
				tt := sd.Tensors[k]
				if len(tt.F32)+len(tt.I64) != tt.Size() {
					t.Fatalf("%s: %d values for shape %v", k, len(tt.F32)+len(tt.I64), tt.Shape)
				}
			}
		}
	})
}
