package nifti

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
)

// sharedDir is the project's shared fixtures, beside the repository.
var sharedDir = testutil.SharedPath()

// readJSON decodes a JSON file into v, failing the test if it is missing.
func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// f32Hash is the sha256 of float32 values, little-endian.
func f32Hash(data []float32) string {
	b := make([]byte, 4*len(data))
	for i, x := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// affineFrom converts a JSON 4x4 matrix.
func affineFrom(t testing.TB, m [][]float64) volume.Affine {
	t.Helper()
	var a volume.Affine
	if len(m) != 4 {
		t.Fatalf("affine has %d rows", len(m))
	}
	for r := range m {
		copy(a[r][:], m[r])
	}
	return a
}

// stats are min, max, mean and sum of the finite values, and how many are not.
type stats struct {
	min, max, mean, sum float64
	nonfinite           int
}

func statsOf(data []float32) stats {
	s := stats{min: math.Inf(1), max: math.Inf(-1)}
	n := 0
	for _, x := range data {
		v := float64(x)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			s.nonfinite++
			continue
		}
		s.min, s.max = math.Min(s.min, v), math.Max(s.max, v)
		s.sum += v
		n++
	}
	s.mean = s.sum / float64(n)
	return s
}

// near reports whether a and b agree to a relative tolerance.
func near(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// uncompressed returns the NIfTI bytes of a .nii or .nii.gz file.
func uncompressed(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gz compresses b.
func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeBytes writes b to a file named name in a fresh temporary folder.
func writeBytes(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// nifti1Fields lists (offset, size) of every numeric field of the NIfTI-1
// header, from nifti1.h, for byte-swapping a file in tests independently of
// the package's own layout code.
var nifti1Fields = func() [][2]int {
	f := [][2]int{{0, 4}, {32, 4}, {36, 2}}
	for i := 0; i < 8; i++ {
		f = append(f, [2]int{40 + 2*i, 2}, [2]int{76 + 4*i, 4})
	}
	f = append(f, [2]int{56, 4}, [2]int{60, 4}, [2]int{64, 4}, [2]int{68, 2}, [2]int{70, 2}, [2]int{72, 2},
		[2]int{74, 2}, [2]int{108, 4}, [2]int{112, 4}, [2]int{116, 4}, [2]int{120, 2}, [2]int{124, 4},
		[2]int{128, 4}, [2]int{132, 4}, [2]int{136, 4}, [2]int{140, 4}, [2]int{144, 4}, [2]int{252, 2},
		[2]int{254, 2})
	for off := 256; off < 328; off += 4 { // quatern, qoffset, srow
		f = append(f, [2]int{off, 4})
	}
	return f
}()

// toBigEndian converts a little-endian single-file NIfTI-1 image with
// voxels of esize bytes at offset 352 into big-endian.
func toBigEndian(le []byte, esize int) []byte {
	b := append([]byte(nil), le...)
	rev := func(p []byte) {
		for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
			p[i], p[j] = p[j], p[i]
		}
	}
	for _, f := range nifti1Fields {
		rev(b[f[0] : f[0]+f[1]])
	}
	for off := 352; off+esize <= len(b); off += esize {
		rev(b[off : off+esize])
	}
	return b
}
