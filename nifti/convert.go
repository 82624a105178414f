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
	le := binary.LittleEndian
	switch c.dt {
	case Uint8:
		for i, b := range raw[:len(dst)] {
			dst[i] = c.scale(float64(b))
		}
	case Int8:
		for i, b := range raw[:len(dst)] {
			dst[i] = c.scale(float64(int8(b)))
		}
	case Int16:
		for i := range dst {
			dst[i] = c.scale(float64(int16(le.Uint16(raw[2*i:]))))
		}
	case Uint16:
		for i := range dst {
			dst[i] = c.scale(float64(le.Uint16(raw[2*i:])))
		}
	case Int32:
		for i := range dst {
			dst[i] = c.scale(float64(int32(le.Uint32(raw[4*i:]))))
		}
	case Uint32:
		for i := range dst {
			dst[i] = c.scale(float64(le.Uint32(raw[4*i:])))
		}
	case Int64:
		for i := range dst {
			dst[i] = c.scale(float64(int64(le.Uint64(raw[8*i:]))))
		}
	case Uint64:
		for i := range dst {
			dst[i] = c.scale(float64(le.Uint64(raw[8*i:])))
		}
	case Float32:
		for i := range dst {
			dst[i] = c.scale(float64(math.Float32frombits(le.Uint32(raw[4*i:]))))
		}
	case Float64:
		for i := range dst {
			dst[i] = c.scale(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	default:
		return c.dt.check() // ParseHeader refuses these before data is read
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
