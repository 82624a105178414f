// Package ljpeg decodes lossless JPEG: ITU-T T.81 process 14, Huffman coded,
// frame marker SOF3. This is the codec of the DICOM transfer syntaxes
// 1.2.840.10008.1.2.4.57 (JPEG Lossless, any predictor) and
// 1.2.840.10008.1.2.4.70 (JPEG Lossless, first-order prediction "SV1").
//
// Supported: sample precision 2–16 bits, 1–4 components in one interleaved
// scan or in several scans, predictors 1–7, point transform, restart
// intervals (of whole rows, as libjpeg requires), several Huffman tables.
// Not supported: the lossy and hierarchical processes, arithmetic coding,
// JPEG-LS, and subsampled components. Each of these gets an
// UnsupportedError; malformed data gets a FormatError.
//
// Like libjpeg, the decoder tolerates fill bytes, stray bytes and unknown
// APPn/COM segments between segments, a missing EOI, and a DHT segment that
// lists fewer values than its counts (an error only if a scan uses a code
// without a value). It does not tolerate scan data that ends early: a
// truncated image is an error, never zero-filled.
//
// Decoded samples are the raw unsigned values as coded; interpreting them
// (sign, bits stored, rescaling) is left to the caller, e.g. a DICOM reader.
package ljpeg

import (
	"encoding/binary"
	"fmt"
)

// Image is a decoded lossless JPEG frame.
type Image struct {
	// Width and Height are the frame's size in samples.
	Width, Height int
	// Components is the number of samples per pixel (1–4).
	Components int
	// Precision is the sample precision in bits (2–16) from the frame header.
	Precision int
	// Pix holds the samples row by row, the components of a pixel
	// interleaved: component c of pixel (x, y) is
	// Pix[(y*Width+x)*Components+c]. Values are as coded, already shifted
	// left by the scan's point transform.
	Pix []uint16
}

// Config is what the frame header says about an image.
type Config struct {
	Width, Height, Components, Precision int
}

// MaxSamples is the largest Width*Height*Components that Decode accepts
// (512 MiB of samples); a header claiming more is refused before allocating.
const MaxSamples = 1 << 28

// FormatError reports data that is not a valid lossless JPEG stream.
type FormatError string

func (e FormatError) Error() string { return "ljpeg: invalid lossless JPEG: " + string(e) }

// UnsupportedError reports a valid JPEG stream that this package does not
// decode, such as a lossy or arithmetic-coded one.
type UnsupportedError string

func (e UnsupportedError) Error() string { return "ljpeg: unsupported: " + string(e) }

func formatErrorf(format string, args ...any) error {
	return FormatError(fmt.Sprintf(format, args...))
}

func unsupportedf(format string, args ...any) error {
	return UnsupportedError(fmt.Sprintf(format, args...))
}

// Marker codes (the byte after 0xFF), T.81 Table B.1.
const (
	markerSOF0  = 0xC0
	markerSOF3  = 0xC3
	markerDHT   = 0xC4
	markerDAC   = 0xCC
	markerRST0  = 0xD0
	markerRST7  = 0xD7
	markerSOI   = 0xD8
	markerEOI   = 0xD9
	markerSOS   = 0xDA
	markerDQT   = 0xDB
	markerDNL   = 0xDC
	markerDRI   = 0xDD
	markerDHP   = 0xDE
	markerEXP   = 0xDF
	markerAPP0  = 0xE0
	markerJPG0  = 0xF0
	markerSOF55 = 0xF7 // JPEG-LS (ITU-T T.87)
	markerLSE   = 0xF8 // JPEG-LS preset parameters
	markerCOM   = 0xFE
	markerTEM   = 0x01
)

// sofName names the frame types other than SOF3, for error messages.
func sofName(m byte) string {
	switch m {
	case 0xC0:
		return "baseline JPEG (SOF0)"
	case 0xC1:
		return "extended sequential JPEG (SOF1)"
	case 0xC2:
		return "progressive JPEG (SOF2)"
	case 0xC5:
		return "differential sequential JPEG (SOF5, hierarchical)"
	case 0xC6:
		return "differential progressive JPEG (SOF6, hierarchical)"
	case 0xC7:
		return "differential lossless JPEG (SOF7, hierarchical)"
	case 0xC9:
		return "arithmetic-coded extended sequential JPEG (SOF9)"
	case 0xCA:
		return "arithmetic-coded progressive JPEG (SOF10)"
	case 0xCB:
		return "arithmetic-coded lossless JPEG (SOF11)"
	case 0xCD:
		return "arithmetic-coded differential sequential JPEG (SOF13, hierarchical)"
	case 0xCE:
		return "arithmetic-coded differential progressive JPEG (SOF14, hierarchical)"
	case 0xCF:
		return "arithmetic-coded differential lossless JPEG (SOF15, hierarchical)"
	}
	return "unknown frame type"
}

// frameError explains why a frame marker other than SOF3 is refused.
func frameError(m byte) error {
	switch m {
	case 0xC0, 0xC1, 0xC2, 0xC9, 0xCA, 0xC5, 0xC6, 0xCD, 0xCE:
		return unsupportedf("%s is not lossless; only lossless JPEG process 14 (SOF3) is decoded", sofName(m))
	case 0xC7, 0xCB, 0xCF:
		return unsupportedf("%s is not supported; only Huffman-coded non-hierarchical lossless JPEG (SOF3) is decoded", sofName(m))
	case markerSOF55, markerLSE:
		return UnsupportedError("JPEG-LS (SOF55, DICOM 1.2.840.10008.1.2.4.80/.81) is not lossless JPEG process 14; it needs a JPEG-LS decoder")
	case markerDHP, markerEXP:
		return UnsupportedError("hierarchical JPEG (DHP/EXP markers) is not supported")
	}
	return formatErrorf("unexpected marker 0xFF%02X", m)
}

// component is one component of the frame.
type component struct {
	id      byte
	h, v    int
	decoded bool // a scan has filled it
}

// rawTable is a Huffman table as a DHT segment defines it.
type rawTable struct {
	defined bool
	counts  [17]int // counts[l]: number of codes of length l (1–16)
	vals    []byte  // symbols in code order; may be shorter than the counts say
}

// decoder holds the state of one Decode or DecodeConfig call.
type decoder struct {
	data []byte
	pos  int // offset of the next unread byte

	haveFrame bool
	width     int
	height    int
	precision int
	comps     []component
	restart   int // restart interval in MCUs, 0 if none

	tables [4]rawTable // DC tables by destination; lossless scans use these
	acTabs [4]rawTable // AC tables: legal in the stream, unused by lossless scans
	huff   [4]huffTable
	pix    []uint16
}

// Decode decodes a lossless JPEG stream (SOI … EOI). Bytes after the last
// needed scan, such as DICOM's even-length padding, are ignored.
func Decode(data []byte) (*Image, error) {
	d := &decoder{data: data}
	if err := d.decode(false); err != nil {
		return nil, err
	}
	return &Image{
		Width:      d.width,
		Height:     d.height,
		Components: len(d.comps),
		Precision:  d.precision,
		Pix:        d.pix,
	}, nil
}

// DecodeConfig reads the frame header of a lossless JPEG stream without
// decoding the samples.
func DecodeConfig(data []byte) (Config, error) {
	d := &decoder{data: data}
	if err := d.decode(true); err != nil {
		return Config{}, err
	}
	return Config{Width: d.width, Height: d.height, Components: len(d.comps), Precision: d.precision}, nil
}

// decode walks the marker segments. With configOnly it stops after the frame
// header.
func (d *decoder) decode(configOnly bool) error {
	if len(d.data) < 2 || d.data[0] != 0xFF || d.data[1] != markerSOI {
		if len(d.data) < 2 {
			return formatErrorf("%d bytes of data: too short for a JPEG stream", len(d.data))
		}
		return formatErrorf("missing SOI marker: data starts with 0x%02X 0x%02X, not 0xFF 0xD8", d.data[0], d.data[1])
	}
	d.pos = 2
	scans := 0
	for {
		m, ok := d.nextMarker()
		if !ok {
			return d.endOfData(scans)
		}
		switch {
		case m == markerSOF3:
			if err := d.readFrame(); err != nil {
				return err
			}
			if configOnly {
				return nil
			}
			if err := d.allocate(); err != nil {
				return err
			}
		case m >= markerSOF0 && m <= 0xCF && m != markerDHT && m != markerDAC,
			m == markerSOF55, m == markerLSE, m == markerDHP, m == markerEXP:
			return frameError(m)
		case m == markerDHT:
			if err := d.readDHT(); err != nil {
				return err
			}
		case m == markerDRI:
			if err := d.readDRI(); err != nil {
				return err
			}
		case m == markerSOS:
			if !d.haveFrame {
				return FormatError("scan (SOS) before any frame header: missing SOF3")
			}
			if err := d.readScan(); err != nil {
				return err
			}
			scans++
			if d.allDecoded() {
				return nil // what follows (EOI, padding) is not needed
			}
		case m == markerEOI:
			return d.endOfData(scans)
		case m == markerSOI:
			return FormatError("second SOI marker inside the stream")
		case m >= markerRST0 && m <= markerRST7, m == markerTEM:
			// Parameterless markers outside a scan carry nothing; libjpeg
			// ignores them too.
		case m >= markerAPP0 && m <= 0xEF, m == markerCOM, m == markerDQT,
			m == markerDAC, m == markerDNL, m >= markerJPG0 && m <= 0xFD:
			if _, err := d.segment(m); err != nil {
				return err
			}
		default:
			return formatErrorf("unknown marker 0xFF%02X at byte %d", m, d.pos-2)
		}
	}
}

// endOfData explains why the stream ended (EOI or no more data) before the
// image was complete.
func (d *decoder) endOfData(scans int) error {
	switch {
	case !d.haveFrame:
		return FormatError("no frame header: missing SOF3 marker (truncated or not a JPEG stream)")
	case scans == 0:
		return FormatError("no scan: missing SOS marker (truncated data)")
	}
	for i, c := range d.comps {
		if !c.decoded {
			return formatErrorf("component %d (id %d) is in no scan (truncated data)", i, c.id)
		}
	}
	return nil
}

func (d *decoder) allDecoded() bool {
	for _, c := range d.comps {
		if !c.decoded {
			return false
		}
	}
	return true
}

// nextMarker moves past the next marker and returns its code. Fill bytes
// (0xFF) and stray bytes before a marker are skipped, as libjpeg does.
func (d *decoder) nextMarker() (byte, bool) {
	m, pos, ok := nextMarker(d.data, d.pos)
	d.pos = pos
	return m, ok
}

// nextMarker finds the first marker at or after data[pos] and returns its
// code and the offset after it.
func nextMarker(data []byte, pos int) (m byte, next int, ok bool) {
	for pos < len(data) {
		if data[pos] != 0xFF {
			pos++
			continue
		}
		for pos < len(data) && data[pos] == 0xFF {
			pos++
		}
		if pos == len(data) {
			break
		}
		m := data[pos]
		pos++
		if m != 0 { // FF00 is a stuffed data byte, not a marker
			return m, pos, true
		}
	}
	return 0, pos, false
}

// segment returns the payload of the marker segment at d.pos (after the
// marker) and moves past it.
func (d *decoder) segment(m byte) ([]byte, error) {
	if len(d.data)-d.pos < 2 {
		return nil, formatErrorf("segment 0xFF%02X: length field cut off (truncated data)", m)
	}
	n := int(binary.BigEndian.Uint16(d.data[d.pos:]))
	if n < 2 {
		return nil, formatErrorf("segment 0xFF%02X: length %d < 2", m, n)
	}
	if n > len(d.data)-d.pos {
		return nil, formatErrorf("segment 0xFF%02X: length %d but only %d bytes left (truncated data)", m, n, len(d.data)-d.pos)
	}
	seg := d.data[d.pos+2 : d.pos+n]
	d.pos += n
	return seg, nil
}

// readFrame parses the SOF3 frame header (T.81 B.2.2).
func (d *decoder) readFrame() error {
	if d.haveFrame {
		return FormatError("second frame header (SOF3)")
	}
	seg, err := d.segment(markerSOF3)
	if err != nil {
		return err
	}
	if len(seg) < 6 {
		return formatErrorf("frame header: %d bytes, need at least 6", len(seg))
	}
	p := int(seg[0])
	h := int(binary.BigEndian.Uint16(seg[1:]))
	w := int(binary.BigEndian.Uint16(seg[3:]))
	nf := int(seg[5])
	switch {
	case p < 2 || p > 16:
		return formatErrorf("frame header: sample precision %d outside 2..16", p)
	case w == 0:
		return FormatError("frame header: width 0")
	case h == 0:
		return UnsupportedError("frame header: height 0 (height defined by a DNL marker)")
	case nf == 0:
		return FormatError("frame header: 0 components")
	case nf > 4:
		return unsupportedf("frame header: %d components (at most 4 are supported)", nf)
	case len(seg) < 6+3*nf:
		return formatErrorf("frame header: %d bytes for %d components, need %d", len(seg), nf, 6+3*nf)
	}
	if uint64(w)*uint64(h)*uint64(nf) > MaxSamples {
		return unsupportedf("frame %dx%d with %d components exceeds %d samples", w, h, nf, MaxSamples)
	}
	comps := make([]component, nf)
	for i := range comps {
		b := seg[6+3*i:]
		c := component{id: b[0], h: int(b[1] >> 4), v: int(b[1] & 15)}
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return formatErrorf("frame header: component %d has sampling factors %dx%d outside 1..4", c.id, c.h, c.v)
		}
		for _, o := range comps[:i] {
			if o.id == c.id {
				return formatErrorf("frame header: component id %d appears twice", c.id)
			}
		}
		if i > 0 && (c.h != comps[0].h || c.v != comps[0].v) {
			return unsupportedf("frame header: subsampled components (sampling %dx%d and %dx%d)",
				comps[0].h, comps[0].v, c.h, c.v)
		}
		comps[i] = c
	}
	d.haveFrame = true
	d.width, d.height, d.precision, d.comps = w, h, p, comps
	return nil
}

// allocate makes the sample buffer once the frame is known, after checking
// that the data can hold that many samples: every sample takes at least one
// bit of Huffman code, so a short stream cannot make us allocate much.
func (d *decoder) allocate() error {
	n := d.width * d.height * len(d.comps)
	if n/8 > len(d.data) {
		return formatErrorf("frame %dx%d with %d components needs at least %d bytes of coded data, stream has %d (truncated data)",
			d.width, d.height, len(d.comps), n/8, len(d.data))
	}
	d.pix = make([]uint16, n)
	return nil
}

// readDHT parses a DHT segment, which may define several tables (B.2.4.2).
func (d *decoder) readDHT() error {
	seg, err := d.segment(markerDHT)
	if err != nil {
		return err
	}
	// Fewer than 17 trailing bytes cannot hold a table; libjpeg ignores them.
	for len(seg) >= 17 {
		class, dest := seg[0]>>4, seg[0]&15
		if class > 1 || dest > 3 {
			return formatErrorf("DHT: table class %d destination %d (want class 0..1, destination 0..3)", class, dest)
		}
		var t rawTable
		total := 0
		for l := 1; l <= 16; l++ {
			t.counts[l] = int(seg[l])
			total += t.counts[l]
		}
		if total > 256 {
			return formatErrorf("DHT: table %d lists %d codes, more than 256", dest, total)
		}
		seg = seg[17:]
		// Some encoders write counts for more values than the segment holds.
		// Keep what is there; a code whose value is missing is an error only
		// if the scan uses it.
		n := min(total, len(seg))
		t.vals, seg = seg[:n], seg[n:]
		if err := checkCounts(&t.counts); err != nil {
			return formatErrorf("DHT: table %d: %v", dest, err)
		}
		t.defined = true
		if class == 0 {
			d.tables[dest] = t
		} else {
			d.acTabs[dest] = t
		}
	}
	return nil
}

// readDRI parses a restart interval definition (B.2.4.4).
func (d *decoder) readDRI() error {
	seg, err := d.segment(markerDRI)
	if err != nil {
		return err
	}
	if len(seg) < 2 {
		return formatErrorf("DRI: %d bytes, need 2", len(seg))
	}
	d.restart = int(binary.BigEndian.Uint16(seg))
	return nil
}

// scanHeader is a parsed SOS header.
type scanHeader struct {
	ns        int
	comp      [4]int // frame component index of each scan component
	table     [4]int // DC table destination of each scan component
	predictor int    // Ss: selection value 1..7
	pt        int    // Al: point transform
}

// readScan parses an SOS header (B.2.3) and decodes the scan that follows.
func (d *decoder) readScan() error {
	seg, err := d.segment(markerSOS)
	if err != nil {
		return err
	}
	if len(seg) < 1 {
		return FormatError("scan header: empty")
	}
	var s scanHeader
	s.ns = int(seg[0])
	if s.ns < 1 || s.ns > len(d.comps) {
		return formatErrorf("scan header: %d components in a frame of %d", s.ns, len(d.comps))
	}
	if len(seg) < 4+2*s.ns {
		return formatErrorf("scan header: %d bytes for %d components, need %d", len(seg), s.ns, 4+2*s.ns)
	}
	for k := 0; k < s.ns; k++ {
		id, td := seg[1+2*k], int(seg[2+2*k]>>4)
		ci := d.componentIndex(id)
		if ci < 0 {
			return formatErrorf("scan header: component id %d is not in the frame", id)
		}
		for _, o := range s.comp[:k] {
			if o == ci {
				return formatErrorf("scan header: component id %d appears twice", id)
			}
		}
		if d.comps[ci].decoded {
			return formatErrorf("scan header: component id %d was already in an earlier scan", id)
		}
		if td > 3 {
			return formatErrorf("scan header: component id %d uses Huffman table %d (want 0..3)", id, td)
		}
		if !d.tables[td].defined {
			return formatErrorf("scan header: component id %d uses Huffman table %d, which no DHT defined", id, td)
		}
		s.comp[k], s.table[k] = ci, td
	}
	rest := seg[1+2*s.ns:]
	s.predictor, s.pt = int(rest[0]), int(rest[2]&15)
	switch {
	case s.predictor == 0:
		return FormatError("scan header: predictor 0 (only for hierarchical mode)")
	case s.predictor > 7:
		return formatErrorf("scan header: predictor %d outside 1..7", s.predictor)
	case s.pt >= d.precision:
		return formatErrorf("scan header: point transform %d not below precision %d", s.pt, d.precision)
	}
	if s.ns > 1 && (d.comps[0].h != 1 || d.comps[0].v != 1) {
		return unsupportedf("interleaved scan with sampling factors %dx%d", d.comps[0].h, d.comps[0].v)
	}
	if d.restart > 0 && d.restart%d.width != 0 {
		// Like libjpeg: a restart interval must hold whole MCU rows, or the
		// first-line prediction rule after a restart would be undefined.
		return unsupportedf("restart interval %d is not a multiple of the %d MCUs per row", d.restart, d.width)
	}
	for k := 0; k < s.ns; k++ {
		td := s.table[k]
		if err := d.huff[td].build(&d.tables[td]); err != nil {
			return formatErrorf("Huffman table %d: %v", td, err)
		}
	}
	if err := d.decodeScan(&s); err != nil {
		return err
	}
	for k := 0; k < s.ns; k++ {
		d.comps[s.comp[k]].decoded = true
	}
	return nil
}

func (d *decoder) componentIndex(id byte) int {
	for i, c := range d.comps {
		if c.id == id {
			return i
		}
	}
	return -1
}
