package dicomseries

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJPEGLossless writes the same stacks uncompressed and as JPEG Lossless
// (split into several fragments) and expects identical volumes.
func TestJPEGLossless(t *testing.T) {
	cases := []struct {
		name                 string
		stored, high, signed int
		ts                   string
		value                func(i, j, k int) uint32
	}{
		{"16-bit signed SV1", 16, 15, 1, tsJPEGLosslessSV1, func(i, j, k int) uint32 {
			return []uint32{0x8000, 0x7FFF, 0, 0xFFFF, 0x1234}[(i+2*j+k)%5] + uint32(i*j)
		}},
		{"12-bit unsigned process 14", 12, 11, 0, tsJPEGLossless, func(i, j, k int) uint32 { return uint32(i*300+j*7+k) & 0xFFF }},
		{"12-bit signed", 12, 11, 1, tsJPEGLosslessSV1, func(i, j, k int) uint32 { return uint32(4096-i*50+j+k) & 0xFFF }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := axialSpec("1.2.826.0.1.20", 9, 11)
			base.bitsStored, base.highBit, base.pixelRep = c.stored, c.high, c.signed
			st := stack{base: base, n: 3, origin: [3]float64{5, 6, 7}, step: 0.5, value: c.value}
			plain, comp := t.TempDir(), t.TempDir()
			writeFiles(t, plain, st.specs(), 1)
			st.edit = func(k int, s *sliceSpec) { s.ts, s.jpeg, s.fragments = c.ts, true, 1+k }
			writeFiles(t, comp, st.specs(), 2)
			want, _, err := Read(plain, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, info, err := Read(comp, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if info.TransferSyntaxes[0] != c.ts || got.Dims != want.Dims || got.Affine != want.Affine {
				t.Fatalf("%v %v %v", info.TransferSyntaxes, got.Dims, got.Affine)
			}
			for i := range want.Data {
				if got.Data[i] != want.Data[i] {
					t.Fatalf("voxel %d: %g from JPEG, %g uncompressed", i, got.Data[i], want.Data[i])
				}
			}
		})
	}
}

func TestJPEGErrors(t *testing.T) {
	t.Run("size mismatch", func(t *testing.T) {
		wantErr(t, 2, func(k int, s *sliceSpec) {
			s.ts, s.jpeg = tsJPEGLosslessSV1, true
			s.jpegW = 1 // the stream is 1x9, the header says 3x3
		}, "JPEG Lossless stream is 1x9")
	})
	t.Run("native data in a JPEG syntax", func(t *testing.T) {
		wantErr(t, 2, func(k int, s *sliceSpec) { s.ts = tsJPEGLosslessSV1 }, "needs encapsulated pixel data")
	})
	t.Run("encapsulated data in a native syntax", func(t *testing.T) {
		wantErr(t, 2, func(k int, s *sliceSpec) { s.jpeg = true }, "needs native pixel data")
	})
	t.Run("corrupt stream", func(t *testing.T) {
		dir := t.TempDir()
		st := stack{base: axialSpec("1.2.826.0.1.21", 8, 8), n: 2, step: 1, value: gradient}
		st.edit = func(k int, s *sliceSpec) { s.ts, s.jpeg = tsJPEGLosslessSV1, true }
		paths := writeFiles(t, dir, st.specs(), 1)
		b, _ := os.ReadFile(paths[1])
		i := strings.LastIndex(string(b), "\xFF\xDA") // start of scan
		for j := i + 14; j < len(b)-20; j++ {
			b[j] = 0xFF // markers where entropy-coded data belongs
		}
		os.WriteFile(paths[1], b, 0o644)
		_, _, err := Read(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), filepath.Base(paths[1])) {
			t.Fatalf("got %v", err)
		}
	})
}
