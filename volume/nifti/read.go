// Package nifti reads and writes NIfTI-1 and NIfTI-2 images (.nii and
// .nii.gz) with the geometry nibabel gives them.
//
// Reading accepts single-file images of either header version in either
// byte order, gzip-compressed or not (found from the bytes, not the name),
// with any real scalar datatype (uint8 … uint64, float32, float64). Voxels
// come back as float32 with scl_slope/scl_inter applied as nibabel does, the
// first dimension varying fastest, and the affine chosen as nibabel's
// get_best_affine chooses it (see Header.Affine). Headers that are damaged
// or absurd are refused before anything is allocated for the voxels.
//
// Writing (WriteVolume, WriteLabel) stores both an sform, holding the affine
// as exactly as the header's number type allows (float32 in NIfTI-1, float64
// in NIfTI-2), and a qform, its nearest rotation+zoom form as nibabel's
// set_qform computes it, so that readers that use either agree.
package nifti

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/klauspost/compress/gzip"

	"github.com/covseg/covseg/internal/membudget"
	"github.com/covseg/covseg/volume"
)

// maxDeflateRatio bounds how many bytes deflate can expand one compressed
// byte to (258-byte matches coded in 2 bits): a gzip file claiming more
// voxel data than this allows is refused before reading it.
const maxDeflateRatio = 1032

// chunkBytes is how much raw voxel data is decoded at a time, and
// bufferBytes how much of the file is read at a time.
const (
	chunkBytes  = 1 << 20
	bufferBytes = 256 << 10
)

// Image is a NIfTI image of any dimensionality.
type Image struct {
	Header *Header
	Affine volume.Affine // voxel (first three indices) to RAS+ mm, see Header.Affine
	Shape  []int         // sizes of the Header.Dim[0] dimensions
	// Data holds the scaled voxel values of all volumes, first index
	// fastest. Integers wider than 24 bits and float64 values are rounded
	// to the nearest float32 (float64 beyond float32's range becomes ±Inf).
	Data []float32
	// NonFinite counts the NaN and ±Inf values of Data.
	NonFinite int
	name      string
}

// ReadHeader reads and validates the header of a .nii or .nii.gz file
// without reading the voxels.
func ReadHeader(path string) (*Header, error) {
	s, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	return s.header()
}

// Read reads a whole .nii or .nii.gz file of any dimensionality.
func Read(path string) (*Image, error) {
	s, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	return s.image()
}

// Decode reads a whole .nii or .nii.gz image from r (compression is found
// from the bytes). name is used in error messages only. The voxels are
// allocated at once (within the memory budget); a header claiming more
// than r holds is refused when r ends, having touched memory only in
// proportion to what r held.
func Decode(name string, r io.Reader) (*Image, error) {
	s, err := newSource(name, r, -1, -1)
	if err != nil {
		return nil, err
	}
	defer s.close()
	return s.image()
}

// ReadVolume reads a 3D image: one whose dims beyond the third are all 1
// (so a 4D file with one volume is fine; 1D and 2D images get dims of 1).
// Any other image is refused with a message naming its dims.
func ReadVolume(path string) (*volume.Volume, *Header, error) {
	im, err := Read(path)
	if err != nil {
		return nil, nil, err
	}
	v, err := im.Volume()
	if err != nil {
		return nil, nil, err
	}
	return v, im.Header, nil
}

// ReadLabel reads a 3D label map (see ReadVolume for the dims accepted).
// Every scaled voxel value must be a class index, an integer from 0 to 255
// (within 0.001, so float masks with rounding noise read as intended);
// anything else (negative, over 255, fractional, NaN) is an error that
// counts and shows the offending voxels. To read a probability map or a
// mask with other values, use ReadVolume and threshold it (volume.Binarize,
// volume.LabelFrom).
func ReadLabel(path string) (*volume.Label, *Header, error) {
	im, err := Read(path)
	if err != nil {
		return nil, nil, err
	}
	l, err := im.Label()
	if err != nil {
		return nil, nil, err
	}
	return l, im.Header, nil
}

// Volume returns the image as a 3D volume (it shares Data). The image must
// be 3D in the sense of ReadVolume and its affine must be invertible.
func (im *Image) Volume() (*volume.Volume, error) {
	d, err := im.dims3()
	if err != nil {
		return nil, err
	}
	return &volume.Volume{Dims: d, Data: im.Data, Affine: im.Affine}, nil
}

// Label returns the image as a label map; see ReadLabel for the values
// accepted.
func (im *Image) Label() (*volume.Label, error) {
	d, err := im.dims3()
	if err != nil {
		return nil, err
	}
	l := &volume.Label{Dims: d, Data: make([]uint8, len(im.Data)), Affine: im.Affine}
	bad, first := 0, -1
	for i, x := range im.Data {
		r := math.Round(float64(x))
		if !(r >= 0 && r <= 255 && math.Abs(float64(x)-r) <= 1e-3) { // also NaN
			if bad == 0 {
				first = i
			}
			bad++
			continue
		}
		l.Data[i] = uint8(r)
	}
	if bad > 0 {
		i, j, k := first%d[0], first/d[0]%d[1], first/(d[0]*d[1])
		return nil, fmt.Errorf("nifti: %s: %d voxels are not label values (integers 0 to 255), the first %g at voxel (%d, %d, %d); read it with ReadVolume and threshold it instead",
			im.name, bad, im.Data[first], i, j, k)
	}
	return l, nil
}

// dims3 checks that the image is 3D and its affine invertible.
func (im *Image) dims3() (volume.Dims, error) {
	d := volume.Dims{1, 1, 1}
	for i, s := range im.Shape {
		if i < 3 {
			d[i] = s
		} else if s != 1 {
			return d, fmt.Errorf("nifti: %s: a 3D volume is required but the image is %dD with dims %v",
				im.name, len(im.Shape), im.Shape)
		}
	}
	if _, err := im.Affine.Inverse(); err != nil {
		return d, fmt.Errorf("nifti: %s: %v", im.name, err)
	}
	return d, nil
}

// source is an open, possibly compressed, NIfTI stream.
type source struct {
	name string
	r    io.Reader    // the uncompressed bytes
	gz   *gzip.Reader // nil when not compressed
	f    *os.File     // nil when not reading a file
	// size is the number of uncompressed bytes, or -1 when unknown;
	// maxSize bounds it for gzip input of known compressed size (-1 if not).
	size, maxSize int64
	// trailer is the gzip ISIZE field (uncompressed size mod 2³²), or -1.
	trailer int64
}

// openFile opens path and looks at its size and gzip trailer.
func openFile(path string) (*source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nifti: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("nifti: %w", err)
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("nifti: %s: is a folder, not a NIfTI file", path)
	}
	trailer := int64(-1)
	var tail [4]byte
	if st.Size() >= 4 {
		if _, err := f.ReadAt(tail[:], st.Size()-4); err == nil {
			trailer = int64(uint32(tail[0]) | uint32(tail[1])<<8 | uint32(tail[2])<<16 | uint32(tail[3])<<24)
		}
	}
	s, err := newSource(path, f, st.Size(), trailer)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.f = f
	return s, nil
}

// newSource wraps r (size bytes long, or -1 if unknown), decompressing it
// when it starts with the gzip magic bytes.
func newSource(name string, r io.Reader, size, trailer int64) (*source, error) {
	br := bufio.NewReaderSize(r, bufferBytes)
	s := &source{name: name, r: br, size: size, maxSize: -1, trailer: -1}
	magic, _ := br.Peek(2)
	if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return s, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("nifti: %s: bad gzip header: %w", name, err)
	}
	s.r, s.gz, s.size, s.trailer = zr, zr, -1, trailer
	if size >= 0 {
		s.maxSize = size*maxDeflateRatio + 1<<16
	}
	return s, nil
}

func (s *source) close() {
	if s.gz != nil {
		s.gz.Close()
	}
	if s.f != nil {
		s.f.Close()
	}
}

// readErr describes a failed read of n bytes at offset off.
func (s *source) readErr(what string, off, n int64, got int64, err error) error {
	if s.gz != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("nifti: %s: corrupt gzip stream while reading %s: %w", s.name, what, err)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("nifti: %s: reading %s: %w", s.name, what, err)
	}
	kind := "file"
	if s.gz != nil {
		kind = "gzip stream"
	}
	return fmt.Errorf("nifti: %s: truncated %s: the %s ends after %d bytes but %s needs bytes %d to %d",
		s.name, what, kind, off+got, what, off, off+n)
}

// header reads and validates the header, leaving the stream just after it.
func (s *source) header() (*Header, error) {
	buf := make([]byte, size2)
	if n, err := io.ReadFull(s.r, buf[:4]); err != nil {
		return nil, s.readErr("header", 0, 4, int64(n), err)
	}
	size, _, err := headerSize(buf)
	if err != nil {
		return nil, headerError(s.name, "%v", err)
	}
	if n, err := io.ReadFull(s.r, buf[4:size]); err != nil {
		return nil, s.readErr("header", 0, int64(size), int64(4+n), err)
	}
	h, err := ParseHeader(s.name, buf[:size])
	if err != nil {
		return nil, err
	}
	end := h.VoxOffset + h.dataBytes()
	switch {
	case s.size >= 0 && h.VoxOffset > s.size:
		return nil, headerError(s.name, "vox_offset %d lies beyond the end of the file (%d bytes)", h.VoxOffset, s.size)
	case s.size >= 0 && end > s.size:
		return nil, headerError(s.name, "truncated voxel data: the file has %d bytes but the header needs %d (vox_offset %d + %d voxels × %d bytes)",
			s.size, end, h.VoxOffset, h.NumVoxels(), h.Datatype.Size())
	case s.maxSize >= 0 && end > s.maxSize:
		return nil, headerError(s.name, "the header needs %d bytes but a gzip stream of this size holds at most %d",
			end, s.maxSize)
	}
	return h, nil
}

// image reads the header, the affine and the voxels.
func (s *source) image() (*Image, error) {
	h, err := s.header()
	if err != nil {
		return nil, err
	}
	aff, err := h.Affine()
	if err != nil {
		return nil, headerError(s.name, "%v", err)
	}
	if err := s.skipToVoxels(h); err != nil {
		return nil, err
	}
	data, nonFinite, err := s.voxels(h)
	if err != nil {
		return nil, err
	}
	if err := s.finish(); err != nil {
		return nil, err
	}
	return &Image{Header: h, Affine: aff, Shape: h.Shape(), Data: data, NonFinite: nonFinite, name: s.name}, nil
}

// skipToVoxels skips the extensions between the header and vox_offset.
func (s *source) skipToVoxels(h *Header) error {
	if skip := h.VoxOffset - int64(h.HeaderBytes); skip > 0 {
		if n, err := io.CopyN(io.Discard, s.r, skip); err != nil {
			return s.readErr("the extensions before vox_offset", int64(h.HeaderBytes), skip, n, err)
		}
	}
	return nil
}

// finish reads a gzip stream to its end so that its checksum is verified.
// Bytes after a complete gzip member that do not start another one are
// ignored, as gzip(1) does.
func (s *source) finish() error {
	if s.gz == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, s.gz); err != nil && !errors.Is(err, gzip.ErrHeader) {
		return fmt.Errorf("nifti: %s: corrupt gzip stream after the voxel data: %w", s.name, err)
	}
	return nil
}

// voxels reads and scales the voxel data, after checking its float32 size
// against the memory budget (package membudget). When the stream's length
// is known to hold the data (a plain file of the right size, or gzip whose
// size trailer matches), it is decoded straight into one buffer of the
// header's size; otherwise (gzip without a matching trailer, or a reader
// of unknown length) the buffer grows as data arrives, so that a header
// claiming more than the stream holds never makes it allocate more than
// twice what was really there. It returns the data and how many values
// are NaN or ±Inf.
func (s *source) voxels(h *Header) ([]float32, int, error) {
	nvox := h.NumVoxels()
	if err := membudget.Check(fmt.Sprintf("nifti: %s: %v voxels of %s decoded to float32", s.name, h.Shape(), h.Datatype), int64(nvox)*4); err != nil {
		return nil, 0, err
	}
	end := h.VoxOffset + h.dataBytes()
	var out []float32
	if s.gz == nil && s.size >= 0 || s.gz != nil && s.trailer == end&0xffffffff {
		out = make([]float32, 0, nvox)
	}
	nonFinite := 0
	err := s.scan(h, func(vals []float32) error {
		out = append(out, vals...)
		return nil
	}, &nonFinite)
	if err != nil {
		return nil, 0, err
	}
	return out, nonFinite, nil
}

// scan reads the voxel data chunk by chunk, converts and scales each into
// one reused float32 buffer and hands it to use; use must not keep it.
// nonFinite, when not nil, counts NaN and ±Inf values (only float data or
// scaled data can hold them).
func (s *source) scan(h *Header, use func(vals []float32) error, nonFinite *int) error {
	esize := h.Datatype.Size()
	slope, inter, scaled := h.Scaling()
	conv := converter{dt: h.Datatype, swap: h.ByteOrder == binary.BigEndian, slope: slope, inter: inter,
		mul: scaled && slope != 1, add: scaled && inter != 0}
	count := nonFinite != nil && (h.Datatype == Float32 || h.Datatype == Float64 || conv.mul || conv.add)
	size := chunkBytes - chunkBytes%esize
	buf := make([]float32, min(int64(size/esize), int64(h.NumVoxels())))
	var useErr error
	n, err := readChunks(s.r, h.dataBytes(), size, func(raw []byte) error {
		vals := buf[:len(raw)/esize]
		if err := conv.run(vals, raw); err != nil {
			useErr = headerError(s.name, "%v", err)
			return useErr
		}
		if count {
			*nonFinite += countNonFinite(vals)
		}
		if err := use(vals); err != nil {
			useErr = err
			return err
		}
		return nil
	})
	if useErr != nil {
		return useErr
	}
	if err != nil {
		return s.readErr("voxel data", h.VoxOffset, h.dataBytes(), n, err)
	}
	return nil
}

// countNonFinite counts the NaN and ±Inf values of vals.
func countNonFinite(vals []float32) int {
	n := 0
	for _, x := range vals {
		if x-x != 0 { // NaN - NaN and Inf - Inf are NaN; finite - itself is 0
			n++
		}
	}
	return n
}

// Scan reads a .nii or .nii.gz file's header and then its voxels in
// chunks, handing use the scaled float32 values of each chunk in file order
// (first index fastest) without ever holding the whole image: memory stays
// a few MiB whatever the image's size. use must not keep the slice. It
// returns the header and how many values were NaN or ±Inf.
func Scan(path string, use func(vals []float32) error) (*Header, int, error) {
	s, err := openFile(path)
	if err != nil {
		return nil, 0, err
	}
	defer s.close()
	h, err := s.header()
	if err != nil {
		return nil, 0, err
	}
	if err := s.skipToVoxels(h); err != nil {
		return nil, 0, err
	}
	nonFinite := 0
	if err := s.scan(h, use, &nonFinite); err != nil {
		return nil, 0, err
	}
	if err := s.finish(); err != nil {
		return nil, 0, err
	}
	return h, nonFinite, nil
}
