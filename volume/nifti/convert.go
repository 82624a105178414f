package nifti

import (
	"encoding/binary"
	"math"
)

// converter turns raw voxel bytes into scaled float32 values.
type converter struct {
	dt           Datatype
	swap         bool // the data is big-endian
	slope, inter float64
	mul, add     bool // apply slope / intercept (nibabel skips 1 and 0)
}

// scale applies the scaling in float64 and rounds once to float32, as
// nibabel does (it scales integer data in float64). The conversion after
// the product keeps the compiler from fusing it with the sum.
func (c *converter) scale(v float64) float32 {
	if c.mul {
		v = float64(v * c.slope)
	}
	if c.add {
		v += c.inter
	}
	return float32(v)
}

// run converts len(dst) voxels from raw, which holds exactly that many. A
// big-endian raw is byte-swapped in place first.
func (c *converter) run(dst []float32, raw []byte) error {
	if c.swap {
		swapBytes(raw, c.dt.Size())
	}
	raw = raw[:len(dst)*c.dt.Size()]
	le := binary.LittleEndian
	// Types whose every value is a float32 are converted first and scaled
	// in a second pass (the value in float64 is the same either way), so
	// that the common unscaled case is a plain loop.
	switch c.dt {
	case Uint8:
		for i, b := range raw {
			dst[i] = float32(b)
		}
	case Int8:
		for i, b := range raw {
			dst[i] = float32(int8(b))
		}
	case Int16:
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(raw[2*i:])))
		}
	case Uint16:
		for i := range dst {
			dst[i] = float32(le.Uint16(raw[2*i:]))
		}
	case Float32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	// Wider types are scaled in float64 before their one rounding to
	// float32.
	case Int32:
		for i := range dst {
			dst[i] = c.scale(float64(int32(le.Uint32(raw[4*i:]))))
		}
		return nil
	case Uint32:
		for i := range dst {
			dst[i] = c.scale(float64(le.Uint32(raw[4*i:])))
		}
		return nil
	case Int64:
		for i := range dst {
			dst[i] = c.scale(float64(int64(le.Uint64(raw[8*i:]))))
		}
		return nil
	case Uint64:
		for i := range dst {
			dst[i] = c.scale(float64(le.Uint64(raw[8*i:])))
		}
		return nil
	case Float64:
		for i := range dst {
			dst[i] = c.scale(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
		return nil
	default:
		return c.dt.check() // ParseHeader refuses these before data is read
	}
	if c.mul || c.add {
		for i, x := range dst {
			dst[i] = c.scale(float64(x))
		}
	}
	return nil
}

// swapBytes reverses the byte order of each size-byte element of b.
func swapBytes(b []byte, size int) {
	switch size {
	case 2:
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	case 4:
		for i := 0; i+3 < len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], binary.BigEndian.Uint32(b[i:]))
		}
	case 8:
		for i := 0; i+7 < len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.BigEndian.Uint64(b[i:]))
		}
	}
}
