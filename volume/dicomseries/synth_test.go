package dicomseries

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// A minimal DICOM writer for tests: every transfer syntax this package
// reads, and broken files on demand.

type rawElem struct {
	t   tag.Tag
	vr  string
	val []byte // encoded in the dataset's byte order
	// undefined writes an undefined length (val then holds the items).
	undefined bool
}

// sliceSpec describes one synthetic slice file.
type sliceSpec struct {
	ts         string // transfer syntax UID
	noMeta     bool   // write the dataset alone (no preamble, no meta)
	series     string
	desc       string
	instance   int
	rows, cols int
	ipp        [3]float64
	iop        [6]float64
	spacing    [2]float64 // between rows, between columns
	thickness  float64
	bitsAlloc  int
	bitsStored int
	highBit    int
	pixelRep   int
	slope      float64
	intercept  float64
	stored     []uint32 // the words written, rows*cols (high bits included)
	frames     int      // NumberOfFrames (0: not written)
	samples    int      // SamplesPerPixel (0: 1)
	omit       map[tag.Tag]bool
	// jpeg: encode the stored values as JPEG Lossless (SV1) fragments;
	// fragments > 1 splits the stream into that many items.
	jpeg      bool
	fragments int
	jpegW     int       // the JPEG stream's width when not cols (then height: len(stored)/jpegW)
	extra     []rawElem // further elements (encoded as given)
}

// axialSpec returns a 16-bit signed axial slice with LPS origin ipp.
func axialSpec(series string, rows, cols int) sliceSpec {
	return sliceSpec{
		ts: tsExplicitLE, series: series, desc: "synthetic " + series, rows: rows, cols: cols,
		iop: [6]float64{1, 0, 0, 0, 1, 0}, spacing: [2]float64{0.8, 0.7}, thickness: 2,
		bitsAlloc: 16, bitsStored: 16, highBit: 15, pixelRep: 1, slope: 1, intercept: -1024,
	}
}

// order is a byte order that can also append.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

func (s *sliceSpec) encode() []byte {
	b, implicit := syntaxOf(s.ts)
	bo := b.(order)
	var els []rawElem
	add := func(t tag.Tag, vr string, val []byte) {
		if !s.omit[t] {
			els = append(els, rawElem{t: t, vr: vr, val: val})
		}
	}
	str := func(t tag.Tag, vr, v string) {
		b := []byte(v)
		if len(b)%2 == 1 {
			if vr == "UI" {
				b = append(b, 0)
			} else {
				b = append(b, ' ')
			}
		}
		add(t, vr, b)
	}
	us := func(t tag.Tag, v int) {
		b := make([]byte, 2)
		bo.PutUint16(b, uint16(v))
		add(t, "US", b)
	}
	ds := func(t tag.Tag, v ...float64) {
		p := make([]string, len(v))
		for i, x := range v {
			p[i] = strconv.FormatFloat(x, 'g', 10, 64)
		}
		str(t, "DS", strings.Join(p, `\`))
	}
	str(tag.SpecificCharacterSet, "CS", "ISO_IR 100")
	str(tag.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.2")
	str(tag.SOPInstanceUID, "UI", fmt.Sprintf("%s.%d", s.series, s.instance+1000))
	str(tag.Modality, "CS", "CT")
	str(tag.SeriesDescription, "LO", s.desc)
	if s.thickness > 0 {
		ds(tag.SliceThickness, s.thickness)
	}
	str(tag.SeriesInstanceUID, "UI", s.series)
	str(tag.SeriesNumber, "IS", "1")
	str(tag.InstanceNumber, "IS", strconv.Itoa(s.instance))
	ds(tag.ImagePositionPatient, s.ipp[:]...)
	ds(tag.ImageOrientationPatient, s.iop[:]...)
	samples := s.samples
	if samples == 0 {
		samples = 1
	}
	us(tag.SamplesPerPixel, samples)
	str(tag.PhotometricInterpretation, "CS", map[bool]string{true: "MONOCHROME2", false: "RGB"}[samples == 1])
	if s.frames > 0 {
		str(tag.NumberOfFrames, "IS", strconv.Itoa(s.frames))
	}
	us(tag.Rows, s.rows)
	us(tag.Columns, s.cols)
	ds(tag.PixelSpacing, s.spacing[:]...)
	us(tag.BitsAllocated, s.bitsAlloc)
	us(tag.BitsStored, s.bitsStored)
	us(tag.HighBit, s.highBit)
	us(tag.PixelRepresentation, s.pixelRep)
	ds(tag.RescaleIntercept, s.intercept)
	ds(tag.RescaleSlope, s.slope)
	if s.jpeg {
		els = append(els, rawElem{t: tag.PixelData, vr: "OB", val: s.encapsulated(bo), undefined: true})
	} else {
		px := make([]byte, 0, len(s.stored)*s.bitsAlloc/8+1)
		for _, w := range s.stored {
			switch s.bitsAlloc {
			case 8:
				px = append(px, byte(w))
			case 16:
				px = bo.AppendUint16(px, uint16(w))
			case 32:
				px = bo.AppendUint32(px, w)
			}
		}
		vr := "OW"
		if s.bitsAlloc == 8 {
			vr = "OB"
		}
		if len(px)%2 == 1 {
			px = append(px, 0)
		}
		add(tag.PixelData, vr, px)
	}
	els = append(els, s.extra...)
	sort.SliceStable(els, func(a, b int) bool { return els[a].t.Uint32() < els[b].t.Uint32() })
	var body bytes.Buffer
	for _, e := range els {
		writeElem(&body, bo, implicit, e)
	}
	data := body.Bytes()
	if s.ts == tsDeflatedLE {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestSpeed)
		w.Write(data)
		w.Close()
		data = z.Bytes()
	}
	if s.noMeta {
		return data
	}
	return append(partTenMeta(s.ts), data...)
}

// encapsulated returns the items of JPEG-compressed pixel data: an empty
// basic offset table, the fragments, the sequence delimiter.
func (s *sliceSpec) encapsulated(bo order) []byte {
	pix := make([]uint16, len(s.stored))
	for i, w := range s.stored {
		pix[i] = uint16(w)
	}
	w, h := s.cols, s.rows
	if s.jpegW > 0 {
		w, h = s.jpegW, len(pix)/s.jpegW
	}
	stream := encodeLosslessJPEG(pix, w, h, s.bitsStored)
	if len(stream)%2 == 1 {
		stream = append(stream, 0)
	}
	n := max(s.fragments, 1)
	var b bytes.Buffer
	item := func(t tag.Tag, v []byte) {
		b.Write(bo.AppendUint16(nil, t.Group))
		b.Write(bo.AppendUint16(nil, t.Element))
		b.Write(bo.AppendUint32(nil, uint32(len(v))))
		b.Write(v)
	}
	item(tag.Item, nil)
	size := (len(stream)/n + 1) &^ 1
	for off := 0; off < len(stream); off += size {
		item(tag.Item, stream[off:min(off+size, len(stream))])
	}
	item(tag.SequenceDelimitationItem, nil)
	return b.Bytes()
}

func writeElem(b *bytes.Buffer, bo order, implicit bool, e rawElem) {
	b.Write(bo.AppendUint16(nil, e.t.Group))
	b.Write(bo.AppendUint16(nil, e.t.Element))
	n := uint32(len(e.val))
	if e.undefined {
		n = undefinedLength
	}
	switch {
	case implicit:
		b.Write(bo.AppendUint32(nil, n))
	case isLongVR(e.vr):
		b.WriteString(e.vr)
		b.Write([]byte{0, 0})
		b.Write(bo.AppendUint32(nil, n))
	default:
		b.WriteString(e.vr)
		b.Write(bo.AppendUint16(nil, uint16(n)))
	}
	b.Write(e.val)
}

// partTenMeta returns preamble, magic and file meta information.
func partTenMeta(ts string) []byte {
	var m bytes.Buffer
	le := binary.LittleEndian
	writeElem(&m, le, false, rawElem{t: tag.FileMetaInformationVersion, vr: "OB", val: []byte{0, 1}})
	writeElem(&m, le, false, rawElem{t: tag.MediaStorageSOPClassUID, vr: "UI", val: []byte("1.2.840.10008.5.1.4.1.1.2\x00")})
	writeElem(&m, le, false, rawElem{t: tag.MediaStorageSOPInstanceUID, vr: "UI", val: []byte("1.2.3.4\x00")})
	v := ts
	if len(v)%2 == 1 {
		v += "\x00"
	}
	writeElem(&m, le, false, rawElem{t: tag.TransferSyntaxUID, vr: "UI", val: []byte(v)})
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	writeElem(&out, le, false, rawElem{t: tag.FileMetaInformationGroupLength, vr: "UL", val: le.AppendUint32(nil, uint32(m.Len()))})
	out.Write(m.Bytes())
	return out.Bytes()
}

// stack describes a synthetic series: n slices from origin along the
// normal of iop, step mm apart, in LPS.
type stack struct {
	base   sliceSpec
	n      int
	origin [3]float64
	step   float64
	// value gives the stored word of pixel (row j, column i) of the slice
	// at position index k along the normal.
	value func(i, j, k int) uint32
	// edit, when set, changes slice k's spec before it is written.
	edit func(k int, s *sliceSpec)
}

func (st stack) normal() [3]float64 {
	var r, c [3]float64
	copy(r[:], st.base.iop[:3])
	copy(c[:], st.base.iop[3:])
	n := cross(r, c)
	return scale(n, 1/norm(n))
}

// specs returns the slice specs, in position order.
func (st stack) specs() []sliceSpec {
	n := st.normal()
	out := make([]sliceSpec, st.n)
	for k := range out {
		s := st.base
		s.instance = st.n - k // instance numbers run against the position
		s.ipp = [3]float64{}
		for a := 0; a < 3; a++ {
			s.ipp[a] = st.origin[a] + float64(k)*st.step*n[a]
		}
		s.stored = make([]uint32, s.rows*s.cols)
		for j := 0; j < s.rows; j++ {
			for i := 0; i < s.cols; i++ {
				s.stored[j*s.cols+i] = st.value(i, j, k)
			}
		}
		if st.edit != nil {
			st.edit(k, &s)
		}
		out[k] = s
	}
	return out
}

// writeFiles writes specs to shuffled names in nested folders under dir
// and returns the paths in spec order.
func writeFiles(t testing.TB, dir string, specs []sliceSpec, seed int64) []string {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	perm := rng.Perm(len(specs))
	paths := make([]string, len(specs))
	for k, s := range specs {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", perm[k]%3), fmt.Sprintf("e%d", perm[k]%2))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		paths[k] = filepath.Join(sub, fmt.Sprintf("IMG%04d", perm[k]))
		if err := os.WriteFile(paths[k], s.encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// encodeLosslessJPEG writes a JPEG Lossless stream (process 14, selection
// value 1, point transform 0) of one component with a fixed Huffman table
// in which every difference category 0..16 has a 5-bit code.
func encodeLosslessJPEG(pix []uint16, w, h, precision int) []byte {
	var out bytes.Buffer
	seg := func(marker byte, body []byte) {
		out.Write([]byte{0xFF, marker, byte((len(body) + 2) >> 8), byte(len(body) + 2)})
		out.Write(body)
	}
	out.Write([]byte{0xFF, 0xD8}) // SOI
	seg(0xC3, []byte{byte(precision), byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0})
	bits := make([]byte, 16)
	bits[4] = 17 // seventeen codes of length 5
	dht := append([]byte{0x00}, bits...)
	for c := 0; c <= 16; c++ {
		dht = append(dht, byte(c))
	}
	seg(0xC4, dht)
	seg(0xDA, []byte{1, 1, 0x00, 1, 0, 0}) // Ss=1 (predictor), Se=0, Ah/Al=0
	var acc uint64
	var nacc uint
	put := func(v uint32, n uint) {
		acc = acc<<n | uint64(v)&(1<<n-1)
		nacc += n
		for nacc >= 8 {
			b := byte(acc >> (nacc - 8))
			out.WriteByte(b)
			if b == 0xFF {
				out.WriteByte(0)
			}
			nacc -= 8
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var pred int
			switch {
			case x == 0 && y == 0:
				pred = 1 << (precision - 1)
			case x == 0: // a line starts with the sample above
				pred = int(pix[(y-1)*w])
			default: // selection value 1: the sample to the left
				pred = int(pix[y*w+x-1])
			}
			d := (int(pix[y*w+x]) - pred) & 0xFFFF // modulo 2^16
			if d >= 0x8000 {
				d -= 0x10000
			}
			ssss := category(d)
			put(uint32(ssss), 5) // the code of category c is c (5 bits)
			if ssss > 0 && ssss < 16 {
				v := d
				if d < 0 {
					v = d + (1 << ssss) - 1
				}
				put(uint32(v), uint(ssss))
			}
		}
	}
	if nacc > 0 {
		put(1<<(8-nacc)-1, 8-nacc) // pad with ones
	}
	out.Write([]byte{0xFF, 0xD9}) // EOI
	return out.Bytes()
}

// category is the number of bits of |d| (16 for -32768).
func category(d int) int {
	a := d
	if a < 0 {
		a = -a
	}
	n := 0
	for a > 0 {
		n++
		a >>= 1
	}
	return n
}

// lpsWorld is where DICOM places the centre of pixel (column i, row j) of
// a slice (its definition, independent of the reader's affine), in RAS.
func lpsWorld(s sliceSpec, i, j float64) [3]float64 {
	var w [3]float64
	for a := 0; a < 3; a++ {
		w[a] = s.ipp[a] + i*s.spacing[1]*s.iop[a] + j*s.spacing[0]*s.iop[3+a]
	}
	return [3]float64{-w[0], -w[1], w[2]}
}

func near(a, b [3]float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}
