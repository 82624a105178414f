package dicomseries

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/suyashkumar/dicom/pkg/uid"
)

// pixelFormat says how one slice's stored values become HU.
type pixelFormat struct {
	bitsAlloc  int // 8, 16 or 32 bits per stored sample
	bitsStored int // significant bits, 1..bitsAlloc
	highBit    int // most significant stored bit, bitsStored-1..bitsAlloc-1
	signed     bool
	bigEndian  bool
	slope      float64 // RescaleSlope
	intercept  float64 // RescaleIntercept
}

// formatOf checks a header's pixel attributes and returns its format.
func formatOf(h *header) (pixelFormat, error) {
	f := pixelFormat{
		bitsAlloc: h.bitsAlloc, bitsStored: h.bitsStored, highBit: h.highBit,
		signed: h.pixelRep == 1, bigEndian: h.ts == tsExplicitBE,
		slope: h.slope, intercept: h.intercept,
	}
	switch {
	case h.frames > 1:
		return f, fmt.Errorf("multi-frame image (NumberOfFrames %d): enhanced multi-frame CT is not supported; convert it to one file per slice (e.g. dcm2niix, or dcmtk/dcm4che's emf2sf)", h.frames)
	case h.frames < 1:
		return f, fmt.Errorf("NumberOfFrames is %d", h.frames)
	case h.samples != 1:
		return f, fmt.Errorf("SamplesPerPixel is %d (%s): only greyscale images are supported", h.samples, h.photometric)
	case h.photometric != "" && !strings.HasPrefix(h.photometric, "MONOCHROME"):
		return f, fmt.Errorf("PhotometricInterpretation %s: only greyscale (MONOCHROME1/2) images are supported", h.photometric)
	case f.bitsAlloc != 8 && f.bitsAlloc != 16 && f.bitsAlloc != 32:
		return f, fmt.Errorf("BitsAllocated %d is not supported (8, 16 or 32)", f.bitsAlloc)
	case f.bitsStored < 1 || f.bitsStored > f.bitsAlloc:
		return f, fmt.Errorf("BitsStored %d does not fit BitsAllocated %d", f.bitsStored, f.bitsAlloc)
	case f.highBit < f.bitsStored-1 || f.highBit >= f.bitsAlloc:
		return f, fmt.Errorf("HighBit %d does not fit BitsStored %d and BitsAllocated %d", f.highBit, f.bitsStored, f.bitsAlloc)
	case h.pixelRep != 0 && h.pixelRep != 1:
		return f, fmt.Errorf("PixelRepresentation is %d (0: unsigned, 1: signed)", h.pixelRep)
	case !finite(f.slope) || f.slope == 0 || !finite(f.intercept):
		return f, fmt.Errorf("RescaleSlope %g / RescaleIntercept %g are not usable", f.slope, f.intercept)
	}
	return f, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// checkSyntax refuses transfer syntaxes whose pixel data this package cannot
// decode, saying how to convert them.
func checkSyntax(ts string) error {
	switch ts {
	case tsImplicitLE, tsExplicitLE, tsExplicitBE, tsDeflatedLE, tsJPEGLossless, tsJPEGLosslessSV1:
		return nil
	}
	name := "unknown"
	if info, err := uid.Lookup(ts); err == nil {
		name = info.Name
	}
	return fmt.Errorf("transfer syntax %s (%s) is not supported: only uncompressed, deflated and JPEG Lossless (1.2.840.10008.1.2.4.57/.70) are; convert the files first, e.g. `gdcmconv --raw IN OUT` (any syntax) or dcmtk's `dcmdjpeg`, `dcmdjpls`, `dcmdrle` IN OUT", ts, name)
}

// convertNative turns one frame of native pixel data into HU. raw may hold
// one padding byte more than the frame needs.
func convertNative(dst []float32, raw []byte, f pixelFormat) error {
	bpp := f.bitsAlloc / 8
	need := len(dst) * bpp
	if len(raw) != need && len(raw) != need+1 {
		return fmt.Errorf("pixel data holds %d bytes, but %d pixels of %d bits need %d", len(raw), len(dst), f.bitsAlloc, need)
	}
	shift := uint(f.highBit + 1 - f.bitsStored)
	mask := uint32(1)<<uint(f.bitsStored) - 1
	sign := uint32(1) << uint(f.bitsStored-1)
	var bo binary.ByteOrder = binary.LittleEndian
	if f.bigEndian {
		bo = binary.BigEndian
	}
	// The common CT case (16 bits, signed or all bits stored, unit slope) runs
	// without per-voxel branches.
	if f.bitsAlloc == 16 && shift == 0 && f.bitsStored == 16 && !f.bigEndian {
		convert16LE(dst, raw, f)
		return nil
	}
	for i := range dst {
		var u uint32
		switch bpp {
		case 1:
			u = uint32(raw[i])
		case 2:
			u = uint32(bo.Uint16(raw[2*i:]))
		default:
			u = bo.Uint32(raw[4*i:])
		}
		dst[i] = f.value(u>>shift&mask, sign)
	}
	return nil
}

// convert16LE handles 16-bit little endian samples with all bits stored.
func convert16LE(dst []float32, raw []byte, f pixelFormat) {
	raw = raw[:2*len(dst)]
	if f.signed {
		for i := range dst {
			v := int16(binary.LittleEndian.Uint16(raw[2*i:]))
			dst[i] = float32(float64(v)*f.slope + f.intercept)
		}
		return
	}
	for i := range dst {
		v := binary.LittleEndian.Uint16(raw[2*i:])
		dst[i] = float32(float64(v)*f.slope + f.intercept)
	}
}

// convertSamples turns decoded samples (JPEG Lossless: the stored values in
// the low bits) into HU.
func convertSamples(dst []float32, pix []uint16, f pixelFormat) {
	mask := uint32(1)<<uint(f.bitsStored) - 1
	sign := uint32(1) << uint(f.bitsStored-1)
	for i := range dst {
		dst[i] = f.value(uint32(pix[i])&mask, sign)
	}
}

// value sign-extends a stored value (bitsStored bits, already masked) when
// the pixel representation is signed, and applies the rescale, in float64
// so that the result rounds to float32 once.
func (f *pixelFormat) value(u, sign uint32) float32 {
	v := int64(u)
	if f.signed && u&sign != 0 {
		v -= int64(sign) << 1
	}
	return float32(float64(v)*f.slope + f.intercept)
}
