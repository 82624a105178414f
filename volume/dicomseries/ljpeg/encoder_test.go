package ljpeg

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// This file holds a small lossless JPEG encoder, written from T.81 Annex H
// independently of the decoder, so that round trips can exercise what the
// dcmtk-made files do not: every precision, 2–4 components, several scans,
// restart intervals, long Huffman codes, fill bytes and stray segments.

// encOptions selects how testEncode writes a stream.
type encOptions struct {
	predictor   int  // 1..7
	pt          int  // point transform
	restartRows int  // rows per restart interval, 0 for none
	multiScan   bool // one scan per component instead of one interleaved scan
	longCodes   bool // code lengths 1..16 assigned to categories at random
	fillBytes   bool // 0xFF fill bytes before markers
	extras      bool // APPn/COM segments, one DHT segment per table, padding after EOI
	seed        uint64
}

// huffCode is an encoding table: code and length of each category 0..16.
type huffCode struct {
	code   [17]uint32
	length [17]uint8
	counts [17]int // per code length, as DHT writes them
	vals   []byte  // categories in code order
}

// category returns the difference category (SSSS) of difference d in
// -32767..32768 and the extra bits that follow its code (T.81 H.1.2.2).
func category(d int) (t int, bits uint32) {
	if d == 32768 {
		return 16, 0
	}
	a := d
	if a < 0 {
		a = -a
	}
	for a > 0 {
		t++
		a >>= 1
	}
	if d < 0 {
		d += 1<<t - 1 // ones' complement of |d| in t bits
	}
	return t, uint32(d)
}

// optimalCode builds a length-limited Huffman code from category
// frequencies the way libjpeg's jpeg_gen_optimal_table does (T.81 K.2, K.3).
func optimalCode(freq [17]int) huffCode {
	var f [18]int
	copy(f[:], freq[:])
	f[17] = 1 // reserved so that no code is all ones
	var size [18]int
	others := [18]int{}
	for i := range others {
		others[i] = -1
	}
	for {
		c1, c2 := -1, -1
		for i := range f {
			if f[i] > 0 && (c1 < 0 || f[i] <= f[c1]) {
				c1 = i
			}
		}
		for i := range f {
			if f[i] > 0 && i != c1 && (c2 < 0 || f[i] <= f[c2]) {
				c2 = i
			}
		}
		if c2 < 0 {
			break
		}
		f[c1] += f[c2]
		f[c2] = 0
		for size[c1]++; others[c1] >= 0; size[c1]++ {
			c1 = others[c1]
		}
		others[c1] = c2
		for size[c2]++; others[c2] >= 0; size[c2]++ {
			c2 = others[c2]
		}
	}
	var bits [40]int
	for _, s := range size {
		if s > 0 {
			bits[s]++
		}
	}
	for i := len(bits) - 1; i > 16; i-- {
		for bits[i] > 0 {
			j := i - 2
			for bits[j] == 0 {
				j--
			}
			bits[i] -= 2
			bits[i-1]++
			bits[j+1] += 2
			bits[j]--
		}
	}
	i := 16
	for bits[i] == 0 {
		i--
	}
	bits[i]-- // drop the reserved code
	var h huffCode
	copy(h.counts[1:], bits[1:17])
	for l := 1; l <= 32; l++ {
		for s := 0; s <= 16; s++ {
			if size[s] == l {
				h.vals = append(h.vals, byte(s))
			}
		}
	}
	h.assign()
	return h
}

// chainCode gives the categories, in random order, code lengths 1, 2, …,
// 15, 16, 16: a full code whose long codes miss the lookup table.
func chainCode(rng *rand.Rand) huffCode {
	var h huffCode
	for l := 1; l <= 15; l++ {
		h.counts[l] = 1
	}
	h.counts[16] = 2
	h.vals = make([]byte, 17)
	for i, v := range rng.Perm(17) {
		h.vals[i] = byte(v)
	}
	h.assign()
	return h
}

// assign computes the canonical codes of h.vals from h.counts (T.81 C.2).
func (h *huffCode) assign() {
	code, k := uint32(0), 0
	for l := 1; l <= 16; l++ {
		for range h.counts[l] {
			s := h.vals[k]
			h.code[s], h.length[s] = code, uint8(l)
			code++
			k++
		}
		code <<= 1
	}
}

// bitWriter writes entropy-coded data with byte stuffing.
type bitWriter struct {
	out  []byte
	acc  uint64
	n    uint
	fill bool // write 0xFF fill bytes before markers
}

func (w *bitWriter) put(v uint32, n uint) {
	if n == 0 {
		return
	}
	w.acc = w.acc<<n | uint64(v)&(1<<n-1)
	w.n += n
	for w.n >= 8 {
		b := byte(w.acc >> (w.n - 8))
		w.out = append(w.out, b)
		if b == 0xFF {
			w.out = append(w.out, 0)
		}
		w.n -= 8
	}
}

// flush pads the last byte with 1 bits (T.81 F.1.2.3).
func (w *bitWriter) flush() {
	if w.n > 0 {
		w.put(1<<(8-w.n)-1, 8-w.n)
	}
}

func (w *bitWriter) marker(m byte) {
	if w.fill {
		w.out = append(w.out, 0xFF, 0xFF)
	}
	w.out = append(w.out, 0xFF, m)
}

func (w *bitWriter) segment(m byte, payload []byte) {
	w.marker(m)
	w.out = binary.BigEndian.AppendUint16(w.out, uint16(len(payload)+2))
	w.out = append(w.out, payload...)
}

// testPredict is the prediction for sample x of a row in a restart interval
// (T.81 H.1.2.1 and Table H.1); ra, rb, rc as in Figure H.1.
func testPredict(sel int, firstRow bool, x, initial, ra, rb, rc int) int {
	switch {
	case firstRow && x == 0:
		return initial
	case firstRow:
		return ra
	case x == 0:
		return rb
	}
	return [8]int{0, ra, rb, rc, ra + rb - rc, ra + ((rb - rc) >> 1), rb + ((ra - rc) >> 1), (ra + rb) >> 1}[sel]
}

// testEncode encodes pix (w x h, nf interleaved components, precision prec)
// as a lossless JPEG stream. Samples are reduced by the point transform
// first, so the decoder must return pix with the low o.pt bits cleared.
func testEncode(pix []uint16, w, h, nf, prec int, o encOptions) []byte {
	rng := rand.New(rand.NewPCG(o.seed, 7))
	bw := &bitWriter{fill: o.fillBytes}
	bw.out = []byte{0xFF, 0xD8}
	if o.extras {
		bw.segment(0xE1, []byte("Exif\x00\x00junk\xFF\xD9"))
		bw.segment(0xFE, []byte("comment with \xFF bytes"))
	}
	sof := []byte{byte(prec), byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(nf)}
	for c := range nf {
		sof = append(sof, byte(10+3*c), 0x11, 0)
	}
	bw.segment(0xC3, sof)
	if o.restartRows > 0 {
		bw.segment(0xDD, binary.BigEndian.AppendUint16(nil, uint16(o.restartRows*w)))
	}
	scans := [][]int{}
	if o.multiScan {
		for c := range nf {
			scans = append(scans, []int{c})
		}
	} else {
		scans = append(scans, []int{0, 1, 2, 3}[:nf])
	}
	q := make([]int, len(pix))
	for i, v := range pix {
		q[i] = int(v) >> o.pt
	}
	initial := 1 << (prec - o.pt - 1)
	for _, comps := range scans {
		// Differences in coding order.
		diffs := make([][]int, len(comps))
		var freq [4][17]int
		for y := range h {
			first := y == 0 || (o.restartRows > 0 && y%o.restartRows == 0)
			for x := range w {
				for k, c := range comps {
					at := func(x, y int) int { return q[(y*w+x)*nf+c] }
					var ra, rb, rc int
					if x > 0 {
						ra = at(x-1, y)
					}
					if y > 0 {
						rb = at(x, y-1)
					}
					if x > 0 && y > 0 {
						rc = at(x-1, y-1)
					}
					p := testPredict(o.predictor, first, x, initial, ra, rb, rc)
					d := (at(x, y) - p) & 0xFFFF
					if d > 32768 {
						d -= 65536
					}
					diffs[k] = append(diffs[k], d)
					t, _ := category(d)
					freq[k][t]++
				}
			}
		}
		// One table per scan component, at destination (c+1)%4.
		var tabs [4]huffCode
		dht := []byte{}
		for k, c := range comps {
			if o.longCodes {
				tabs[k] = chainCode(rng)
			} else {
				tabs[k] = optimalCode(freq[k])
			}
			tab := []byte{byte((c + 1) % 4)}
			for l := 1; l <= 16; l++ {
				tab = append(tab, byte(tabs[k].counts[l]))
			}
			tab = append(tab, tabs[k].vals...)
			if o.extras {
				bw.segment(0xC4, tab)
			} else {
				dht = append(dht, tab...)
			}
		}
		if len(dht) > 0 {
			bw.segment(0xC4, dht)
		}
		sos := []byte{byte(len(comps))}
		for _, c := range comps {
			sos = append(sos, byte(10+3*c), byte((c+1)%4)<<4)
		}
		sos = append(sos, byte(o.predictor), 0, byte(o.pt))
		bw.segment(0xDA, sos)
		i, rst := 0, 0
		for y := range h {
			if y > 0 && o.restartRows > 0 && y%o.restartRows == 0 {
				bw.flush()
				bw.marker(0xD0 + byte(rst))
				rst = (rst + 1) & 7
			}
			for range w {
				for k := range comps {
					t, bits := category(diffs[k][i])
					bw.put(tabs[k].code[t], uint(tabs[k].length[t]))
					if t < 16 {
						bw.put(bits, uint(t))
					}
				}
				i++
			}
		}
		bw.flush()
	}
	bw.marker(0xD9)
	if o.extras {
		bw.out = append(bw.out, 0, 0xFF, 0x12)
	}
	return bw.out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 11)) }

// testImage makes a w x h x nf image of precision prec in one of several
// styles: noise, smooth, extremes or constant.
func testImage(rng *rand.Rand, w, h, nf, prec int, style int) []uint16 {
	maxv := 1<<prec - 1
	pix := make([]uint16, w*h*nf)
	for i := range pix {
		x, y, c := (i/nf)%w, i/nf/w, i%nf
		var v int
		switch style {
		case 0:
			v = rng.IntN(maxv + 1)
		case 1:
			v = (x*37+y*11+c*1000)%(maxv+1) + rng.IntN(3) - 1
		case 2:
			v = []int{0, maxv, maxv / 2, maxv/2 + 1}[rng.IntN(4)]
		default:
			v = maxv / 3
		}
		pix[i] = uint16(min(max(v, 0), maxv))
	}
	return pix
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := [][2]int{{1, 1}, {1, 7}, {9, 1}, {2, 2}, {3, 5}, {17, 13}, {31, 8}, {64, 3}}
	n := 0
	for prec := 2; prec <= 16; prec++ {
		for pred := 1; pred <= 7; pred++ {
			for rep := range 4 {
				sz := sizes[rng.IntN(len(sizes))]
				w, h := sz[0], sz[1]
				nf := 1 + (prec+pred+rep)%4
				o := encOptions{
					predictor:   pred,
					pt:          rng.IntN(min(prec, 4)),
					multiScan:   nf > 1 && rng.IntN(2) == 0,
					longCodes:   rep == 1,
					fillBytes:   rng.IntN(2) == 0,
					extras:      rep == 2,
					restartRows: []int{0, 1, 2, 3}[rng.IntN(4)],
					seed:        uint64(n),
				}
				if rep == 0 {
					o.pt = 0
				}
				style := (rep + pred) % 4
				pix := testImage(rng, w, h, nf, prec, style)
				checkRoundTrip(t, pix, w, h, nf, prec, o)
				n++
			}
		}
	}
}

func checkRoundTrip(t *testing.T, pix []uint16, w, h, nf, prec int, o encOptions) {
	t.Helper()
	data := testEncode(pix, w, h, nf, prec, o)
	img, err := Decode(data)
	if err != nil {
		t.Fatalf("%dx%dx%d P=%d %+v: %v", w, h, nf, prec, o, err)
	}
	if img.Width != w || img.Height != h || img.Components != nf || img.Precision != prec {
		t.Fatalf("%+v: got %dx%dx%d P=%d, want %dx%dx%d P=%d", o,
			img.Width, img.Height, img.Components, img.Precision, w, h, nf, prec)
	}
	want := make([]uint16, len(pix))
	for i, v := range pix {
		want[i] = v >> o.pt << o.pt
	}
	if i := firstDiff(img.Pix, want); i >= 0 {
		t.Fatalf("%dx%dx%d P=%d %+v: sample %d (x=%d y=%d c=%d) = %d, want %d", w, h, nf, prec, o,
			i, (i/nf)%w, i/nf/w, i%nf, img.Pix[i], want[i])
	}
}

func firstDiff(a, b []uint16) int {
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestRoundTripLarge covers rows wider than the bit buffer and long restart
// runs, with 16-bit noise that reaches every difference category.
func TestRoundTripLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, o := range []encOptions{
		{predictor: 1},
		{predictor: 6, restartRows: 7},
		{predictor: 7, longCodes: true, restartRows: 50},
		{predictor: 4, pt: 2, fillBytes: true},
	} {
		for style := range 3 {
			pix := testImage(rng, 301, 77, 1, 16, style)
			checkRoundTrip(t, pix, 301, 77, 1, 16, o)
		}
	}
}

// TestDifference32768 checks SSSS 16: at 16 bits a difference of 32768 is
// coded by category 16 with no extra bits.
func TestDifference32768(t *testing.T) {
	if c, _ := category(-32768 & 0xFFFF); c != 16 {
		t.Fatalf("category(32768) = %d, want 16", c)
	}
	w, h := 11, 6
	pix := make([]uint16, w*h)
	for i := range pix {
		if (i/w+i%w)%2 == 1 {
			pix[i] = 32768 // differences alternate between 32768 and -32768 ≡ 32768
		}
	}
	for pred := 1; pred <= 7; pred++ {
		for _, long := range []bool{false, true} {
			o := encOptions{predictor: pred, longCodes: long}
			checkRoundTrip(t, pix, w, h, 1, 16, o)
		}
	}
}
