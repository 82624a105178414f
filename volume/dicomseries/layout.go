package dicomseries

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Transfer syntax UIDs this package knows by name.
const (
	tsImplicitLE      = "1.2.840.10008.1.2"
	tsExplicitLE      = "1.2.840.10008.1.2.1"
	tsExplicitBE      = "1.2.840.10008.1.2.2"
	tsDeflatedLE      = "1.2.840.10008.1.2.1.99"
	tsJPEGLossless    = "1.2.840.10008.1.2.4.57"
	tsJPEGLosslessSV1 = "1.2.840.10008.1.2.4.70"
)

const (
	undefinedLength = 0xFFFFFFFF
	// maxDepth bounds the nesting of sequences and items (two levels per
	// nested sequence); real files nest a handful of sequences, hostile ones
	// could nest until the stack runs out.
	maxDepth = 64
	// maxInflated bounds a deflated dataset once inflated (a decompression
	// bomb is refused instead of filling memory). One CT slice is ~0.5 MiB.
	maxInflated = 1 << 30
)

// errNotDICOM marks a file that is not DICOM at all (no "DICM" magic and no
// plausible dataset at offset 0); such files are skipped, not reported.
var errNotDICOM = errors.New("not a DICOM file")

// errNeedMore says the walker ran off the end of a prefix of the file before
// reaching the pixel data: the caller reads the whole file and walks again.
var errNeedMore = errors.New("header extends past the bytes read")

// layout is where the parts of one DICOM file lie. It is found by walking
// the element structure (tags and lengths, no values) before the dicom
// library sees the bytes: the library allocates whatever a value length
// claims before checking it against the input, so every length is checked
// here first, and the library only ever parses bytes that passed.
type layout struct {
	ts       string // transfer syntax UID as stated (or inferred when absent)
	inferred bool   // ts was inferred (no file meta information)
	// meta is a minimal Part 10 header for the library: preamble, "DICM",
	// group length and a transfer syntax it can parse (explicit VR little
	// endian for deflated files, whose dataset ds holds the inflated bytes).
	meta []byte
	ds   []byte // the dataset (inflated when the file is deflated)
	bo   binary.ByteOrder
	// implicit is the VR encoding of ds.
	implicit bool
	// pixelAt is the offset in ds of the top-level PixelData element's tag
	// (-1: none); pixelEnd is the offset just past its value (0 until the
	// value was walked, i.e. when parsing headers only).
	pixelAt, pixelEnd int
	// pixelVL is the PixelData value length (undefinedLength: encapsulated).
	pixelVL uint32
	// pixelErr is set, instead of failing the walk, when the header is
	// sound but the pixel data does not fit in the file (truncated): the
	// file still tells which series it belongs to.
	pixelErr error
}

// libraryTS is the transfer syntax the library must parse ds with.
func (l *layout) libraryTS() string {
	switch {
	case l.implicit:
		return tsImplicitLE
	case l.bo == binary.BigEndian:
		return tsExplicitBE
	default:
		return tsExplicitLE
	}
}

// syntaxOf returns the byte order and VR encoding of the dataset for a
// transfer syntax; every syntax other than the two below is explicit VR
// little endian (the compressed ones encapsulate their pixel data).
func syntaxOf(ts string) (binary.ByteOrder, bool) {
	switch ts {
	case tsImplicitLE:
		return binary.LittleEndian, true
	case tsExplicitBE:
		return binary.BigEndian, false
	}
	return binary.LittleEndian, false
}

// readLayout walks a file's bytes. With headerOnly it stops at the top-level
// PixelData element (and checks only that a native value fits in fileSize,
// the size of the whole file, of which b may be a prefix); otherwise it also
// walks the pixel data value (fragments included).
func readLayout(b []byte, fileSize int64, headerOnly bool) (*layout, error) {
	l := &layout{pixelAt: -1}
	dsStart, err := l.readMeta(b, int64(len(b)) < fileSize)
	if err != nil {
		return nil, err
	}
	l.bo, l.implicit = syntaxOf(l.ts)
	l.ds = b[dsStart:]
	size := fileSize - int64(dsStart)
	if l.ts == tsDeflatedLE {
		if int64(len(b)) < fileSize {
			return nil, errNeedMore
		}
		if l.ds, err = inflate(l.ds); err != nil {
			return nil, err
		}
		size = int64(len(l.ds))
	}
	l.meta = metaFor(l.libraryTS())
	w := walker{b: l.ds, bo: l.bo, implicit: l.implicit, size: size, l: l, headerOnly: headerOnly}
	if _, err := w.elements(0, len(l.ds), 0, false); err != nil {
		return nil, err
	}
	if l.pixelAt < 0 && int64(len(l.ds)) < size {
		return nil, errNeedMore // the prefix ended between two elements
	}
	return l, nil
}

// readMeta reads the file meta information (group 0002) when the file has
// the "DICM" magic, and returns where the dataset starts. Without the magic,
// a dataset must start at offset 0 with a group 0008 element (the rule
// dcmtk applies too), and its encoding is inferred from that element.
// prefix says b is only the start of the file.
func (l *layout) readMeta(b []byte, prefix bool) (int, error) {
	off := 0
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		off = 132
		for len(b)-off >= 8 && binary.LittleEndian.Uint16(b[off:]) == 0x0002 {
			elem := binary.LittleEndian.Uint16(b[off+2:])
			vr := string(b[off+4 : off+6])
			hdr, vl := 8, int(binary.LittleEndian.Uint16(b[off+6:]))
			if isLongVR(vr) {
				if len(b)-off < 12 {
					if prefix {
						return 0, errNeedMore
					}
					return 0, fmt.Errorf("file meta information is truncated at byte %d", off)
				}
				hdr, vl = 12, int(binary.LittleEndian.Uint32(b[off+8:]))
			}
			if vl > len(b)-off-hdr {
				if prefix {
					return 0, errNeedMore
				}
				return 0, fmt.Errorf("file meta information is truncated: element (0002,%04x) at byte %d claims %d bytes, more than the file holds", elem, off, vl)
			}
			if elem == 0x0010 {
				l.ts = strings.TrimRight(string(b[off+hdr:off+hdr+vl]), " \x00")
			}
			off += hdr + vl
		}
		if left := len(b) - off; left < 8 && prefix {
			return 0, errNeedMore
		} else if left > 0 && left < 8 {
			return 0, fmt.Errorf("file meta information is truncated at byte %d", off)
		}
	}
	if l.ts != "" {
		return off, nil
	}
	// No transfer syntax stated: infer it from the first element.
	if len(b)-off < 8 {
		if off == 0 {
			return 0, errNotDICOM
		}
		return 0, fmt.Errorf("file meta information states no transfer syntax and no dataset follows")
	}
	l.inferred = true
	le, be := binary.LittleEndian.Uint16(b[off:]), binary.BigEndian.Uint16(b[off:])
	vrLike := isVRLetters(b[off+4 : off+6])
	switch {
	case le == 0x0008 && vrLike:
		l.ts = tsExplicitLE
	case le == 0x0008:
		l.ts = tsImplicitLE
	case be == 0x0008 && vrLike:
		l.ts = tsExplicitBE
	case off == 0:
		return 0, errNotDICOM
	default:
		return 0, fmt.Errorf("file meta information states no transfer syntax, and the dataset's first element (group %04x) does not reveal it", le)
	}
	return off, nil
}

// metaFor builds the minimal Part 10 header the library needs: preamble,
// magic, group length and the transfer syntax UID.
func metaFor(ts string) []byte {
	v := ts
	if len(v)%2 == 1 {
		v += "\x00"
	}
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	tsElem := make([]byte, 8, 8+len(v))
	binary.LittleEndian.PutUint16(tsElem[0:], 0x0002)
	binary.LittleEndian.PutUint16(tsElem[2:], 0x0010)
	copy(tsElem[4:], "UI")
	binary.LittleEndian.PutUint16(tsElem[6:], uint16(len(v)))
	tsElem = append(tsElem, v...)
	gl := []byte{0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(gl[8:], uint32(len(tsElem)))
	b.Write(gl)
	b.Write(tsElem)
	return b.Bytes()
}

// inflate undoes the deflate compression (RFC 1951, no zlib wrapper) of a
// deflated explicit VR little endian dataset, refusing bombs.
func inflate(b []byte) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(b))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("inflating the deflated dataset: %w", err)
	}
	if len(out) > maxInflated {
		return nil, fmt.Errorf("deflated dataset inflates to more than %d bytes", maxInflated)
	}
	return out, nil
}

// isLongVR reports whether an explicit VR has a 4-byte value length; the
// set is the one the dicom library uses, so that both read the same lengths.
func isLongVR(vr string) bool {
	switch vr {
	case "NA", "OB", "OD", "OF", "OL", "OW", "SQ", "UN", "UC", "UR", "UT":
		return true
	}
	return false
}

func isVRLetters(b []byte) bool {
	return b[0] >= 'A' && b[0] <= 'Z' && b[1] >= 'A' && b[1] <= 'Z'
}

// walker checks element lengths exactly as the dicom library will read them
// (same VR and length rules, same recursion into sequences), so that every
// length the library allocates for is known to fit in its container.
type walker struct {
	b          []byte
	bo         binary.ByteOrder
	implicit   bool
	size       int64 // size of the whole dataset (b may be a prefix of it)
	l          *layout
	headerOnly bool
}

// truncated reports a length running past the end: when b is only a prefix
// of the file the caller retries with all of it.
func (w *walker) truncated(off int, what string) error {
	if int64(len(w.b)) < w.size {
		return errNeedMore
	}
	return fmt.Errorf("file is truncated or corrupt: %s at dataset byte %d runs past the end (%d bytes)", what, off, len(w.b))
}

// header reads an element header at off the way the library does.
func (w *walker) header(off, end int) (t tag.Tag, vr string, vl uint32, next int, err error) {
	if end-off < 8 {
		return t, "", 0, 0, w.truncated(off, "element header")
	}
	b := w.b
	t = tag.Tag{Group: w.bo.Uint16(b[off:]), Element: w.bo.Uint16(b[off+2:])}
	if w.implicit || t == tag.Item {
		return t, dictVR(t), w.bo.Uint32(b[off+4:]), off + 8, nil
	}
	vr = string(b[off+4 : off+6])
	if !isLongVR(vr) {
		vl = uint32(w.bo.Uint16(b[off+6:]))
		if vl == 0xFFFF { // the library reads this as undefined length
			vl = undefinedLength
		}
		return t, vr, vl, off + 8, nil
	}
	if end-off < 12 {
		return t, "", 0, 0, w.truncated(off, "element header")
	}
	vl = w.bo.Uint32(b[off+8:])
	if vl == undefinedLength && (vr == "UC" || vr == "UR" || vr == "UT") {
		return t, "", 0, 0, fmt.Errorf("element %v (%s) has undefined length", t, vr)
	}
	return t, vr, vl, off + 12, nil
}

// dictVR is the VR the library assumes for an implicit VR element.
func dictVR(t tag.Tag) string {
	info, err := tag.Find(t)
	if err != nil {
		return tag.UnknownVR
	}
	if info.Tag == tag.PixelData || info.Tag == tag.OverlayData {
		return "OW"
	}
	return info.VRs[0]
}

// elements walks the elements in [off, end) and returns where it stopped.
// In an item of undefined length (untilDelim) it stops after the item
// delimiter instead.
func (w *walker) elements(off, end, depth int, untilDelim bool) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("sequences nested deeper than %d levels at dataset byte %d", maxDepth/2, off)
	}
	for off < end {
		start := off
		t, vr, vl, next, err := w.header(off, end)
		if err != nil {
			return 0, err
		}
		if untilDelim && t == tag.ItemDelimitationItem {
			return next, nil
		}
		if depth == 0 && t == tag.PixelData {
			return w.pixelData(start, next, end, vl)
		}
		if off, err = w.value(t, vr, vl, next, end, depth); err != nil {
			return 0, err
		}
	}
	if untilDelim {
		return 0, w.truncated(off, "item without delimiter")
	}
	return off, nil
}

// value skips the value of one element, descending into sequences.
func (w *walker) value(t tag.Tag, vr string, vl uint32, off, end, depth int) (int, error) {
	kind := tag.GetVRKind(t, vr)
	if vl == undefinedLength {
		switch kind {
		case tag.VRItem:
			return w.elements(off, end, depth+1, true)
		case tag.VRSequence, tag.VRUnknown:
			return w.sequence(off, end, depth+1)
		case tag.VRBytes, tag.VRPixelData:
			return w.fragments(off, end, t, kind == tag.VRPixelData)
		}
		return 0, fmt.Errorf("element %v (%s) at dataset byte %d has undefined length", t, vr, off)
	}
	if int64(vl) > int64(end-off) {
		return 0, w.truncated(off, fmt.Sprintf("element %v (%s, %d bytes)", t, vr, vl))
	}
	stop := off + int(vl)
	switch kind {
	case tag.VRItem:
		n, err := w.elements(off, stop, depth+1, false)
		if err != nil {
			return 0, err
		}
		return n, nil
	case tag.VRSequence:
		for p := off; p < stop; {
			it, _, ivl, inext, err := w.header(p, stop)
			if err != nil {
				return 0, err
			}
			if it != tag.Item {
				return 0, fmt.Errorf("sequence %v holds %v where an item belongs (dataset byte %d)", t, it, p)
			}
			if p, err = w.value(it, "NA", ivl, inext, stop, depth+1); err != nil {
				return 0, err
			}
		}
	case tag.VRBytes:
		if vr == "OW" && vl%2 != 0 {
			return 0, fmt.Errorf("element %v (OW) has odd length %d", t, vl)
		}
	}
	return stop, nil
}

// sequence walks the items of a sequence of undefined length up to and
// including its delimiter.
func (w *walker) sequence(off, end, depth int) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("sequences nested deeper than %d levels at dataset byte %d", maxDepth/2, off)
	}
	for {
		t, _, vl, next, err := w.header(off, end)
		if err != nil {
			return 0, err
		}
		switch t {
		case tag.SequenceDelimitationItem:
			return next, nil
		case tag.Item:
			if off, err = w.value(t, "NA", vl, next, end, depth); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("sequence holds %v where an item belongs (dataset byte %d)", t, off)
		}
	}
}

// fragments walks the raw items of an undefined-length OB/OW value
// (encapsulated pixel data: the basic offset table, then the fragments)
// up to the sequence delimiter.
func (w *walker) fragments(off, end int, t tag.Tag, pixel bool) (int, error) {
	for n := 0; ; n++ {
		if end-off < 8 {
			return 0, w.truncated(off, fmt.Sprintf("item %d of %v", n, t))
		}
		it := tag.Tag{Group: w.bo.Uint16(w.b[off:]), Element: w.bo.Uint16(w.b[off+2:])}
		vl := w.bo.Uint32(w.b[off+4:])
		off += 8
		if it == tag.SequenceDelimitationItem {
			if pixel && n == 0 {
				return 0, fmt.Errorf("encapsulated pixel data has no basic offset table item")
			}
			return off, nil
		}
		if it != tag.Item || vl == undefinedLength {
			return 0, fmt.Errorf("encapsulated %v holds %v (length %#x) where an item of defined length belongs (dataset byte %d)", t, it, vl, off-8)
		}
		if int64(vl) > int64(end-off) {
			return 0, w.truncated(off, fmt.Sprintf("item %d of %v (%d bytes)", n, t, vl))
		}
		off += int(vl)
	}
}

// pixelData records the top-level PixelData element and, unless walking
// headers only, walks its value.
func (w *walker) pixelData(start, valOff, end int, vl uint32) (int, error) {
	w.l.pixelAt, w.l.pixelVL = start, vl
	if w.headerOnly {
		if vl != undefinedLength && int64(valOff)+int64(vl) > w.size {
			w.l.pixelErr = fmt.Errorf("file is truncated: pixel data needs %d bytes, %d are left", vl, w.size-int64(valOff))
		}
		return start, nil
	}
	var stop int
	var err error
	if vl == undefinedLength {
		stop, err = w.fragments(valOff, end, tag.PixelData, true)
	} else {
		stop, err = w.value(tag.PixelData, "OW", vl, valOff, end, 0)
		if err != nil && !errors.Is(err, errNeedMore) {
			err = fmt.Errorf("file is truncated: pixel data needs %d bytes, %d are left", vl, end-valOff)
		}
	}
	if err != nil {
		return 0, err
	}
	w.l.pixelEnd = stop
	return stop, nil
}
