package nifti

import (
	"bytes"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
)

// TestBadInput: damaged or absurd files are refused with an error naming
// the file and the problem, by Read, ReadVolume, ReadLabel and Decode (and
// ReadHeader where the problem is in the header), never with a panic.
func TestBadInput(t *testing.T) {
	v1 := uncompressed(t, writeTemp(t, "v1.nii", smallInt16(), WriteOptions{Datatype: Int16}))
	v2 := uncompressed(t, writeTemp(t, "v2.nii", smallInt16(), WriteOptions{Datatype: Int16, Version: 2}))
	edit := func(base []byte, f func(b []byte)) []byte {
		b := append([]byte(nil), base...)
		f(b)
		return b
	}
	v1gz := gz(t, v1)
	// A header claiming 1024³ int16 voxels, in a small gzip stream.
	huge := gz(t, edit(v1, func(b []byte) {
		put16(b, 42, 1024)
		put16(b, 44, 1024)
		put16(b, 46, 1024)
	}))
	badCRC := append([]byte(nil), v1gz...)
	badCRC[len(badCRC)-8] ^= 0xff

	cases := []struct {
		name   string
		data   []byte
		want   string
		header bool // ReadHeader sees it too
	}{
		{"empty", nil, "truncated header", true},
		{"short header", v1[:200], "truncated header: the file ends after 200 bytes", true},
		{"short header v2", v2[:500], "truncated header: the file ends after 500 bytes", true},
		{"short data", v1[:len(v1)-10], "truncated voxel data", true},
		{"no data", v1[:352], "truncated voxel data", true},
		{"not nifti", bytes.Repeat([]byte("hello world "), 40), "not a NIfTI-1 or NIfTI-2 file (sizeof_hdr is", true},
		{"bad magic", edit(v1, func(b []byte) { copy(b[344:], "n+3\x00") }), `bad NIfTI-1 magic "n+3"`, true},
		{"analyze", edit(v1, func(b []byte) { copy(b[344:], "\x00\x00\x00\x00") }), "Analyze 7.5", true},
		{"pair", edit(v1, func(b []byte) { copy(b[344:], "ni1\x00") }), "header/image pair", true},
		{"bad magic v2", edit(v2, func(b []byte) { copy(b[4:], "n+1\x00") }), `bad NIfTI-2 magic "n+1"`, true},
		{"newline damage v2", edit(v2, func(b []byte) { b[8] = '\n' }), "newline conversion", true},
		{"dim0 zero", edit(v1, func(b []byte) { put16(b, 40, 0) }), "dim[0] is 0", true},
		{"dim0 eight", edit(v1, func(b []byte) { put16(b, 40, 8) }), "dim[0] is 8", true},
		{"dim0 negative", edit(v1, func(b []byte) { put16(b, 40, -3) }), "dim[0] is -3", true},
		{"dim zero", edit(v1, func(b []byte) { put16(b, 44, 0) }), "dimension 2 has size 0", true},
		{"dim negative", edit(v1, func(b []byte) { put16(b, 46, -5) }), "dimension 3 has size -5", true},
		{"too many voxels v1", edit(v1, func(b []byte) {
			put16(b, 40, 4)
			for i := 1; i <= 4; i++ {
				put16(b, 40+2*i, 32767)
			}
		}), "hold more than 2147483648 voxels", true},
		{"too many voxels v2", edit(v2, func(b []byte) {
			for i := 1; i <= 3; i++ {
				put64(b, 16+8*i, 1<<40)
			}
		}), "hold more than 2147483648 voxels", true},
		{"dims overflow v2", edit(v2, func(b []byte) { put64(b, 24, math.MaxInt64) }), "hold more than", true},
		{"unknown datatype", edit(v1, func(b []byte) { put16(b, 70, 3) }), "unknown datatype code 3", true},
		{"datatype zero", edit(v1, func(b []byte) { put16(b, 70, 0) }), "unknown datatype code 0", true},
		{"complex", edit(v1, func(b []byte) { put16(b, 70, 32); put16(b, 72, 64) }), "complex64 (code 32) is not supported", true},
		{"rgb", edit(v1, func(b []byte) { put16(b, 70, 128); put16(b, 72, 24) }), "RGB24 (code 128) is not supported", true},
		{"float128", edit(v1, func(b []byte) { put16(b, 70, 1536); put16(b, 72, 128) }), "float128 (code 1536) is not supported", true},
		{"bitpix", edit(v1, func(b []byte) { put16(b, 72, 8) }), "bitpix is 8 but datatype int16 has 16 bits", true},
		{"bitpix v2", edit(v2, func(b []byte) { put16(b, 14, 32) }), "bitpix is 32 but datatype int16", true},
		{"vox_offset zero", edit(v1, func(b []byte) { putF32(b, 108, 0) }), "vox_offset 0 lies inside the header", true},
		{"vox_offset small", edit(v1, func(b []byte) { putF32(b, 108, 100) }), "vox_offset 100 lies inside", true},
		{"vox_offset NaN", edit(v1, func(b []byte) { putF32(b, 108, math.NaN()) }), "bad vox_offset NaN", true},
		{"vox_offset negative", edit(v1, func(b []byte) { putF32(b, 108, -400) }), "bad vox_offset -400", true},
		{"vox_offset negative v2", edit(v2, func(b []byte) { put64(b, 168, -1) }), "bad vox_offset -1", true},
		{"vox_offset beyond", edit(v1, func(b []byte) { putF32(b, 108, 1e6) }), "vox_offset 1000000 lies beyond the end of the file", true},
		{"vox_offset beyond v2", edit(v2, func(b []byte) { put64(b, 168, 1<<40) }), "lies beyond the end of the file", true},
		{"vox_offset beyond gz", gz(t, edit(v1, func(b []byte) { putF32(b, 108, 5000) })), "truncated the extensions before vox_offset: the gzip stream ends after 400 bytes", false},
		{"inter infinite", edit(v1, func(b []byte) { putF32(b, 112, 2); putF32(b, 116, math.Inf(-1)) }), "scl_slope is 2 but scl_inter is -Inf", true},
		{"qform not unit", edit(v1, func(b []byte) {
			put16(b, 254, 0)
			putF32(b, 256, 0.8)
			putF32(b, 260, 0.8)
		}), "not a unit quaternion", false},
		{"sform NaN", edit(v1, func(b []byte) { putF32(b, 284, math.NaN()) }), "the sform holds a non-finite value (NaN at row 0, column 1)", false},
		{"qform offset Inf", edit(v1, func(b []byte) { put16(b, 254, 0); putF32(b, 272, math.Inf(1)) }), "the qform holds a non-finite value", false},
		{"singular sform", edit(v1, func(b []byte) {
			for off := 280; off < 328; off += 4 {
				putF32(b, off, 0)
			}
		}), "singular", false},
		{"gzip cut", v1gz[:len(v1gz)/2], "truncated", false},
		{"gzip cut in header", v1gz[:30], "truncated header", true},
		{"gzip no trailer", v1gz[:len(v1gz)-8], "corrupt gzip stream after the voxel data", false},
		{"gzip bad checksum", badCRC, "corrupt gzip stream after the voxel data: gzip: invalid checksum", false},
		{"gzip bad header", []byte{0x1f, 0x8b, 9, 9, 9, 9}, "bad gzip header", true},
		{"gzip claims too much", huge, "a gzip stream of this size holds at most", true},
	}
	// Decode, not knowing the size up front, finds some problems only when
	// the data runs out, and says so.
	decodeWant := map[string]string{
		"short data":           "truncated voxel data: the file ends after",
		"no data":              "truncated voxel data: the file ends after 352",
		"vox_offset beyond":    "truncated the extensions before vox_offset: the file ends after 400 bytes",
		"vox_offset beyond v2": "truncated the extensions before vox_offset",
		"gzip claims too much": "truncated voxel data: the gzip stream ends after 400 bytes",
	}
	// Read accepts these; ReadVolume and ReadLabel, which need a usable
	// geometry, refuse them.
	volumeOnly := map[string]bool{"singular sform": true}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "bad.nii"
			if len(c.data) > 1 && c.data[0] == 0x1f && c.data[1] == 0x8b {
				name = "bad.nii.gz"
			}
			p := writeBytes(t, name, c.data)
			check := func(fn string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s accepted it", fn)
				}
				if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
					t.Errorf("%s: error %q, want one naming %s and saying %q", fn, err, p, c.want)
				}
			}
			_, _, err := ReadVolume(p)
			check("ReadVolume", err)
			_, _, err = ReadLabel(p)
			check("ReadLabel", err)
			if volumeOnly[c.name] {
				return
			}
			_, err = Read(p)
			check("Read", err)
			if c.header {
				_, err = ReadHeader(p)
				check("ReadHeader", err)
			}
			if w, ok := decodeWant[c.name]; ok {
				c.want = w
			}
			_, err = Decode(p, bytes.NewReader(c.data))
			check("Decode", err)
		})
	}
}

// TestBadPaths: a missing file and a folder are refused with their names.
func TestBadPaths(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.nii.gz")
	if _, err := Read(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ReadHeader(dir); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("folder: %v", err)
	}
	if err := WriteVolume(filepath.Join(dir, "no", "such", "x.nii"), smallInt16(), WriteOptions{}); err == nil ||
		!strings.Contains(err.Error(), "x.nii: cannot write it: the folder") || !strings.Contains(err.Error(), "does not exist") ||
		strings.Contains(err.Error(), "covseg-tmp") {
		t.Errorf("writing into a missing folder: %v", err)
	}
}

// TestHugeClaimAllocatesLittle: a gzip stream whose header claims far more
// voxels than it holds (but not more than deflate could pack into its size),
// with a size trailer that does not match, is read progressively: it is
// refused when the data runs out, having allocated about what was there.
func TestHugeClaimAllocatesLittle(t *testing.T) {
	x := uint32(1)
	v := filled(volume.Dims{64, 64, 64}, volume.Identity(), func(i, j, k int) float32 {
		x ^= x << 13 // xorshift: random bytes do not compress
		x ^= x >> 17
		x ^= x << 5
		return float32(x % 256)
	})
	raw := uncompressed(t, writeTemp(t, "z.nii", v, WriteOptions{Datatype: Uint8}))
	put16(raw, 46, 20000) // claims 64x64x20000 voxels: 328 MB of float32
	b := gz(t, raw)
	p := writeBytes(t, "claim.nii.gz", b)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(p)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "truncated voxel data: the gzip stream ends after") {
		t.Errorf("error %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
		t.Errorf("allocated %d MB for 1 MB of voxels", got>>20)
	}
	if _, err := Decode("claim.nii.gz", bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), "truncated voxel data") {
		t.Errorf("Decode: %v", err)
	}
}
