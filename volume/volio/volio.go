// Package volio opens a CT from any format covseg reads: a NIfTI file
// (.nii or .nii.gz, NIfTI-1 or NIfTI-2) or a folder holding a DICOM series.
// Every volume comes back with its voxel-to-world affine in RAS+ millimetres
// (DICOM's LPS+ is converted by package dicomseries).
package volio

import (
	"fmt"
	"io"
	"os"

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
		v, info, err := dicomseries.Read(path, dicomseries.Options{SeriesUID: opt.SeriesUID})
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
	v, h, err := nifti.ReadVolume(path)
	if err != nil {
		return nil, nil, err
	}
	return v, niftiSource(path, h, v.Affine), nil
}

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
