package nifti

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/covseg/covseg/volume"
)

// Sizes of the two header versions (the sizeof_hdr field) and the smallest
// vox_offset a single-file image may have: the header plus the 4-byte
// extension flag that follows it.
const (
	size1      = 348
	size2      = 540
	minOffset1 = size1 + 4
	minOffset2 = size2 + 4
)

// Datatype is a NIfTI datatype code (the header's datatype field).
type Datatype int16

// The NIfTI datatype codes. Only the real scalar ones can be read and written;
// the others are named so that errors can say what a file holds.
const (
	Uint8      Datatype = 2
	Int16      Datatype = 4
	Int32      Datatype = 8
	Float32    Datatype = 16
	Complex64  Datatype = 32
	Float64    Datatype = 64
	RGB24      Datatype = 128
	Int8       Datatype = 256
	Uint16     Datatype = 512
	Uint32     Datatype = 768
	Int64      Datatype = 1024
	Uint64     Datatype = 1280
	Float128   Datatype = 1536
	Complex128 Datatype = 1792
	Complex256 Datatype = 2048
	RGBA32     Datatype = 2304
)

// datatypeInfo names every code NIfTI defines; size is the bytes per voxel of
// the supported (real scalar) types and 0 for the rest.
var datatypeInfo = map[Datatype]struct {
	name string
	size int
}{
	1:          {"binary", 0},
	Uint8:      {"uint8", 1},
	Int16:      {"int16", 2},
	Int32:      {"int32", 4},
	Float32:    {"float32", 4},
	Complex64:  {"complex64", 0},
	Float64:    {"float64", 8},
	RGB24:      {"RGB24", 0},
	Int8:       {"int8", 1},
	Uint16:     {"uint16", 2},
	Uint32:     {"uint32", 4},
	Int64:      {"int64", 8},
	Uint64:     {"uint64", 8},
	Float128:   {"float128", 0},
	Complex128: {"complex128", 0},
	Complex256: {"complex256", 0},
	RGBA32:     {"RGBA32", 0},
}

// String returns the numpy-style name of the type ("int16", "float32", ...),
// or "datatype N" for a code NIfTI does not define.
func (d Datatype) String() string {
	if t, ok := datatypeInfo[d]; ok {
		return t.name
	}
	return fmt.Sprintf("datatype %d", int(d))
}

// Size returns the bytes per voxel of a supported (real scalar) datatype and
// 0 for every other code.
func (d Datatype) Size() int { return datatypeInfo[d].size }

// check reports why a datatype cannot be read or written, or nil.
func (d Datatype) check() error {
	t, ok := datatypeInfo[d]
	switch {
	case !ok:
		return fmt.Errorf("unknown datatype code %d", int(d))
	case t.size == 0:
		return fmt.Errorf("datatype %s (code %d) is not supported: only real scalar voxels (int8 … uint64, float32, float64) are",
			t.name, int(d))
	}
	return nil
}

// Header holds the fields of a NIfTI-1 or NIfTI-2 header, widened to Go's
// int64 and float64 (NIfTI-1 stores many of them as int16 and float32; the
// widening is exact). Fields hold what the file says; Affine and Scaling
// interpret them the way nibabel does.
type Header struct {
	Version   int              // 1 (348-byte header) or 2 (540-byte header)
	ByteOrder binary.ByteOrder // of the header and the voxels, found from sizeof_hdr
	Dim       [8]int64         // Dim[0] is the number of dimensions, Dim[1:Dim[0]+1] their sizes
	Pixdim    [8]float64       // Pixdim[0] is qfac; Pixdim[1:] the voxel sizes in XYZTUnits
	Datatype  Datatype
	Bitpix    int
	VoxOffset int64 // byte offset of the voxels in the (uncompressed) file

	SclSlope, SclInter float64 // voxel scaling: value = raw·slope + inter (see Scaling)
	CalMin, CalMax     float64 // display range

	QformCode, SformCode int        // NIFTI_XFORM_* codes
	Quatern              [3]float64 // quatern_b, quatern_c, quatern_d
	QOffset              [3]float64 // qoffset_x, qoffset_y, qoffset_z
	Srow                 [3][4]float64

	XYZTUnits   int // NIFTI_UNITS_* codes: spatial in bits 0-2, temporal in bits 3-5
	IntentCode  int
	IntentP     [3]float64
	IntentName  string
	Descrip     string
	AuxFile     string
	DimInfo     byte
	SliceCode   int
	SliceStart  int64
	SliceEnd    int64
	SliceDur    float64
	TOffset     float64
	HeaderBytes int // 348 or 540: where the header ends in the file
}

// Shape returns the sizes of the Dim[0] dimensions.
func (h *Header) Shape() []int {
	s := make([]int, h.Dim[0])
	for i := range s {
		s[i] = int(h.Dim[i+1])
	}
	return s
}

// NumVoxels returns the number of voxels over all dimensions.
func (h *Header) NumVoxels() int {
	n := 1
	for _, s := range h.Shape() {
		n *= s
	}
	return n
}

// Scaling returns the slope and intercept to apply to the stored values, as
// nibabel reads them: ok is false (no scaling) when scl_slope is 0 or not
// finite. parse refuses a valid slope with a non-finite intercept.
func (h *Header) Scaling() (slope, inter float64, ok bool) {
	if h.SclSlope == 0 || math.IsNaN(h.SclSlope) || math.IsInf(h.SclSlope, 0) {
		return 1, 0, false
	}
	return h.SclSlope, h.SclInter, true
}

// SpatialUnit returns the name of the unit of Pixdim[1:4] ("mm", "m",
// "micron", or "unknown").
func (h *Header) SpatialUnit() string {
	switch h.XYZTUnits & 7 {
	case 1:
		return "m"
	case 2:
		return "mm"
	case 3:
		return "micron"
	}
	return "unknown"
}

// headerError is what every header problem becomes: the file name and what
// is wrong with it.
func headerError(name, format string, args ...any) error {
	return fmt.Errorf("nifti: %s: "+format, append([]any{name}, args...)...)
}

// errNotNifti marks input that is not a NIfTI header at all.
var errNotNifti = errors.New("not a NIfTI-1 or NIfTI-2 file")

// headerSize finds the version and byte order from the first four bytes
// (sizeof_hdr: 348 or 540 in either byte order).
func headerSize(b []byte) (size int, order binary.ByteOrder, err error) {
	if len(b) < 4 {
		return 0, nil, errNotNifti
	}
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b)
	switch {
	case le == size1 || le == size2:
		return int(le), binary.LittleEndian, nil
	case be == size1 || be == size2:
		return int(be), binary.BigEndian, nil
	}
	return 0, nil, fmt.Errorf("%w (sizeof_hdr is %d, not 348 or 540)", errNotNifti, int32(le))
}

// reader decodes fixed-offset fields of a header block.
type reader struct {
	b []byte
	o binary.ByteOrder
}

func (r reader) i16(off int) int64   { return int64(int16(r.o.Uint16(r.b[off:]))) }
func (r reader) i32(off int) int64   { return int64(int32(r.o.Uint32(r.b[off:]))) }
func (r reader) i64(off int) int64   { return int64(r.o.Uint64(r.b[off:])) }
func (r reader) f32(off int) float64 { return float64(math.Float32frombits(r.o.Uint32(r.b[off:]))) }
func (r reader) f64(off int) float64 { return math.Float64frombits(r.o.Uint64(r.b[off:])) }
func (r reader) str(off, n int) string {
	s := r.b[off : off+n]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return string(s)
}

// ParseHeader decodes and validates a NIfTI-1 or NIfTI-2 header from the
// start of b (the uncompressed file). name is used in error messages only.
func ParseHeader(name string, b []byte) (*Header, error) {
	size, order, err := headerSize(b)
	if err != nil {
		return nil, headerError(name, "%v", err)
	}
	if len(b) < size {
		return nil, headerError(name, "truncated header: %d of %d bytes", len(b), size)
	}
	r := reader{b[:size], order}
	var h *Header
	if size == size1 {
		h, err = decode1(name, r)
	} else {
		h, err = decode2(name, r)
	}
	if err != nil {
		return nil, err
	}
	h.ByteOrder, h.HeaderBytes = order, size
	if err := h.validate(name); err != nil {
		return nil, err
	}
	return h, nil
}

// decode1 reads the NIfTI-1 layout (offsets from nifti1.h).
func decode1(name string, r reader) (*Header, error) {
	switch magic := r.str(344, 4); magic {
	case "n+1":
	case "ni1":
		return nil, headerError(name, "a NIfTI-1 header/image pair (.hdr/.img, magic \"ni1\") is not supported; convert it to a single .nii")
	default:
		return nil, headerError(name, "bad NIfTI-1 magic %q (want \"n+1\"; an Analyze 7.5 file?)", magic)
	}
	h := &Header{Version: 1}
	for i := range h.Dim {
		h.Dim[i] = r.i16(40 + 2*i)
		h.Pixdim[i] = r.f32(76 + 4*i)
	}
	for i := range h.IntentP {
		h.IntentP[i] = r.f32(56 + 4*i)
	}
	h.IntentCode = int(r.i16(68))
	h.Datatype = Datatype(r.i16(70))
	h.Bitpix = int(r.i16(72))
	h.SliceStart = r.i16(74)
	vox := r.f32(108)
	if !(vox >= 0 && vox <= math.MaxInt64/2) { // also NaN
		return nil, headerError(name, "bad vox_offset %g", vox)
	}
	h.VoxOffset = int64(vox) // truncated, as nibabel and the NIfTI C library do
	h.SclSlope, h.SclInter = r.f32(112), r.f32(116)
	h.SliceEnd = r.i16(120)
	h.SliceCode = int(r.b[122])
	h.XYZTUnits = int(r.b[123])
	h.CalMax, h.CalMin = r.f32(124), r.f32(128)
	h.SliceDur, h.TOffset = r.f32(132), r.f32(136)
	h.Descrip, h.AuxFile = r.str(148, 80), r.str(228, 24)
	h.QformCode, h.SformCode = int(r.i16(252)), int(r.i16(254))
	for i := 0; i < 3; i++ {
		h.Quatern[i] = r.f32(256 + 4*i)
		h.QOffset[i] = r.f32(268 + 4*i)
		for c := 0; c < 4; c++ {
			h.Srow[i][c] = r.f32(280 + 16*i + 4*c)
		}
	}
	h.IntentName = r.str(328, 16)
	h.DimInfo = r.b[39]
	return h, nil
}

// decode2 reads the NIfTI-2 layout (offsets from nifti2.h).
func decode2(name string, r reader) (*Header, error) {
	switch magic := r.str(4, 4); magic {
	case "n+2":
	case "ni2":
		return nil, headerError(name, "a NIfTI-2 header/image pair (.hdr/.img, magic \"ni2\") is not supported; convert it to a single .nii")
	default:
		return nil, headerError(name, "bad NIfTI-2 magic %q (want \"n+2\")", magic)
	}
	// Bytes 8-11 catch files damaged by text-mode newline conversion;
	// nibabel also accepts all zeros.
	if eol := r.b[8:12]; !bytes.Equal(eol, []byte{13, 10, 26, 10}) && !bytes.Equal(eol, []byte{0, 0, 0, 0}) {
		return nil, headerError(name, "NIfTI-2 end-of-line check bytes are % x, not 0d 0a 1a 0a: the file was damaged by newline conversion", eol)
	}
	h := &Header{Version: 2}
	h.Datatype = Datatype(r.i16(12))
	h.Bitpix = int(r.i16(14))
	for i := range h.Dim {
		h.Dim[i] = r.i64(16 + 8*i)
		h.Pixdim[i] = r.f64(104 + 8*i)
	}
	for i := range h.IntentP {
		h.IntentP[i] = r.f64(80 + 8*i)
	}
	h.VoxOffset = r.i64(168)
	if h.VoxOffset < 0 {
		return nil, headerError(name, "bad vox_offset %d", h.VoxOffset)
	}
	h.SclSlope, h.SclInter = r.f64(176), r.f64(184)
	h.CalMax, h.CalMin = r.f64(192), r.f64(200)
	h.SliceDur, h.TOffset = r.f64(208), r.f64(216)
	h.SliceStart, h.SliceEnd = r.i64(224), r.i64(232)
	h.Descrip, h.AuxFile = r.str(240, 80), r.str(320, 24)
	h.QformCode, h.SformCode = int(r.i32(344)), int(r.i32(348))
	for i := 0; i < 3; i++ {
		h.Quatern[i] = r.f64(352 + 8*i)
		h.QOffset[i] = r.f64(376 + 8*i)
		for c := 0; c < 4; c++ {
			h.Srow[i][c] = r.f64(400 + 32*i + 8*c)
		}
	}
	h.SliceCode = int(r.i32(496))
	h.XYZTUnits = int(r.i32(500))
	h.IntentCode = int(r.i32(504))
	h.IntentName = r.str(508, 16)
	h.DimInfo = r.b[524]
	return h, nil
}

// validate refuses what cannot be read safely, before anything is allocated.
func (h *Header) validate(name string) error {
	n := h.Dim[0]
	if n < 1 || n > 7 {
		return headerError(name, "dim[0] is %d: the number of dimensions must be 1 to 7", n)
	}
	total := int64(1)
	for i := 1; i <= int(n); i++ {
		s := h.Dim[i]
		if s <= 0 {
			return headerError(name, "dimension %d has size %d (dims %v)", i, s, h.Dim[1:n+1])
		}
		if total > volume.MaxVoxels/s {
			return headerError(name, "dims %v hold more than %d voxels", h.Dim[1:n+1], int64(volume.MaxVoxels))
		}
		total *= s
	}
	if err := h.Datatype.check(); err != nil {
		return headerError(name, "%v", err)
	}
	if want := 8 * h.Datatype.Size(); h.Bitpix != want {
		return headerError(name, "bitpix is %d but datatype %s has %d bits", h.Bitpix, h.Datatype, want)
	}
	min := int64(minOffset1)
	if h.Version == 2 {
		min = minOffset2
	}
	if h.VoxOffset < min {
		return headerError(name, "vox_offset %d lies inside the header (a single-file NIfTI-%d needs at least %d)",
			h.VoxOffset, h.Version, min)
	}
	if _, inter, ok := h.Scaling(); ok && (math.IsNaN(inter) || math.IsInf(inter, 0)) {
		return headerError(name, "scl_slope is %g but scl_inter is %g", h.SclSlope, inter)
	}
	return nil
}

// dataBytes is the size of the voxel data that follows VoxOffset.
func (h *Header) dataBytes() int64 {
	return int64(h.NumVoxels()) * int64(h.Datatype.Size())
}
