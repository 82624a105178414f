package dicomseries

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// explicitFile returns a Part 10 file (explicit VR little endian) whose
// dataset is body.
func explicitFile(body []byte) []byte {
	return append(partTenMeta(tsExplicitLE), body...)
}

func elemBytes(t tag.Tag, vr string, val []byte, undefined bool) []byte {
	var b bytes.Buffer
	writeElem(&b, binary.LittleEndian, false, rawElem{t: t, vr: vr, val: val, undefined: undefined})
	return b.Bytes()
}

// TestHostileStructure feeds files whose lengths lie: each must be refused
// by the walker with a clear error, before the library allocates what the
// length claims.
func TestHostileStructure(t *testing.T) {
	le := binary.LittleEndian
	huge := func(t tag.Tag, vr string) []byte {
		b := elemBytes(t, vr, nil, false)
		le.PutUint32(b[8:], 0xFFFFFFF0) // long-VR length field
		return b
	}
	item := func(body []byte, undefined bool) []byte {
		var b bytes.Buffer
		b.Write([]byte{0xFE, 0xFF, 0x00, 0xE0})
		n := uint32(len(body))
		if undefined {
			n = undefinedLength
		}
		b.Write(le.AppendUint32(nil, n))
		b.Write(body)
		if undefined {
			b.Write([]byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0})
		}
		return b.Bytes()
	}
	seqDelim := []byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}
	nested := func(depth int) []byte {
		body := elemBytes(tag.SeriesDescription, "LO", []byte("ab"), false)
		for d := 0; d < depth; d++ {
			s := elemBytes(tag.ReferencedImageSequence, "SQ", nil, true)
			body = append(append(s, item(body, true)...), seqDelim...)
		}
		return body
	}
	implicitHuge := func() []byte {
		var b bytes.Buffer
		writeElem(&b, binary.LittleEndian, true, rawElem{t: tag.SeriesDescription, val: []byte("ab")})
		out := b.Bytes()
		le.PutUint32(out[4:], 0x7FFFFFFF)
		return append(partTenMeta(tsImplicitLE), out...)
	}
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"huge UT", explicitFile(huge(tag.Tag{Group: 0x0008, Element: 0x0119}, "UT")), "runs past the end"},
		{"huge OB", explicitFile(huge(tag.Tag{Group: 0x0009, Element: 0x1010}, "OB")), "runs past the end"},
		{"huge implicit string", implicitHuge(), "runs past the end"},
		{"huge item in sequence", explicitFile(append(elemBytes(tag.ReferencedImageSequence, "SQ", nil, true), 0xFE, 0xFF, 0x00, 0xE0, 0xF0, 0xFF, 0xFF, 0x7F)), "runs past the end"},
		{"string of undefined length", explicitFile(elemBytes(tag.Tag{Group: 0x0008, Element: 0x0119}, "UT", nil, true)), "undefined length"},
		{"non-item in sequence", explicitFile(append(elemBytes(tag.ReferencedImageSequence, "SQ", nil, true), elemBytes(tag.Modality, "CS", []byte("CT"), false)...)), "where an item belongs"},
		{"nested too deep", explicitFile(nested(maxDepth/2 + 1)), "nested deeper"},
		{"sequence without delimiter", explicitFile(append(elemBytes(tag.ReferencedImageSequence, "SQ", nil, true), item(nil, false)...)), "runs past the end"},
		{"encapsulated without items", explicitFile(append(elemBytes(tag.PixelData, "OB", nil, true), seqDelim...)), "no basic offset table"},
		{"encapsulated fragment too long", explicitFile(append(append(elemBytes(tag.PixelData, "OB", nil, true), item(nil, false)...), 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0x40)), "runs past the end"},
		{"odd OW", explicitFile(elemBytes(tag.Tag{Group: 0x0009, Element: 0x1010}, "OW", []byte{1, 2, 3}, false)), "odd length"},
		{"meta truncated", partTenMeta(tsExplicitLE)[:150], "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := headerOf(c.file, int64(len(c.file)))
			if err == nil {
				_, err = readLayout(c.file, int64(len(c.file)), false)
			}
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Fatalf("allocated %d bytes on a %d-byte file", grew, len(c.file))
			}
		})
	}
	// Nesting within the limit is fine.
	ok := explicitFile(nested(maxDepth/2 - 1))
	if _, err := headerOf(ok, int64(len(ok))); err != nil {
		t.Fatalf("nested sequences within the limit: %v", err)
	}
}

// TestNotDICOM checks what is recognised as DICOM without a preamble.
func TestNotDICOM(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("short"), bytes.Repeat([]byte("plain text "), 40), make([]byte, 300)} {
		if _, err := headerOf(b, int64(len(b))); err != errNotDICOM {
			t.Fatalf("%q...: got %v, want errNotDICOM", b[:min(len(b), 12)], err)
		}
	}
}

// TestLongHeader checks a header longer than the prefix the header pass
// reads first.
func TestLongHeader(t *testing.T) {
	dir := t.TempDir()
	st := stack{base: axialSpec("1.2.826.0.1.12", 2, 2), n: 2, step: 1, value: gradient}
	// A long private OB element pushes the header past prefixSize.
	st.base.extra = []rawElem{{t: tag.Tag{Group: 0x0009, Element: 0x1010}, vr: "OB", val: make([]byte, prefixSize+100)}}
	st.base.desc = strings.Repeat("x", 6000)
	specs := st.specs()
	paths := writeFiles(t, dir, specs, 1)
	for _, p := range paths {
		h, err := readHeader(p)
		if err != nil || !h.hasPixels || len(h.desc) != 6000 {
			t.Fatalf("%v %+v", err, h)
		}
	}
	checkStack(t, dir, st, specs)
}
