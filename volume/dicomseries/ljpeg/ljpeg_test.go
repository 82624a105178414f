package ljpeg

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
)

// ricordDir holds three real RICORD slices (JPEG Lossless SV1, signed 16 bit).
var ricordDir = testutil.SharedPath("fixtures", "io", "ricord_jpeg_lossless_3slices")

// ricordHashes are the sha256 of the samples as little-endian uint16 that
// dcmtk 3.6.7 decodes: `dcmdjpeg 1-12N.dcm out.dcm`, then the hash of out's
// PixelData value (int16 little endian, the same bytes).
var ricordHashes = map[string]string{
	"1-120.dcm": "13b2a1852184980c27c765f8d3a7717647421f9185cc8e95f2830c663d2d1419",
	"1-121.dcm": "cf666daf43b93cb4ec05a39fc0f8a168a680edf90fb5d3fbd5f105f5f4156ad2",
	"1-122.dcm": "e9028c333310ea743fd1fece5e654e5c8847152d3c1c6ed8b386c41711d148be",
}

func pixHash(pix []uint16) string {
	b := make([]byte, 2*len(pix))
	for i, v := range pix {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dicomFrame returns the JPEG stream of a single-frame DICOM file with
// encapsulated pixel data in explicit VR little endian: the fragments after
// the basic offset table item, concatenated. It looks for the PixelData
// element header (7FE0,0010) OB with undefined length rather than parsing
// the whole data set, which is enough for the fixtures.
func dicomFrame(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr := []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}
	i := bytes.LastIndex(data, hdr)
	if i < 0 {
		t.Fatalf("%s: no encapsulated PixelData", path)
	}
	p := data[i+len(hdr):]
	var frame []byte
	for item := 0; ; item++ {
		if len(p) < 8 {
			t.Fatalf("%s: PixelData items cut off", path)
		}
		tag, n := binary.LittleEndian.Uint32(p), int(binary.LittleEndian.Uint32(p[4:]))
		p = p[8:]
		if tag == 0xE0DDFFFE { // sequence delimitation
			return frame
		}
		if tag != 0xE000FFFE || n > len(p) {
			t.Fatalf("%s: bad PixelData item %d", path, item)
		}
		if item > 0 { // item 0 is the basic offset table
			frame = append(frame, p[:n]...)
		}
		p = p[n:]
	}
}

func TestRICORD(t *testing.T) {
	for name, want := range ricordHashes {
		data := dicomFrame(t, filepath.Join(ricordDir, name))
		img, err := Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Width != 512 || img.Height != 512 || img.Components != 1 || img.Precision != 16 {
			t.Errorf("%s: %dx%dx%d P=%d, want 512x512x1 P=16", name, img.Width, img.Height, img.Components, img.Precision)
		}
		if got := pixHash(img.Pix); got != want {
			t.Errorf("%s: samples sha256 %s, dcmdjpeg gives %s", name, got, want)
		}
		// Sign extension is the caller's: as int16 the corner (air
		// outside the scan field) is RICORD's padding value -2000.
		if v := int16(img.Pix[0]); v != -2000 {
			t.Errorf("%s: first sample as int16 = %d, want -2000", name, v)
		}
	}
}

type testdataEntry struct {
	hash       string
	w, h, comp int
	file       string
}

// readExpected reads testdata/expected.txt (see testdata/README.md).
func readExpected(t testing.TB) []testdataEntry {
	t.Helper()
	f, err := os.Open("testdata/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []testdataEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 {
			t.Fatalf("expected.txt: bad line %q", sc.Text())
		}
		e := testdataEntry{hash: fs[0], file: fs[4]}
		for i, p := range []*int{&e.w, &e.h, &e.comp} {
			if *p, err = strconv.Atoi(fs[1+i]); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		t.Fatal("expected.txt: no entries")
	}
	return out
}

// TestTestdata decodes the dcmtk-made streams (every predictor, point
// transforms, 8, 12 and signed 16 bit, RGB) and compares with dcmdjpeg.
func TestTestdata(t *testing.T) {
	for _, e := range readExpected(t) {
		data, err := os.ReadFile(filepath.Join("testdata", e.file))
		if err != nil {
			t.Fatal(err)
		}
		img, err := Decode(data)
		if err != nil {
			t.Errorf("%s: %v", e.file, err)
			continue
		}
		if img.Width != e.w || img.Height != e.h || img.Components != e.comp {
			t.Errorf("%s: %dx%dx%d, want %dx%dx%d", e.file, img.Width, img.Height, img.Components, e.w, e.h, e.comp)
		}
		if got := pixHash(img.Pix); got != e.hash {
			t.Errorf("%s: samples sha256 %s, dcmdjpeg gives %s", e.file, got, e.hash)
		}
		cfg, err := DecodeConfig(data)
		if err != nil || cfg != (Config{img.Width, img.Height, img.Components, img.Precision}) {
			t.Errorf("%s: DecodeConfig = %+v, %v; Decode gives %dx%dx%d P=%d", e.file, cfg, err,
				img.Width, img.Height, img.Components, img.Precision)
		}
	}
}

// segmentAt returns the offset of the first marker m in a stream made by
// testEncode (before any entropy-coded data, so no false matches).
func segmentAt(t *testing.T, data []byte, m byte) int {
	t.Helper()
	i := bytes.Index(data, []byte{0xFF, m})
	if i < 0 {
		t.Fatalf("no marker 0xFF%02X", m)
	}
	return i
}

// replaceSegment replaces the payload of the first segment with marker m.
func replaceSegment(t *testing.T, data []byte, m byte, payload []byte) []byte {
	t.Helper()
	i := segmentAt(t, data, m)
	n := int(binary.BigEndian.Uint16(data[i+2:]))
	out := append([]byte{}, data[:i+2]...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(payload)+2))
	out = append(out, payload...)
	return append(out, data[i+2+n:]...)
}

// removeSegment drops the first segment with marker m.
func removeSegment(t *testing.T, data []byte, m byte) []byte {
	t.Helper()
	i := segmentAt(t, data, m)
	n := int(binary.BigEndian.Uint16(data[i+2:]))
	return append(append([]byte{}, data[:i]...), data[i+2+n:]...)
}

// smallStream is a 13x9 12-bit single-component stream.
func smallStream(o encOptions) ([]uint16, []byte) {
	pix := make([]uint16, 13*9)
	for i := range pix {
		pix[i] = uint16(i * 29 % 4096)
	}
	return pix, testEncode(pix, 13, 9, 1, 12, o)
}

func TestErrors(t *testing.T) {
	_, good := smallStream(encOptions{predictor: 1})
	sof := func(p, h, w, nf int) []byte {
		b := []byte{byte(p), byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(nf)}
		for c := range nf {
			b = append(b, byte(10+3*c), 0x11, 0)
		}
		return b
	}
	withMarker := func(m byte) []byte {
		out := append([]byte{}, good...)
		out[segmentAt(t, out, 0xC3)+1] = m
		return out
	}
	_, rst := smallStream(encOptions{predictor: 1, restartRows: 2})
	badRST := append([]byte{}, rst...)
	badRST[bytes.Index(badRST, []byte{0xFF, 0xD1})+1] = 0xD3
	// A table with one 1-bit code "0" cannot decode a run of 1 bits.
	// (testEncode puts component c's table at destination c+1.)
	oneCode := append([]byte{1}, make([]byte, 16)...)
	oneCode[1] = 1
	oneCode = append(oneCode, 0)
	badCode := replaceSegment(t, good, 0xC4, oneCode)
	sos := segmentAt(t, badCode, 0xDA)
	for i := sos + 2 + 8; i < len(badCode)-2; i++ {
		badCode[i] = 0xFE
	}
	overfull := append([]byte{0, 3}, make([]byte, 15)...)
	overfull = append(overfull, 0, 1, 2)

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"not JPEG", []byte("DICM\x00\x01"), "missing SOI"},
		{"SOI only", []byte{0xFF, 0xD8}, "missing SOF3"},
		{"SOI EOI", []byte{0xFF, 0xD8, 0xFF, 0xD9}, "missing SOF3"},
		{"baseline", withMarker(0xC0), "baseline JPEG (SOF0) is not lossless"},
		{"progressive", withMarker(0xC2), "progressive JPEG (SOF2) is not lossless"},
		{"arithmetic lossless", withMarker(0xCB), "arithmetic-coded lossless JPEG (SOF11) is not supported"},
		{"hierarchical", withMarker(0xC7), "differential lossless JPEG (SOF7, hierarchical)"},
		{"JPEG-LS", withMarker(0xF7), "JPEG-LS"},
		{"precision 1", replaceSegment(t, good, 0xC3, sof(1, 9, 13, 1)), "precision 1 outside 2..16"},
		{"precision 17", replaceSegment(t, good, 0xC3, sof(17, 9, 13, 1)), "precision 17 outside 2..16"},
		{"width 0", replaceSegment(t, good, 0xC3, sof(12, 9, 0, 1)), "width 0"},
		{"DNL height", replaceSegment(t, good, 0xC3, sof(12, 0, 13, 1)), "DNL"},
		{"5 components", replaceSegment(t, good, 0xC3, sof(12, 9, 13, 5)), "5 components"},
		{"absurd size", replaceSegment(t, good, 0xC3, sof(16, 65535, 65535, 4)), "exceeds"},
		{"size beyond data", replaceSegment(t, good, 0xC3, sof(16, 3000, 3000, 1)), "needs at least"},
		{"SOF cut", replaceSegment(t, good, 0xC3, sof(12, 9, 13, 1)[:5]), "need at least 6"},
		{"no DHT", replaceSegment(t, good, 0xC4, []byte{0x11}), "no DHT defined"},
		{"no SOS", good[:segmentAt(t, good, 0xDA)], "missing SOS"},
		{"SOS before SOF", removeSegment(t, good, 0xC3), "missing SOF3"},
		{"predictor 0", replaceSegment(t, good, 0xDA, []byte{1, 10, 0x10, 0, 0, 0}), "predictor 0"},
		{"predictor 8", replaceSegment(t, good, 0xDA, []byte{1, 10, 0x10, 8, 0, 0}), "predictor 8"},
		{"Pt too big", replaceSegment(t, good, 0xDA, []byte{1, 10, 0x10, 1, 0, 12}), "point transform 12"},
		{"unknown component", replaceSegment(t, good, 0xDA, []byte{1, 99, 0, 1, 0, 0}), "id 99 is not in the frame"},
		{"table 5", replaceSegment(t, good, 0xDA, []byte{1, 10, 0x50, 1, 0, 0}), "table 5"},
		{"oversubscribed DHT", replaceSegment(t, good, 0xC4, overfull), "over-subscribed"},
		{"bad Huffman code", badCode, "invalid Huffman code"},
		{"wrong RST", badRST, "RST1 is due"},
		{"restart not whole rows", replaceSegment(t, rst, 0xDD, []byte{0, 20}), "not a multiple"},
		{"truncated scan", good[:len(good)-6], "truncated"},
		{"segment cut", good[:segmentAt(t, good, 0xC4)+10], "truncated"},
	}
	for _, tc := range tests {
		img, err := Decode(tc.data)
		if err == nil {
			t.Errorf("%s: no error (%dx%d)", tc.name, img.Width, img.Height)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ljpeg: ") {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, err, tc.want)
		}
		var fe FormatError
		var ue UnsupportedError
		if !errors.As(err, &fe) && !errors.As(err, &ue) {
			t.Errorf("%s: error %T is neither FormatError nor UnsupportedError", tc.name, err)
		}
	}
	if _, err := DecodeConfig(withMarker(0xC0)); err == nil || !strings.Contains(err.Error(), "SOF0") {
		t.Errorf("DecodeConfig of baseline: %v", err)
	}
}

// TestTruncation cuts a stream at every length: before the end of the
// entropy-coded data that must be an error, after it the image is complete.
func TestTruncation(t *testing.T) {
	for _, o := range []encOptions{{predictor: 1}, {predictor: 5, restartRows: 2}, {predictor: 7, fillBytes: true, longCodes: true}} {
		pix, data := smallStream(o)
		end := bytes.LastIndex(data, []byte{0xFF, 0xD9})
		for o.fillBytes && data[end-1] == 0xFF {
			end--
		}
		for n := range len(data) {
			img, err := Decode(data[:n])
			switch {
			case n < end && err == nil:
				t.Fatalf("%+v: cut at %d of %d (scan ends at %d): no error", o, n, len(data), end)
			case n >= end && err != nil:
				t.Fatalf("%+v: cut at %d of %d (scan ends at %d): %v", o, n, len(data), end, err)
			case err == nil && firstDiff(img.Pix, pix) >= 0:
				t.Fatalf("%+v: cut at %d: wrong samples", o, n)
			}
		}
	}
}

// TestLenientDHT covers a DHT whose counts promise more values than the
// segment holds, as some encoders write: the codes present still decode,
// and a code without a value is an error only when used.
func TestLenientDHT(t *testing.T) {
	pix := make([]uint16, 5*4) // all differences 0 after the first sample
	for i := range pix {
		pix[i] = 1 << 11
	}
	data := testEncode(pix, 5, 4, 1, 12, encOptions{predictor: 1})
	// Category 0 only, with an optimal code of length 1. Claim 3 more codes
	// of length 3 whose values are missing.
	dht := append([]byte{1}, make([]byte, 16)...)
	dht[1], dht[3] = 1, 3
	dht = append(dht, 0)
	lenient := replaceSegment(t, data, 0xC4, dht)
	img, err := Decode(lenient)
	if err != nil {
		t.Fatalf("DHT with missing values: %v", err)
	}
	if i := firstDiff(img.Pix, pix); i >= 0 {
		t.Fatalf("sample %d = %d, want %d", i, img.Pix[i], pix[i])
	}
	// Turn the first scan byte into codes that have no value: 100 100 ...
	sos := segmentAt(t, lenient, 0xDA)
	bad := append([]byte{}, lenient...)
	bad[sos+2+8] = 0x92
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "no value") {
		t.Fatalf("code without value: %v", err)
	}
}

// TestMultiScanTables checks that tables redefined between scans apply to
// the scans after them, and that stray bytes after a scan are skipped.
func TestMultiScanTables(t *testing.T) {
	pix := testImage(newRand(5), 7, 5, 3, 10, 0)
	o := encOptions{predictor: 4, multiScan: true, extras: true, fillBytes: true}
	checkRoundTrip(t, pix, 7, 5, 3, 10, o)
}

func TestDecodeConfig(t *testing.T) {
	_, data := smallStream(encOptions{predictor: 2})
	cfg, err := DecodeConfig(data[:segmentAt(t, data, 0xC4)])
	if err != nil {
		t.Fatal(err)
	}
	if want := (Config{Width: 13, Height: 9, Components: 1, Precision: 12}); cfg != want {
		t.Fatalf("DecodeConfig = %+v, want %+v", cfg, want)
	}
}

func BenchmarkDecode(b *testing.B) {
	cases := []struct{ name, path string }{
		{"RICORD512x512_SV1", filepath.Join(ricordDir, "1-120.dcm")},
		{"IBSI204x201_SV1", "testdata/ibsi30_sv1.jpg"},
		{"IBSIcrop_P7", "testdata/crop_p7.jpg"},
	}
	for _, c := range cases {
		var data []byte
		if strings.HasSuffix(c.path, ".dcm") {
			data = dicomFrame(b, c.path)
		} else {
			var err error
			if data, err = os.ReadFile(c.path); err != nil {
				b.Fatal(err)
			}
		}
		img, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(2 * len(img.Pix)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
