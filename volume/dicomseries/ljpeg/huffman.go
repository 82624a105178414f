package ljpeg

import "errors"

// lutBits is the code length the lookup table resolves in one step. Typical
// CT difference codes are shorter, and 2^10 int32 entries (4 KiB) stay in
// the L1 cache.
const lutBits = 10

// Lookup table entries. An entry of 0 means the code is longer than lutBits
// or its symbol is not a difference category (left to the slow path).
// Otherwise the low 5 bits are the number of bits the entry consumes and,
// if entryFull is set, the difference value is complete and stored in the
// bits from 8 up (signed); if not, bits 8..15 hold the category (1..15)
// whose extra bits still have to be read.
const (
	entryLenMask = 31
	entryFull    = 1 << 5
	noSymbol     = 0xFF // code whose value the DHT segment did not hold
)

// huffTable is a Huffman table prepared for decoding.
type huffTable struct {
	lut     [1 << lutBits]int32
	maxcode [17]int32 // largest code of each length, -1 if none
	valptr  [17]int32 // vals index of a length's first code, minus that code
	vals    [256]uint8
}

// checkCounts checks that the code lengths form a prefix code, as libjpeg's
// jpeg_make_d_derived_tbl does.
func checkCounts(counts *[17]int) error {
	code := 0
	for l := 1; l <= 16; l++ {
		code += counts[l]
		if code > 1<<l {
			return errors.New("code lengths over-subscribed (not a prefix code)")
		}
		code <<= 1
	}
	return nil
}

// build prepares h from a DHT table (T.81 Annex C and F.2.2.3).
func (h *huffTable) build(t *rawTable) error {
	if err := checkCounts(&t.counts); err != nil {
		return err
	}
	for i := range h.vals {
		h.vals[i] = noSymbol
	}
	copy(h.vals[:], t.vals)
	clear(h.lut[:])
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(t.counts[l])
		if n == 0 {
			h.maxcode[l] = -1
		} else {
			h.valptr[l] = k - code
			h.maxcode[l] = code + n - 1
		}
		for i := int32(0); i < n; i++ {
			if l <= lutBits {
				h.fill(uint(l), int(code), h.vals[k])
			}
			code++
			k++
		}
		code <<= 1
	}
	return nil
}

// fill sets the table entries of the code of length l, resolving the
// difference completely where the extra bits fit in the lookup too.
func (h *huffTable) fill(l uint, code int, sym uint8) {
	free := lutBits - l
	first := code << free
	if sym > 16 {
		return
	}
	extra := uint(sym)
	if sym == 16 {
		extra = 0 // SSSS 16: difference 32768, no extra bits (H.1.2.2)
	}
	for s := range 1 << free {
		e := int32(sym)<<8 | int32(l)
		if extra <= free {
			v := s >> (free - extra)
			e = int32(extend(v, uint(sym)))<<8 | entryFull | int32(l+extra)
		}
		h.lut[first+s] = e
	}
}

// extend turns the t extra bits v of difference category t into the
// difference (T.81 F.2.2.1, Table H.2).
func extend(v int, t uint) int {
	switch {
	case t == 0:
		return 0
	case t == 16:
		return 32768
	case v < 1<<(t-1):
		return v - 1<<t + 1
	}
	return v
}

// hasFF reports whether any byte of x is 0xFF.
func hasFF(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	v := ^x
	return (v-lo)&^v&hi != 0
}

// hasFF32 reports whether any byte of x is 0xFF.
func hasFF32(x uint32) bool {
	const lo, hi = 0x01010101, 0x80808080
	v := ^x
	return (v-lo)&^v&hi != 0
}
