package nifti

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
)

// Little-endian field patching for hand-made test files.
func put16(b []byte, off int, v int) { binary.LittleEndian.PutUint16(b[off:], uint16(int16(v))) }
func put32(b []byte, off int, v int) { binary.LittleEndian.PutUint32(b[off:], uint32(int32(v))) }
func put64(b []byte, off int, v int64) {
	binary.LittleEndian.PutUint64(b[off:], uint64(v))
}
func putF32(b []byte, off int, v float64) {
	binary.LittleEndian.PutUint32(b[off:], math.Float32bits(float32(v)))
}

// writeTemp writes v with WriteVolume to name in a fresh folder.
func writeTemp(t testing.TB, name string, v *volume.Volume, opt WriteOptions) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := WriteVolume(p, v, opt); err != nil {
		t.Fatal(err)
	}
	return p
}

// smallInt16 is a 4x3x2 int16-valued volume with an LPS affine.
func smallInt16() *volume.Volume {
	a := volume.Affine{{-0.5, 0, 0, 10}, {0, -0.5, 0, 20}, {0, 0, 2, 30}, {0, 0, 0, 1}}
	return filled(volume.Dims{4, 3, 2}, a, func(i, j, k int) float32 { return float32(i + 4*j + 12*k - 7) })
}

// float32Affine rounds every entry to float32, what a NIfTI-1 sform holds.
func float32Affine(a volume.Affine) volume.Affine {
	for r := range a {
		for c := range a[r] {
			a[r][c] = float64(float32(a[r][c]))
		}
	}
	return a
}

// TestRoundTrip writes volumes with every datatype, both versions, with and
// without gzip, axis-aligned and oblique, and reads them back: voxels must
// be identical, the affine identical (NIfTI-2) or identical to its float32
// rounding (NIfTI-1), and the header as documented.
func TestRoundTrip(t *testing.T) {
	affines := map[string]volume.Affine{
		"lps":     {{-0.75, 0, 0, 190.25}, {0, -0.75, 0, 150.5}, {0, 0, 2.5, -300.75}, {0, 0, 0, 1}},
		"oblique": oblique(rotation([3]float64{0.3, 1, -0.2}, 33), true, [3]float64{0.7031, 0.7031, 1.25}, [3]float64{-167.1, -179.3, -183.123456789}),
	}
	types := []Datatype{Float32, Int16, Uint8, Int8, Uint16, Int32, Uint32, Int64, Uint64, Float64}
	for _, dt := range types {
		for _, version := range []int{1, 2} {
			for _, ext := range []string{".nii", ".nii.gz"} {
				for aname, a := range affines {
					name := fmt.Sprintf("%s_v%d_%s%s", dt, version, aname, ext)
					t.Run(name, func(t *testing.T) {
						lo, hi := -1000.0, 3000.0
						if dt != Float32 && dt != Float64 {
							lo, hi = intRange(dt)
							lo, hi = math.Max(lo, -30000), math.Min(hi, 60000)
						}
						v := filled(volume.Dims{9, 7, 5}, a, func(i, j, k int) float32 {
							x := lo + float64((i*7919+j*104729+k*1299709)%1000)/999*(hi-lo)
							if dt == Float32 || dt == Float64 {
								return float32(x) + 0.25
							}
							return float32(math.Round(x))
						})
						p := writeTemp(t, name, v, WriteOptions{Datatype: dt, Version: version})
						got, h, err := ReadVolume(p)
						if err != nil {
							t.Fatal(err)
						}
						checkRoundTrip(t, v, got, h, dt, version)
						checkQformOnly(t, p, v.Affine, version)
						hh, err := ReadHeader(p)
						if err != nil {
							t.Fatal(err)
						}
						if fmt.Sprint(*hh) != fmt.Sprint(*h) {
							t.Errorf("ReadHeader\n%+v\nReadVolume's header\n%+v", *hh, *h)
						}
					})
				}
			}
		}
	}
}

func checkRoundTrip(t *testing.T, v, got *volume.Volume, h *Header, dt Datatype, version int) {
	t.Helper()
	if got.Dims != v.Dims {
		t.Fatalf("dims %v, wrote %v", got.Dims, v.Dims)
	}
	for i := range v.Data {
		if got.Data[i] != v.Data[i] {
			t.Fatalf("voxel %d is %v, wrote %v", i, got.Data[i], v.Data[i])
		}
	}
	want := v.Affine
	if version == 1 {
		want = float32Affine(want)
	}
	if got.Affine != want {
		t.Errorf("affine\n%v\nwrote\n%v", got.Affine, want)
	}
	if h.Version != version || h.Datatype != dt || h.QformCode != 1 || h.SformCode != 1 ||
		h.XYZTUnits != 2 || h.SpatialUnit() != "mm" || h.ByteOrder != binary.LittleEndian {
		t.Errorf("header %+v", *h)
	}
	tol := 1e-12
	if version == 1 {
		tol = 2e-5
	}
	sp := v.Affine.Spacing()
	for i := 0; i < 3; i++ {
		if math.Abs(h.Pixdim[i+1]-sp[i]) > tol*sp[i] {
			t.Errorf("pixdim %v, spacing %v", h.Pixdim, sp)
		}
	}
	q, err := h.QformAffine()
	if err != nil {
		t.Fatal(err)
	}
	if !q.Equal(v.Affine, tol*200) {
		t.Errorf("qform\n%v\naffine\n%v", q, v.Affine)
	}
}

// checkQformOnly reads the file again with its sform_code set to 0, so that
// the qform gives the affine: for an unsheared affine it must be the same
// to the precision of the quaternion (float32 in NIfTI-1).
func checkQformOnly(t *testing.T, p string, a volume.Affine, version int) {
	t.Helper()
	b := uncompressed(t, p)
	tol := 1e-12
	if version == 1 {
		put16(b, 254, 0)
		tol = 1e-4
	} else {
		put32(b, 348, 0)
	}
	im, err := Decode(p, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if im.Header.SformCode != 0 || im.Header.QformCode != 1 {
		t.Fatalf("codes q %d s %d", im.Header.QformCode, im.Header.SformCode)
	}
	if !im.Affine.Equal(a, tol) {
		t.Errorf("affine from the qform\n%v\nwrote\n%v", im.Affine, a)
	}
}

// TestShearedAffine: the sform keeps a sheared affine; the qform is its
// nearest rotation+zoom form, which differs, and a reader given only the
// qform gets that.
func TestShearedAffine(t *testing.T) {
	a := oblique(rotation([3]float64{1, 0, 0}, 20), false, [3]float64{1, 1, 2}, [3]float64{1, 2, 3})
	a[0][1] += 0.4
	v := filled(volume.Dims{3, 3, 3}, a, func(i, j, k int) float32 { return float32(i * j * k) })
	p := writeTemp(t, "shear.nii", v, WriteOptions{Version: 2})
	got, h, err := ReadVolume(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Affine != a {
		t.Errorf("sform affine\n%v\nwant\n%v", got.Affine, a)
	}
	q, _ := h.QformAffine()
	if q.Equal(a, 0.1) {
		t.Errorf("qform of a sheared affine equals it: %v", q)
	}
	// The qform's directions are orthogonal and its translation the affine's.
	for c1 := 0; c1 < 3; c1++ {
		for c2 := c1 + 1; c2 < 3; c2++ {
			if dot := q[0][c1]*q[0][c2] + q[1][c1]*q[1][c2] + q[2][c1]*q[2][c2]; math.Abs(dot) > 1e-12 {
				t.Errorf("qform columns %d and %d not orthogonal (dot %g)", c1, c2, dot)
			}
		}
		if q[c1][3] != a[c1][3] {
			t.Errorf("qform translation %v, affine %v", q[c1][3], a[c1][3])
		}
	}
}

// TestFlippedAxis catches a flipped or swapped axis: a single marked voxel
// must come back where it was, at the world position the affine gives it,
// whether the reader uses the sform or (sform_code 0) the qform, also with
// qfac -1, and after reorientation to RAS+.
func TestFlippedAxis(t *testing.T) {
	cases := map[string]volume.Affine{
		"LPS": {{-0.5, 0, 0, 10}, {0, -0.5, 0, 20}, {0, 0, 2, 30}, {0, 0, 0, 1}},
		"LAS": {{-0.5, 0, 0, 10}, {0, 0.5, 0, 20}, {0, 0, 2, 30}, {0, 0, 0, 1}}, // qfac -1
		"PIR": {{0, 0, 3, 10}, {-1, 0, 0, 20}, {0, -2, 0, 30}, {0, 0, 0, 1}},
	}
	for name, a := range cases {
		for _, form := range []string{"sform", "qform"} {
			t.Run(name+"_"+form, func(t *testing.T) {
				v := filled(volume.Dims{4, 5, 6}, a, func(i, j, k int) float32 { return 0 })
				v.Set(1, 2, 3, 7)
				p := writeTemp(t, "m.nii", v, WriteOptions{})
				if form == "qform" {
					b, _ := os.ReadFile(p)
					put16(b, 254, 0) // sform_code
					os.WriteFile(p, b, 0o644)
				}
				got, h, err := ReadVolume(p)
				if err != nil {
					t.Fatal(err)
				}
				if form == "qform" && h.SformCode != 0 {
					t.Fatal("sform_code not cleared")
				}
				if got.At(1, 2, 3) != 7 {
					t.Fatalf("marker not at (1, 2, 3)")
				}
				wantWorld := a.Apply([3]float64{1, 2, 3})
				gotWorld := got.Affine.Apply([3]float64{1, 2, 3})
				for i := range wantWorld {
					if math.Abs(gotWorld[i]-wantWorld[i]) > 1e-5 {
						t.Fatalf("marker at world %v, want %v", gotWorld, wantWorld)
					}
				}
				// In RAS+ order the marker's index follows from its world
				// position alone.
				c := got.Canonical()
				inv, _ := c.Affine.Inverse()
				idx := inv.Apply(wantWorld)
				if c.At(int(math.Round(idx[0])), int(math.Round(idx[1])), int(math.Round(idx[2]))) != 7 {
					t.Errorf("canonical volume lost the marker (expected at %v)", idx)
				}
				if c.Affine.AxCodes() != "RAS" {
					t.Errorf("canonical axis codes %s", c.Affine.AxCodes())
				}
			})
		}
	}
}

// TestLabelRoundTrip: masks are written as uint8 and read back exactly.
func TestLabelRoundTrip(t *testing.T) {
	v := smallInt16()
	l := &volume.Label{Dims: v.Dims, Affine: v.Affine, Data: make([]uint8, v.Dims.Len())}
	for i := range l.Data {
		l.Data[i] = uint8(i * 11 % 256)
	}
	for _, name := range []string{"mask.nii", "mask.nii.gz"} {
		p := filepath.Join(t.TempDir(), name)
		if err := WriteLabel(p, l); err != nil {
			t.Fatal(err)
		}
		got, h, err := ReadLabel(p)
		if err != nil {
			t.Fatal(err)
		}
		if h.Datatype != Uint8 || !bytes.Equal(got.Data, l.Data) || got.Affine != l.Affine || got.Dims != l.Dims {
			t.Errorf("%s: read back %v %v %v, header %+v", name, got.Dims, got.Affine, got.Data, *h)
		}
	}
}

// TestReadLabelValues: label values must be integers 0 to 255 (within
// 0.001); others are refused with the voxel named.
func TestReadLabelValues(t *testing.T) {
	v := smallInt16()
	for i := range v.Data {
		v.Data[i] = float32(i % 3)
	}
	v.Data[5] = 1.0004
	p := writeTemp(t, "ok.nii", v, WriteOptions{})
	l, _, err := ReadLabel(p)
	if err != nil {
		t.Fatal(err)
	}
	if l.Data[5] != 1 || l.Data[4] != 1 || l.Data[2] != 2 {
		t.Errorf("labels %v", l.Data)
	}
	for _, bad := range []float32{0.5, 256, -1, float32(math.NaN())} {
		v.Data[5] = bad
		p := writeTemp(t, "bad.nii", v, WriteOptions{})
		_, _, err := ReadLabel(p)
		if err == nil || !strings.Contains(err.Error(), "not label values") || !strings.Contains(err.Error(), "(1, 1, 0)") ||
			!strings.Contains(err.Error(), p) {
			t.Errorf("value %v: error %v", bad, err)
		}
	}
}

// TestWriteRefuses: values an integer type cannot hold, and volumes no file
// can describe, are refused and leave no file behind.
func TestWriteRefuses(t *testing.T) {
	cases := []struct {
		name string
		edit func(v *volume.Volume)
		opt  WriteOptions
		want string
	}{
		{"fraction", func(v *volume.Volume) { v.Data[3] = 0.5 }, WriteOptions{Datatype: Int16}, "voxel (3, 0, 0) holds 0.5, which int16 cannot"},
		{"too big", func(v *volume.Volume) { v.Data[4] = 40000 }, WriteOptions{Datatype: Int16}, "voxel (0, 1, 0) holds 40000"},
		{"NaN", func(v *volume.Volume) { v.Data[0] = float32(math.NaN()) }, WriteOptions{Datatype: Int16}, "holds NaN"},
		{"negative uint8", func(v *volume.Volume) { v.Data[0] = -1 }, WriteOptions{Datatype: Uint8}, "holds -1, which uint8"},
		{"complex", func(v *volume.Volume) {}, WriteOptions{Datatype: Complex64}, "complex64 (code 32) is not supported"},
		{"unknown type", func(v *volume.Volume) {}, WriteOptions{Datatype: 3}, "unknown datatype code 3"},
		{"data size", func(v *volume.Volume) { v.Data = v.Data[1:] }, WriteOptions{}, "has 23 voxels but dims"},
		{"singular", func(v *volume.Volume) { v.Affine[0][0] = 0 }, WriteOptions{}, "singular"},
		{"non-finite affine", func(v *volume.Volume) { v.Affine[1][3] = math.Inf(1) }, WriteOptions{}, "non-finite"},
		{"last row", func(v *volume.Volume) { v.Affine[3][0] = 1 }, WriteOptions{}, "last row"},
		{"version", func(v *volume.Volume) {}, WriteOptions{Version: 3}, "version 3"},
		{"too wide for v1", func(v *volume.Volume) {
			v.Dims = volume.Dims{40000, 1, 1}
			v.Data = make([]float32, 40000)
		}, WriteOptions{Version: 1}, "do not fit NIfTI-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range []string{"x.nii", "x.nii.gz"} {
				v := smallInt16()
				c.edit(v)
				p := filepath.Join(dir, name)
				err := WriteVolume(p, v, c.opt)
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
					t.Errorf("%s: error %v, want one naming the file and saying %q", name, err, c.want)
				}
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("files left behind: %v", left)
			}
		})
	}
}

// TestWideVolumeUsesNifti2: a dimension over 32767 is written as NIfTI-2.
func TestWideVolumeUsesNifti2(t *testing.T) {
	v := filled(volume.Dims{40000, 1, 2}, volume.Identity(), func(i, j, k int) float32 { return float32(i - k) })
	p := writeTemp(t, "wide.nii.gz", v, WriteOptions{Datatype: Int32})
	got, h, err := ReadVolume(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 2 || got.Dims != v.Dims || f32Hash(got.Data) != f32Hash(v.Data) {
		t.Errorf("version %d dims %v", h.Version, got.Dims)
	}
}

// TestBigEndian: a big-endian copy of a file reads to the same image.
func TestBigEndian(t *testing.T) {
	for _, dt := range []Datatype{Int16, Float32, Float64, Uint8} {
		v := smallInt16()
		for i := range v.Data {
			v.Data[i] += 7 // non-negative for uint8
		}
		le := uncompressed(t, writeTemp(t, "le.nii", v, WriteOptions{Datatype: dt}))
		be := toBigEndian(le, dt.Size())
		if bytes.Equal(le, be) {
			t.Fatal("byte swap did nothing")
		}
		for _, name := range []string{"be.nii", "be.nii.gz"} {
			b := be
			if strings.HasSuffix(name, ".gz") {
				b = gz(t, be)
			}
			got, h, err := ReadVolume(writeBytes(t, name, b))
			if err != nil {
				t.Fatal(err)
			}
			if h.ByteOrder != binary.BigEndian || got.Affine != v.Affine || f32Hash(got.Data) != f32Hash(v.Data) {
				t.Errorf("%s %s: order %v affine %v data %v", dt, name, h.ByteOrder, got.Affine, got.Data)
			}
		}
	}
}

// TestScaling: scl_slope and scl_inter are applied as nibabel does.
func TestScaling(t *testing.T) {
	base := uncompressed(t, writeTemp(t, "s.nii", smallInt16(), WriteOptions{Datatype: Int16}))
	raw := smallInt16().Data
	cases := []struct {
		slope, inter float64
		want         func(x float32) float32
	}{
		{2, -1024, func(x float32) float32 { return 2*x - 1024 }},
		{0.1, 0, func(x float32) float32 { return float32(float64(x) * float64(float32(0.1))) }},
		{1, 5, func(x float32) float32 { return x + 5 }},
		{0, 7, func(x float32) float32 { return x }},                    // slope 0: no scaling
		{math.NaN(), 7, func(x float32) float32 { return x }},           // NaN: no scaling
		{math.Inf(1), math.NaN(), func(x float32) float32 { return x }}, // Inf: no scaling
	}
	for _, c := range cases {
		b := append([]byte(nil), base...)
		putF32(b, 112, c.slope)
		putF32(b, 116, c.inter)
		im, err := Decode("scaled.nii", bytes.NewReader(b))
		if err != nil {
			t.Fatalf("slope %v inter %v: %v", c.slope, c.inter, err)
		}
		for i, x := range raw {
			if im.Data[i] != c.want(x) {
				t.Fatalf("slope %v inter %v: voxel %d is %v, want %v", c.slope, c.inter, i, im.Data[i], c.want(x))
			}
		}
	}
}

// TestExtensions: extensions between the header and vox_offset are skipped.
func TestExtensions(t *testing.T) {
	v := smallInt16()
	b := uncompressed(t, writeTemp(t, "e.nii", v, WriteOptions{}))
	ext := make([]byte, 48)
	put32(ext, 0, 48) // esize
	put32(ext, 4, 6)  // ecode: comment
	copy(ext[8:], "an extension that must be skipped")
	withExt := append(append(append([]byte(nil), b[:352]...), ext...), b[352:]...)
	withExt[348] = 1
	putF32(withExt, 108, 400)
	for _, name := range []string{"e.nii", "e.nii.gz"} {
		data := withExt
		if strings.HasSuffix(name, ".gz") {
			data = gz(t, withExt)
		}
		got, h, err := ReadVolume(writeBytes(t, name, data))
		if err != nil {
			t.Fatal(err)
		}
		if h.VoxOffset != 400 || f32Hash(got.Data) != f32Hash(v.Data) {
			t.Errorf("%s: vox_offset %d, data %v", name, h.VoxOffset, got.Data)
		}
	}
}

// TestDimensionality: 4D images are read whole; ReadVolume takes one with
// a single volume (and 2D images) and refuses the rest, naming the dims.
func TestDimensionality(t *testing.T) {
	v := filled(volume.Dims{4, 3, 4}, volume.Identity(), func(i, j, k int) float32 { return float32(i + 10*j + 100*k) })
	base := uncompressed(t, writeTemp(t, "d.nii", v, WriteOptions{}))
	patch := func(dims ...int) []byte {
		b := append([]byte(nil), base...)
		for i := 0; i < 8; i++ {
			put16(b, 40+2*i, 1)
		}
		put16(b, 40, len(dims))
		for i, d := range dims {
			put16(b, 42+2*i, d)
		}
		return b
	}
	p := writeBytes(t, "4d.nii", patch(4, 3, 2, 2))
	im, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if !equalInts(im.Shape, []int{4, 3, 2, 2}) || f32Hash(im.Data) != f32Hash(v.Data) {
		t.Errorf("4D shape %v", im.Shape)
	}
	if _, _, err := ReadVolume(p); err == nil || !strings.Contains(err.Error(), "4D with dims [4 3 2 2]") || !strings.Contains(err.Error(), p) {
		t.Errorf("ReadVolume of 4D: %v", err)
	}
	if _, _, err := ReadLabel(p); err == nil || !strings.Contains(err.Error(), "4D") {
		t.Errorf("ReadLabel of 4D: %v", err)
	}
	got, _, err := ReadVolume(writeBytes(t, "4d1.nii", patch(4, 3, 4, 1)))
	if err != nil || got.Dims != v.Dims {
		t.Errorf("4D with one volume: %v %v", got, err)
	}
	got, _, err = ReadVolume(writeBytes(t, "2d.nii", patch(4, 12)))
	if err != nil || got.Dims != (volume.Dims{4, 12, 1}) {
		t.Errorf("2D: %v %v", got, err)
	}
	got, _, err = ReadVolume(writeBytes(t, "7d.nii", patch(4, 3, 4, 1, 1, 1, 1)))
	if err != nil || got.Dims != v.Dims {
		t.Errorf("7D with singleton dims: %v %v", got, err)
	}
}

// TestGzipVariants: several gzip members and bytes after the last member
// (as gzip(1) accepts) read like a single member.
func TestGzipVariants(t *testing.T) {
	v := smallInt16()
	raw := uncompressed(t, writeTemp(t, "g.nii", v, WriteOptions{}))
	multi := append(gz(t, raw[:100]), gz(t, raw[100:])...)
	trailing := append(gz(t, raw), make([]byte, 64)...)
	for name, b := range map[string][]byte{"multi.nii.gz": multi, "trailing.nii.gz": trailing} {
		got, _, err := ReadVolume(writeBytes(t, name, b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f32Hash(got.Data) != f32Hash(v.Data) {
			t.Errorf("%s: data %v", name, got.Data)
		}
		im, err := Decode(name, bytes.NewReader(b))
		if err != nil || f32Hash(im.Data) != f32Hash(v.Data) {
			t.Errorf("Decode %s: %v", name, err)
		}
	}
}

// TestGzipByContent: compression is found from the bytes, not the name.
func TestGzipByContent(t *testing.T) {
	v := smallInt16()
	raw := uncompressed(t, writeTemp(t, "c.nii", v, WriteOptions{}))
	for name, b := range map[string][]byte{"plain.nii.gz": raw, "packed.nii": gz(t, raw)} {
		got, _, err := ReadVolume(writeBytes(t, name, b))
		if err != nil || f32Hash(got.Data) != f32Hash(v.Data) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
