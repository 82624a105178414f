package nifti

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// xformScanner is the code both transforms are written with:
// NIFTI_XFORM_SCANNER_ANAT. covseg's affines are the scanner's own patient
// coordinates (DICOM's, converted to RAS+) or those of the file they were
// read from, not a registration to another image (2, "aligned") or a
// template; dcm2niix writes 1 for the same reason.
const xformScanner = 1

// unitsMM is xyzt_units for millimetres and no time unit.
const unitsMM = 2

// WriteOptions choose how voxels are stored.
type WriteOptions struct {
	// Datatype of the stored voxels; zero means Float32. Integer types store
	// the values unscaled (scl_slope 1) and refuse any voxel they cannot
	// hold exactly (a fraction, a value out of range, NaN or ±Inf).
	Datatype Datatype
	// Version is the header format, 1 or 2; zero means NIfTI-1 unless a
	// dimension exceeds its limit of 32767, then NIfTI-2.
	Version int
}

// WriteVolume writes v to path, gzip-compressed when the name ends in .gz.
// The sform holds v.Affine (rounded to float32 in NIfTI-1, the format's
// limit; exact in NIfTI-2) and the qform its nearest rotation+zoom form,
// both with code 1 (scanner); pixdim holds the affine's column norms and
// the units are millimetres. (The qform is less precise for rotations near
// 180°, as its quaternion's first component is not stored; readers that
// follow nibabel and the NIfTI standard use the sform.) The file is written under a temporary name in
// the same folder and renamed, so no partial file is left on error.
func WriteVolume(path string, v *volume.Volume, opt WriteOptions) error {
	dt := opt.Datatype
	if dt == 0 {
		dt = Float32
	}
	if err := dt.check(); err != nil {
		return fmt.Errorf("nifti: %s: %v", path, err)
	}
	if len(v.Data) != v.Dims.Len() {
		return fmt.Errorf("nifti: %s: volume has %d voxels but dims %v need %d", path, len(v.Data), v.Dims, v.Dims.Len())
	}
	h, err := newHeader(v.Dims, v.Affine, dt, opt.Version)
	if err != nil {
		return fmt.Errorf("nifti: %s: %v", path, err)
	}
	return writeFile(path, h, func(w io.Writer) error {
		return writeVoxels(w, v.Data, v.Dims, dt)
	})
}

// WriteLabel writes a label map to path as uint8 voxels (NIfTI-1), with
// the geometry written as WriteVolume does.
func WriteLabel(path string, l *volume.Label) error {
	if len(l.Data) != l.Dims.Len() {
		return fmt.Errorf("nifti: %s: label map has %d voxels but dims %v need %d", path, len(l.Data), l.Dims, l.Dims.Len())
	}
	h, err := newHeader(l.Dims, l.Affine, Uint8, 0)
	if err != nil {
		return fmt.Errorf("nifti: %s: %v", path, err)
	}
	return writeFile(path, h, func(w io.Writer) error {
		_, err := w.Write(l.Data)
		return err
	})
}

// newHeader fills a header for a 3D image with the given geometry.
func newHeader(d volume.Dims, a volume.Affine, dt Datatype, version int) (*Header, error) {
	if err := d.Valid(); err != nil {
		return nil, err
	}
	if err := checkAffine(a); err != nil {
		return nil, err
	}
	big := d[0] > math.MaxInt16 || d[1] > math.MaxInt16 || d[2] > math.MaxInt16
	switch {
	case version == 0 && big:
		version = 2
	case version == 0:
		version = 1
	case version == 1 && big:
		return nil, fmt.Errorf("dims %v do not fit NIfTI-1 (at most 32767 per axis); write NIfTI-2", d)
	case version != 1 && version != 2:
		return nil, fmt.Errorf("NIfTI version %d does not exist (1 or 2)", version)
	}
	q := toQform(a)
	h := &Header{
		Version:   version,
		ByteOrder: binary.LittleEndian,
		Dim:       [8]int64{3, int64(d[0]), int64(d[1]), int64(d[2]), 1, 1, 1, 1},
		Pixdim:    [8]float64{q.qfac, q.zooms[0], q.zooms[1], q.zooms[2], 1, 1, 1, 1},
		Datatype:  dt,
		Bitpix:    8 * dt.Size(),
		VoxOffset: minOffset1,
		SclSlope:  1,
		QformCode: xformScanner,
		SformCode: xformScanner,
		Quatern:   q.quatern,
		QOffset:   q.offset,
		XYZTUnits: unitsMM,
		Descrip:   "covseg",
	}
	h.HeaderBytes = size1
	if version == 2 {
		h.VoxOffset, h.HeaderBytes = minOffset2, size2
	}
	for r := 0; r < 3; r++ {
		h.Srow[r] = a[r]
	}
	return h, nil
}

// checkAffine refuses an affine that no reader could use.
func checkAffine(a volume.Affine) error {
	for r := 0; r < 4; r++ {
		for c := 0; c < 4; c++ {
			if math.IsNaN(a[r][c]) || math.IsInf(a[r][c], 0) {
				return fmt.Errorf("affine holds a non-finite value at row %d, column %d", r, c)
			}
		}
	}
	if a[3] != [4]float64{0, 0, 0, 1} {
		return fmt.Errorf("affine's last row is %v, not (0, 0, 0, 1)", a[3])
	}
	if _, err := a.Inverse(); err != nil {
		return err
	}
	return nil
}

// encodeHeader lays out h in its version's format, followed by the 4-byte
// extension flag (zero: no extensions) and padding up to VoxOffset.
func encodeHeader(h *Header) []byte {
	b := make([]byte, h.VoxOffset)
	o := h.ByteOrder
	i16 := func(off int, v int64) { o.PutUint16(b[off:], uint16(int16(v))) }
	i32 := func(off int, v int64) { o.PutUint32(b[off:], uint32(int32(v))) }
	i64 := func(off int, v int64) { o.PutUint64(b[off:], uint64(v)) }
	f32 := func(off int, v float64) { o.PutUint32(b[off:], math.Float32bits(float32(v))) }
	f64 := func(off int, v float64) { o.PutUint64(b[off:], math.Float64bits(v)) }
	str := func(off, n int, s string) { copy(b[off:off+n-1], s) } // keeps a terminating NUL

	if h.Version == 1 {
		i32(0, size1)
		b[39] = h.DimInfo
		for i := 0; i < 8; i++ {
			i16(40+2*i, h.Dim[i])
			f32(76+4*i, h.Pixdim[i])
		}
		for i := 0; i < 3; i++ {
			f32(56+4*i, h.IntentP[i])
		}
		i16(68, int64(h.IntentCode))
		i16(70, int64(h.Datatype))
		i16(72, int64(h.Bitpix))
		i16(74, h.SliceStart)
		f32(108, float64(h.VoxOffset))
		f32(112, h.SclSlope)
		f32(116, h.SclInter)
		i16(120, h.SliceEnd)
		b[122], b[123] = byte(h.SliceCode), byte(h.XYZTUnits)
		f32(124, h.CalMax)
		f32(128, h.CalMin)
		f32(132, h.SliceDur)
		f32(136, h.TOffset)
		str(148, 80, h.Descrip)
		str(228, 24, h.AuxFile)
		i16(252, int64(h.QformCode))
		i16(254, int64(h.SformCode))
		for i := 0; i < 3; i++ {
			f32(256+4*i, h.Quatern[i])
			f32(268+4*i, h.QOffset[i])
			for c := 0; c < 4; c++ {
				f32(280+16*i+4*c, h.Srow[i][c])
			}
		}
		str(328, 16, h.IntentName)
		copy(b[344:], "n+1\x00")
		return b
	}
	i32(0, size2)
	copy(b[4:], "n+2\x00\r\n\x1a\n")
	i16(12, int64(h.Datatype))
	i16(14, int64(h.Bitpix))
	for i := 0; i < 8; i++ {
		i64(16+8*i, h.Dim[i])
		f64(104+8*i, h.Pixdim[i])
	}
	for i := 0; i < 3; i++ {
		f64(80+8*i, h.IntentP[i])
	}
	i64(168, h.VoxOffset)
	f64(176, h.SclSlope)
	f64(184, h.SclInter)
	f64(192, h.CalMax)
	f64(200, h.CalMin)
	f64(208, h.SliceDur)
	f64(216, h.TOffset)
	i64(224, h.SliceStart)
	i64(232, h.SliceEnd)
	str(240, 80, h.Descrip)
	str(320, 24, h.AuxFile)
	i32(344, int64(h.QformCode))
	i32(348, int64(h.SformCode))
	for i := 0; i < 3; i++ {
		f64(352+8*i, h.Quatern[i])
		f64(376+8*i, h.QOffset[i])
		for c := 0; c < 4; c++ {
			f64(400+32*i+8*c, h.Srow[i][c])
		}
	}
	i32(496, int64(h.SliceCode))
	i32(500, int64(h.XYZTUnits))
	i32(504, int64(h.IntentCode))
	str(508, 16, h.IntentName)
	b[524] = h.DimInfo
	return b
}

// writeVoxels encodes float32 voxels as little-endian dt, refusing values
// an integer type cannot hold.
func writeVoxels(w io.Writer, data []float32, d volume.Dims, dt Datatype) error {
	size := dt.Size()
	buf := make([]byte, 0, chunkBytes)
	for start := 0; start < len(data); {
		n := min(chunkBytes/size, len(data)-start)
		buf = buf[:n*size]
		if bad := encodeChunk(buf, data[start:start+n], dt); bad >= 0 {
			i := start + bad
			return fmt.Errorf("voxel (%d, %d, %d) holds %g, which %s cannot store exactly",
				i%d[0], i/d[0]%d[1], i/(d[0]*d[1]), data[i], dt)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		start += n
	}
	return nil
}

// encodeChunk writes src into dst as little-endian dt and returns the index
// of the first value dt cannot hold exactly, or -1.
func encodeChunk(dst []byte, src []float32, dt Datatype) int {
	le := binary.LittleEndian
	switch dt {
	case Float32:
		for i, x := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(x))
		}
		return -1
	case Float64:
		for i, x := range src {
			le.PutUint64(dst[8*i:], math.Float64bits(float64(x)))
		}
		return -1
	}
	lo, hi := intRange(dt)
	for i, x := range src {
		v := float64(x)
		if !(v >= lo && v <= hi) || v != math.Trunc(v) { // also NaN
			return i
		}
		switch dt {
		case Uint8, Int8:
			dst[i] = byte(int64(v))
		case Int16, Uint16:
			le.PutUint16(dst[2*i:], uint16(int64(v)))
		case Int32, Uint32:
			le.PutUint32(dst[4*i:], uint32(int64(v)))
		case Int64:
			le.PutUint64(dst[8*i:], uint64(int64(v)))
		case Uint64:
			le.PutUint64(dst[8*i:], uint64(v))
		}
	}
	return -1
}

// intRange returns the smallest and largest value of an integer datatype as
// float64; the 64-bit maxima are those representable below 2⁶³ and 2⁶⁴.
func intRange(dt Datatype) (lo, hi float64) {
	switch dt {
	case Uint8:
		return 0, math.MaxUint8
	case Int8:
		return math.MinInt8, math.MaxInt8
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Uint16:
		return 0, math.MaxUint16
	case Int32:
		return math.MinInt32, math.MaxInt32
	case Uint32:
		return 0, math.MaxUint32
	case Int64:
		return math.MinInt64, math.Nextafter(0x1p63, 0)
	default: // Uint64
		return 0, math.Nextafter(0x1p64, 0)
	}
}

// writeFile writes the header and the voxels that fill writes to a
// temporary file beside path, gzip-compressed when path ends in .gz, and
// renames it to path once everything is on disk.
func writeFile(path string, h *Header, fill func(io.Writer) error) error {
	f, err := atomicfile.CreateTemp(path)
	if err != nil {
		return fmt.Errorf("nifti: %w", err)
	}
	if err := encodeFile(f, path, h, fill); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("nifti: %s: %w", path, err)
	}
	if err := atomicfile.Commit(f, path); err != nil {
		return fmt.Errorf("nifti: %w", err)
	}
	return nil
}

// encodeFile writes the header and the voxels to f, gzip-compressed when
// path ends in .gz.
func encodeFile(f *os.File, path string, h *Header, fill func(io.Writer) error) error {
	bw := bufio.NewWriterSize(f, chunkBytes)
	var w io.Writer = bw
	var zw *gzip.Writer
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		// Level 1, as nibabel uses: CT compresses little better at higher
		// levels and takes several times as long.
		zw, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed)
		w = zw
	}
	if _, err := w.Write(encodeHeader(h)); err != nil {
		return err
	}
	if err := fill(w); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return bw.Flush()
}
