package ljpeg

import "encoding/binary"

// bitReader reads the entropy-coded segment of a scan, removing byte
// stuffing (FF00). The valid bits of acc are at its top, n of them, and the
// bits below are zero. At a marker or the end of data it appends zero bits
// and counts them in virt, so the hot path needs no bounds checks; a scan
// that consumed any of them was truncated.
type bitReader struct {
	data     []byte
	pos      int
	acc      uint64
	n        uint
	virt     uint
	atMarker bool
	err      error
}

// fill tops acc up to at least 57 bits.
func (r *bitReader) fill() {
	if !r.atMarker && r.pos+8 <= len(r.data) {
		x := binary.BigEndian.Uint64(r.data[r.pos:])
		if !hasFF(x) {
			k := (64 - r.n) >> 3 // whole bytes that fit
			nb := k * 8
			r.acc |= x >> (64 - nb) << (64 - r.n - nb)
			r.n += nb
			r.pos += int(k)
			return
		}
	}
	r.fillSlow()
}

// fillSlow fills byte by byte near a 0xFF byte or the end of the data.
func (r *bitReader) fillSlow() {
	for r.n <= 56 {
		if r.atMarker || r.pos >= len(r.data) {
			r.atMarker = true
			r.virt += 64 - r.n
			r.n = 64
			return
		}
		b := r.data[r.pos]
		if b == 0xFF {
			if r.pos+1 >= len(r.data) || r.data[r.pos+1] != 0 {
				r.atMarker = true // a marker, or fill bytes before one
				continue
			}
			r.pos++
		}
		r.pos++
		r.acc |= uint64(b) << (56 - r.n)
		r.n += 8
	}
}

// overrun reports whether the decoder consumed bits that the data did not
// hold.
func (r *bitReader) overrun() bool { return r.virt > r.n }

// diff decodes one difference value with table h (T.81 H.2.2).
func (r *bitReader) diff(h *huffTable) int {
	if r.n < 32 {
		r.fill()
	}
	e := h.lut[r.acc>>(64-lutBits)]
	if e&entryFull != 0 {
		l := uint(e & entryLenMask)
		r.acc <<= l
		r.n -= l
		return int(e >> 8)
	}
	return r.diffSlow(h, e)
}

// diffSlow handles codes longer than lutBits and codes whose extra bits did
// not fit in the lookup table.
func (r *bitReader) diffSlow(h *huffTable, e int32) int {
	var l uint
	var sym uint8
	if e != 0 {
		l, sym = uint(e&entryLenMask), uint8(e>>8)
	} else {
		code := int32(r.acc >> 48)
		for l = 1; l <= 16; l++ {
			c := code >> (16 - l)
			if c <= h.maxcode[l] {
				sym = h.vals[(h.valptr[l]+c)&255]
				break
			}
		}
		if l > 16 {
			r.fail(FormatError("invalid Huffman code in scan data"))
			return 0
		}
	}
	r.acc <<= l
	r.n -= l
	switch {
	case sym == noSymbol:
		r.fail(FormatError("scan uses a Huffman code that its DHT lists no value for"))
		return 0
	case sym > 16:
		r.fail(formatErrorf("difference category %d in scan data (at most 16)", sym))
		return 0
	case sym == 0:
		return 0
	case sym == 16:
		return 32768
	}
	t := uint(sym)
	v := int(r.acc >> (64 - t))
	r.acc <<= t
	r.n -= t
	return extend(v, t)
}

func (r *bitReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// restart discards the bits left before a restart marker and reads the
// marker, which must be RSTn with n = want.
func (r *bitReader) restart(want int) error {
	if r.overrun() {
		return FormatError("scan data ends before a restart interval is complete (truncated data)")
	}
	r.acc, r.n, r.virt, r.atMarker = 0, 0, 0, false
	m, pos, ok := nextMarker(r.data, r.pos)
	if !ok {
		return formatErrorf("data ends where restart marker RST%d is due (truncated data)", want)
	}
	if m != markerRST0+byte(want) {
		return formatErrorf("found marker 0xFF%02X where restart marker RST%d is due", m, want)
	}
	r.pos = pos
	return nil
}

// scanState is what the row decoders need of a scan.
type scanState struct {
	r         bitReader
	nf        int // components in the frame: the pixel stride in Pix
	ns        int
	off       [4]int // frame component index of each scan component
	tab       [4]*huffTable
	predictor int
	initial   int // prediction at the start of the scan and of each restart interval
}

// decodeScan decodes the entropy-coded data at d.pos into d.pix.
func (d *decoder) decodeScan(h *scanHeader) error {
	s := scanState{
		r:         bitReader{data: d.data, pos: d.pos},
		nf:        len(d.comps),
		ns:        h.ns,
		predictor: h.predictor,
		initial:   1 << (d.precision - h.pt - 1),
	}
	for k := 0; k < h.ns; k++ {
		s.off[k] = h.comp[k]
		s.tab[k] = &d.huff[h.table[k]]
	}
	rowsPerInterval := d.height
	if d.restart > 0 {
		rowsPerInterval = d.restart / d.width
	}
	stride := d.width * s.nf
	var prev []uint16
	for y, rst := 0, 0; y < d.height; y++ {
		first := y%rowsPerInterval == 0
		if first && y > 0 {
			if err := s.r.restart(rst); err != nil {
				return err
			}
			rst = (rst + 1) & 7
		}
		cur := d.pix[y*stride : (y+1)*stride]
		if s.nf == 1 {
			s.rowGray(cur, prev, first)
		} else {
			s.row(cur, prev, first)
		}
		if s.r.err != nil {
			return s.r.err
		}
		if s.r.overrun() {
			return formatErrorf("scan data ends in row %d of %d (truncated data)", y, d.height)
		}
		prev = cur
	}
	d.pos = s.r.pos
	if h.pt > 0 {
		for k := 0; k < h.ns; k++ {
			for i := s.off[k]; i < len(d.pix); i += s.nf {
				d.pix[i] <<= h.pt
			}
		}
	}
	return nil
}

// predict computes prediction sel from the samples left (ra), above (rb)
// and above-left (rc), T.81 Table H.1. Shifts are arithmetic, as in libjpeg.
func predict(sel, ra, rb, rc int) int {
	switch sel {
	case 1:
		return ra
	case 2:
		return rb
	case 3:
		return rc
	case 4:
		return ra + rb - rc
	case 5:
		return ra + (rb-rc)>>1
	case 6:
		return rb + (ra-rc)>>1
	}
	return (ra + rb) >> 1
}

// rowGray decodes a row of a single-component scan. In the first row of the
// scan or of a restart interval the first sample is predicted by the
// initial value and the others by their left neighbour; in other rows the
// first sample is predicted from above and the others by the scan's
// predictor (H.1.2.1). Sums wrap modulo 2^16.
//
// This is the hot loop of CT decoding. The runs of samples whose codes the
// lookup table resolves are decoded by leaf functions without calls, which
// keeps their state in registers; refills near 0xFF bytes, markers and the
// end of data, and codes longer than lutBits are handled here. (At a marker
// the runs cannot refill, since the marker starts with 0xFF, so they never
// read past it.)
func (s *scanState) rowGray(cur, prev []uint16, first bool) {
	r, h := &s.r, s.tab[0]
	sel := s.predictor
	if first {
		cur[0] = uint16(s.initial + r.diff(h))
		sel = 1
	} else {
		prev = prev[:len(cur)]
		cur[0] = uint16(int(prev[0]) + r.diff(h))
	}
	for x := 1; x < len(cur); {
		if r.n < 32 {
			r.fill()
		}
		if h.lut[r.acc>>(64-lutBits)] == 0 {
			d := r.diffSlow(h, 0)
			p := int(cur[x-1])
			if sel != 1 {
				p = predict(sel, p, int(prev[x]), int(prev[x-1]))
			}
			cur[x] = uint16(p + d)
			x++
			continue
		}
		if sel == 1 {
			x, r.acc, r.n, r.pos = runLeft(cur, x, &h.lut, r.data, r.acc, r.n, r.pos)
		} else {
			x, r.acc, r.n, r.pos = runPredict(cur, prev, x, sel, &h.lut, r.data, r.acc, r.n, r.pos)
		}
	}
}

// lutDiff decodes the difference of a table entry e that is not 0, given
// the bit buffer (acc, n) with at least 32 bits. It returns the difference
// and the buffer after its bits.
func lutDiff(e int32, acc uint64, n uint) (int, uint64, uint) {
	l := uint(e & entryLenMask)
	acc <<= l
	n -= l
	if e&entryFull != 0 {
		return int(e >> 8), acc, n
	}
	// A short code for category t, then t extra bits (F.2.2.1).
	t := uint(e>>8) & 15 // 1..15; the masks below spare the compiler's shift checks
	d := int(acc >> ((64 - t) & 63))
	if d < 1<<((t-1)&63) {
		d += 1 - 1<<t
	}
	return d, acc << t, n - t
}

// runLeft decodes cur[x:] with predictor 1 (the left neighbour) for as
// long as the lookup table resolves the codes and the buffer can be refilled
// from whole bytes without 0xFF; it returns where it stopped and the bit
// reader's new state. It decodes at least one sample if the code at the
// start of the buffer (which holds at least 32 bits) is in the table.
func runLeft(cur []uint16, x int, lut *[1 << lutBits]int32, data []byte, acc uint64, n uint, pos int) (int, uint64, uint, int) {
	ra := int(cur[x-1])
	for ; x < len(cur); x++ {
		if n < 32 {
			// Refill 4 bytes if none is 0xFF; otherwise leave it to fill.
			if pos+4 > len(data) {
				break
			}
			w := binary.BigEndian.Uint32(data[pos:])
			if hasFF32(w) {
				break
			}
			acc |= uint64(w) << ((32 - n) & 63)
			n += 32
			pos += 4
		}
		e := lut[acc>>(64-lutBits)]
		if e == 0 {
			break
		}
		var d int
		d, acc, n = lutDiff(e, acc, n)
		ra = int(uint16(ra + d))
		cur[x] = uint16(ra)
	}
	return x, acc, n, pos
}

// runPredict is runLeft for predictors 2..7, which also use the row above.
func runPredict(cur, prev []uint16, x, sel int, lut *[1 << lutBits]int32, data []byte, acc uint64, n uint, pos int) (int, uint64, uint, int) {
	prev = prev[:len(cur)]
	for ; x < len(cur); x++ {
		if n < 32 {
			// Refill 4 bytes if none is 0xFF; otherwise leave it to fill.
			if pos+4 > len(data) {
				break
			}
			w := binary.BigEndian.Uint32(data[pos:])
			if hasFF32(w) {
				break
			}
			acc |= uint64(w) << ((32 - n) & 63)
			n += 32
			pos += 4
		}
		e := lut[acc>>(64-lutBits)]
		if e == 0 {
			break
		}
		var d int
		d, acc, n = lutDiff(e, acc, n)
		p := predict(sel, int(cur[x-1]), int(prev[x]), int(prev[x-1]))
		cur[x] = uint16(p + d)
	}
	return x, acc, n, pos
}

// row decodes one row of a scan in a multi-component frame, its components
// interleaved sample by sample.
func (s *scanState) row(cur, prev []uint16, first bool) {
	nf := s.nf
	for k := 0; k < s.ns; k++ {
		i := s.off[k]
		p := s.initial
		if !first {
			p = int(prev[i])
		}
		cur[i] = uint16(p + s.r.diff(s.tab[k]))
	}
	for base := nf; base < len(cur); base += nf {
		for k := 0; k < s.ns; k++ {
			i := base + s.off[k]
			var p int
			if first {
				p = int(cur[i-nf])
			} else {
				p = predict(s.predictor, int(cur[i-nf]), int(prev[i]), int(prev[i-nf]))
			}
			cur[i] = uint16(p + s.r.diff(s.tab[k]))
		}
	}
}
