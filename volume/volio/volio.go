// Package volio opens a CT from any format covseg reads: a NIfTI file
// (.nii or .nii.gz, NIfTI-1 or NIfTI-2) or a folder holding a DICOM series.
// Every volume comes back with its voxel-to-world affine in RAS+ millimetres
// (DICOM's LPS+ is converted by package dicomseries).
package volio

import (
	"fmt"
	"io"
	"os"

	"github.com/covseg/covseg/internal/membudget"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
	"github.com/covseg/covseg/volume/nifti"
)

// Format names where a volume came from.
type Format string

// The formats Read understands.
const (
	NIfTI Format = "nifti"
	DICOM Format = "dicom"
)

// Options control Read.
type Options struct {
	// SeriesUID picks one series from a DICOM folder holding several.
	SeriesUID string
	// Copies is how many float32 copies of the volume the caller holds at
	// its peak, the one Read returns included (0 means 1): Read refuses,
	// before allocating, a volume whose Copies × 4 bytes per voxel exceed
	// the memory budget (package membudget). The commands' factors are
	// listed in the documentation of the Copies* constants.
	Copies float64
}

// Working copies of the volume each command holds at its peak, in float32
// volumes (4 bytes per voxel), the volume read included. They were measured
// (BenchmarkPeakRSS in cmd/covseg/internal/cli: peak RSS above the
// process's baseline, on synthetic int16 CTs of 256x256x300 and 512x512x600
// voxels) and rounded up; uint8 masks count a quarter.
const (
	// CopiesConvert: the volume; the writer converts it in 1 MiB chunks
	// (measured 1.1).
	CopiesConvert = 1.25
	// CopiesLungs: the CT, a smoothed copy, the labelling's int32 map and
	// a few uint8 masks (measured 3.9).
	CopiesLungs = 4.5
	// CopiesReport: the CT, the masks and, without --lungs, the lung
	// segmentation's buffers.
	CopiesReport = 5
)

// CopiesSegment is what segmenting holds at its peak for a model of
// classes classes (background included): the CT, its reoriented and
// windowed copy, one probability volume per class resized back to the
// CT's grid and the mask (measured 4.5 for two classes); keepProbs (the
// probabilities are written) adds their copies in the CT's own voxel order.
func CopiesSegment(classes int, keepProbs bool) float64 {
	c := 2.5 + float64(classes)
	if keepProbs {
		c += float64(classes)
	}
	return c
}

// need is the memory the caller plans to use for a volume of nvox voxels.
func (o Options) need(nvox int64) int64 {
	c := o.Copies
	if c <= 0 {
		c = 1
	}
	return int64(float64(nvox) * 4 * c)
}

// checkBudget refuses a volume of the given shape whose working copies
// would exceed the memory budget.
func (o Options) checkBudget(path string, shape []int) error {
	n := int64(1)
	for _, s := range shape {
		n *= int64(s)
	}
	c := o.Copies
	if c <= 0 {
		c = 1
	}
	return membudget.Check(fmt.Sprintf("%s: a %v volume (%s as float32, %.3g working copies)", path, shape,
		membudget.Format(n*4), c), o.need(n))
}

// Source describes what was read, for reports and `covseg info`.
type Source struct {
	Path   string
	Format Format
	// Datatype is how voxels are stored on disk (NIfTI datatype name, or
	// "int16"/"uint16"... from DICOM's bits and pixel representation).
	Datatype string
	// Shape is the array shape on disk; it has 4 or more entries for a
	// NIfTI time series.
	Shape []int
	// AffineOnDisk is the affine of the voxel order on disk (RAS+ mm).
	AffineOnDisk volume.Affine
	// NIfTI is the header of a NIfTI file, nil for DICOM.
	NIfTI *nifti.Header
	// Series describes a DICOM series, nil for NIfTI.
	Series *dicomseries.SeriesInfo
	// NonFinite counts the voxels that are NaN or ±Inf (NIfTI float data
	// can hold them; DICOM cannot).
	NonFinite int
}

// IsDICOMDir reports whether path is a folder (DICOM series are read from
// folders; NIfTI from files).
func IsDICOMDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// Read opens a NIfTI file or a DICOM folder as a 3D volume in the voxel order
// it is stored in, with its RAS+ affine.
func Read(path string, opt Options) (*volume.Volume, *Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("volio: %w", err)
	}
	if st.IsDir() {
		v, info, err := dicomseries.Read(path, dicomseries.Options{SeriesUID: opt.SeriesUID,
			Check: func(d volume.Dims) error { return opt.checkBudget(path, d[:]) }})
		if err != nil {
			return nil, nil, err
		}
		src := &Source{Path: path, Format: DICOM, Datatype: "float32 (HU from DICOM)",
			Shape: []int{v.Dims[0], v.Dims[1], v.Dims[2]}, AffineOnDisk: v.Affine, Series: info}
		return v, src, nil
	}
	if isDICOMFile(path) {
		return nil, nil, fmt.Errorf("volio: %s is a single DICOM file: give the folder that holds its series", path)
	}
	// Any other file is read as NIfTI whatever its name; the reader checks
	// the magic and says so if it is not.
	h, err := nifti.ReadHeader(path)
	if err != nil {
		return nil, nil, err
	}
	if err := opt.checkBudget(path, h.Shape()); err != nil {
		return nil, nil, err
	}
	im, err := nifti.Read(path)
	if err != nil {
		return nil, nil, err
	}
	v, err := im.Volume()
	if err != nil {
		return nil, nil, err
	}
	src := niftiSource(path, im.Header, v.Affine)
	src.NonFinite = im.NonFinite
	return v, src, nil
}

// ReadStats describes a CT as Describe does and computes its voxel
// statistics. A NIfTI file is streamed: its voxels are never held, so any
// size that fits on a disk can be described in a few MiB. A DICOM series
// is read whole (within the memory budget). stats is nil for a NIfTI image
// that is not 3D.
func ReadStats(path string, opt Options) (*Source, *Stats, error) {
	if IsDICOMDir(path) || isDICOMFile(path) {
		v, src, err := Read(path, opt)
		if err != nil {
			return nil, nil, err
		}
		s := Compute(v.Data)
		return src, &s, nil
	}
	h, err := nifti.ReadHeader(path)
	if err != nil {
		return nil, nil, err
	}
	a, err := h.Affine()
	if err != nil {
		return nil, nil, fmt.Errorf("nifti: %s: %w", path, err)
	}
	src := niftiSource(path, h, a)
	if shape := h.Shape(); len(shape) > 3 && !nifti4DIsSingle(shape) {
		return src, nil, nil
	}
	var acc Accumulator
	if _, _, err := nifti.Scan(path, func(vals []float32) error { acc.Add(vals); return nil }); err != nil {
		return nil, nil, err
	}
	s := acc.Stats()
	src.NonFinite = s.NonFinite
	return src, &s, nil
}

// ReplaceNonFinite sets every NaN and ±Inf voxel of v to value and returns
// how many there were. Commands that segment call it with NonFiniteHU so
// that such voxels read as air, below every window's lower bound.
func ReplaceNonFinite(v *volume.Volume, value float32) int {
	n := 0
	for i, x := range v.Data {
		if x-x != 0 {
			v.Data[i] = value
			n++
		}
	}
	return n
}

// NonFiniteHU is what the commands that segment put in place of NaN and
// ±Inf voxels: air, at (or below) the lower bound of every HU window they
// use.
const NonFiniteHU = -1024

// ReadLabel opens a mask (NIfTI) as a label map; see nifti.ReadLabel for how
// values are read.
func ReadLabel(path string) (*volume.Label, *Source, error) {
	l, h, err := nifti.ReadLabel(path)
	if err != nil {
		return nil, nil, err
	}
	return l, niftiSource(path, h, l.Affine), nil
}

// Describe reads only what `covseg info` needs to describe a file that may
// not be a 3D volume (a 4D NIfTI): its Source, and the volume when it is 3D.
func Describe(path string, opt Options) (*volume.Volume, *Source, error) {
	if IsDICOMDir(path) || isDICOMFile(path) {
		return Read(path, opt)
	}
	h, err := nifti.ReadHeader(path)
	if err != nil {
		return nil, nil, err
	}
	shape := h.Shape()
	if len(shape) <= 3 || nifti4DIsSingle(shape) {
		return Read(path, opt)
	}
	a, err := h.Affine()
	if err != nil {
		return nil, nil, fmt.Errorf("nifti: %s: %w", path, err)
	}
	return nil, niftiSource(path, h, a), nil
}

func nifti4DIsSingle(shape []int) bool {
	for _, s := range shape[3:] {
		if s != 1 {
			return false
		}
	}
	return true
}

func niftiSource(path string, h *nifti.Header, a volume.Affine) *Source {
	return &Source{Path: path, Format: NIfTI, Datatype: h.Datatype.String(), Shape: h.Shape(),
		AffineOnDisk: a, NIfTI: h}
}

// isDICOMFile reports whether path starts with DICOM Part 10's preamble and
// "DICM" magic.
func isDICOMFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [132]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return string(b[128:]) == "DICM"
}

// CaseName is the name of a case from its path: the file name without
// .nii/.nii.gz (any letter case), or the folder name of a DICOM series.
func CaseName(path string) string { return nifti.CaseName(path) }
