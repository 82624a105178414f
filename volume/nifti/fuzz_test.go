package nifti

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/volume"
)

// fuzzSeeds are valid files of every kind the reader handles: both versions
// and byte orders, gzip or not, several datatypes, an extension, 4D.
func fuzzSeeds(f *testing.F) [][]byte {
	v := smallInt16()
	var seeds [][]byte
	for _, opt := range []WriteOptions{{Datatype: Int16}, {Version: 2}, {Datatype: Uint8, Version: 1}} {
		for i := range v.Data {
			v.Data[i] = float32(i)
		}
		b := uncompressed(f, writeTemp(f, "s.nii", v, opt))
		seeds = append(seeds, b, gz(f, b))
	}
	seeds = append(seeds, toBigEndian(seeds[0], 2))
	files, _ := filepath.Glob(filepath.Join("testdata", "nibabel", "*.nii*"))
	if len(files) == 0 {
		f.Fatal("no seed files in testdata/nibabel")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzHeader: ParseHeader never panics, and a header it accepts describes a
// readable image of a sane size whose affine can be computed.
func FuzzHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		if s[0] != 0x1f {
			f.Add(s[:min(len(s), size2)])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader("fuzz.nii", b)
		if err != nil {
			return
		}
		n := h.NumVoxels()
		if n <= 0 || n > volume.MaxVoxels || h.Datatype.Size() == 0 || h.Bitpix != 8*h.Datatype.Size() {
			t.Fatalf("accepted %+v", *h)
		}
		if h.VoxOffset < int64(h.HeaderBytes)+4 {
			t.Fatalf("accepted vox_offset %d", h.VoxOffset)
		}
		h.Affine()
		h.BaseAffine()
		h.Scaling()
	})
}

// FuzzRead: Decode never panics, and an image it returns holds as many
// voxels as its shape says.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Decode("fuzz.nii", bytes.NewReader(b))
		if err != nil {
			return
		}
		n := 1
		for _, s := range im.Shape {
			n *= s
		}
		if len(im.Data) != n || n != im.Header.NumVoxels() {
			t.Fatalf("shape %v but %d voxels", im.Shape, len(im.Data))
		}
		if v, err := im.Volume(); err == nil && v.Dims.Len() != n {
			t.Fatalf("volume dims %v for %d voxels", v.Dims, n)
		}
		im.Label()
	})
}
