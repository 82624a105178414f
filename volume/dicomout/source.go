package dicomout

import (
	"errors"
	"fmt"
	"math"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
)

// Source is the DICOM series a result derives from: its slices in voxel
// order (as dicomseries.Read returns them) and the attributes of its
// patient, study and frame of reference, copied into every derived object.
type Source struct {
	Series *dicomseries.SeriesInfo
	// common holds the patient, study, frame-of-reference and character
	// set elements of the first slice, to copy as they are.
	common map[tag.Tag]*dicom.Element
}

// copied are the attributes derived objects take from the source: the
// Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1), the Frame
// of Reference (C.7.4.1) and the character set their text is in.
var copied = []tag.Tag{
	tag.SpecificCharacterSet,
	tag.StudyDate, tag.StudyTime, tag.AccessionNumber, tag.ReferringPhysicianName,
	tag.StudyDescription,
	tag.PatientName, tag.PatientID, tag.IssuerOfPatientID, tag.PatientBirthDate, tag.PatientSex,
	tag.StudyInstanceUID, tag.StudyID,
	tag.PatientAge, tag.PatientSize, tag.PatientWeight,
	tag.FrameOfReferenceUID, tag.PositionReferenceIndicator,
}

// type2 are the copied attributes that must be present, empty when the
// source lacks them.
var type2 = []tag.Tag{
	tag.StudyDate, tag.StudyTime, tag.AccessionNumber, tag.ReferringPhysicianName,
	tag.PatientName, tag.PatientID, tag.PatientBirthDate, tag.PatientSex, tag.StudyID,
	tag.PositionReferenceIndicator,
}

// NewSource reads what derived objects copy from the series' first slice.
// info must come from dicomseries.Read (slices in voxel order, with their
// positions).
func NewSource(info *dicomseries.SeriesInfo) (*Source, error) {
	if info == nil || len(info.Files) == 0 {
		return nil, errors.New("dicomout: no source series")
	}
	n := len(info.Files)
	if len(info.Positions) != n || len(info.SOPInstanceUIDs) != n || len(info.SOPClassUIDs) != n {
		return nil, fmt.Errorf("dicomout: series %s: slice list incomplete (read it with dicomseries.Read)", info.UID)
	}
	for k := range n {
		if info.SOPInstanceUIDs[k] == "" || info.SOPClassUIDs[k] == "" {
			return nil, fmt.Errorf("dicomout: %s: no SOPInstanceUID or SOPClassUID; a derived object cannot reference it", info.Files[k])
		}
	}
	ds, err := dicomseries.ReadDataset(info.Files[0])
	if err != nil {
		return nil, err
	}
	s := &Source{Series: info, common: map[tag.Tag]*dicom.Element{}}
	for _, t := range copied {
		if e, err := ds.FindElementByTag(t); err == nil {
			s.common[t] = e
		}
	}
	if s.common[tag.StudyInstanceUID] == nil {
		return nil, fmt.Errorf("dicomout: %s: no StudyInstanceUID", info.Files[0])
	}
	return s, nil
}

// commonElements returns the copied elements, with empty type 2 ones for
// those the source lacks; withFrame leaves out the frame of reference
// when false.
func (s *Source) commonElements(b *builder, withFrame bool) []*dicom.Element {
	var out []*dicom.Element
	for _, t := range copied {
		if !withFrame && (t == tag.FrameOfReferenceUID || t == tag.PositionReferenceIndicator) {
			continue
		}
		if e := s.common[t]; e != nil {
			out = append(out, e)
		}
	}
	for _, t := range type2 {
		if !withFrame && t == tag.PositionReferenceIndicator {
			continue
		}
		if s.common[t] == nil {
			out = append(out, b.str(t))
		}
	}
	return out
}

// value returns a copied attribute's first string value ("" if none).
func (s *Source) value(t tag.Tag) string {
	e := s.common[t]
	if e == nil {
		return ""
	}
	if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
		return v[0]
	}
	return ""
}

// gridTolerance is how far (mm) a label voxel's centre may lie from the
// centre of the source pixel it is written to.
const gridTolerance = 1e-2

// checkGrid makes sure voxel (c, r, k) of a label is pixel (column c, row
// r) of source slice k: the same dims, and each slice's first voxel at the
// slice's ImagePositionPatient with the rows and columns running along
// ImageOrientationPatient by PixelSpacing.
func (s *Source) checkGrid(l *volume.Label) error {
	info := s.Series
	want := volume.Dims{info.Dims[0], info.Dims[1], len(info.Files)}
	if l.Dims != want {
		return fmt.Errorf("mask dims %v are not the source series' %v (columns, rows, slices)", l.Dims, want)
	}
	a := l.Affine
	o := info.Orientation
	// RAS+ = LPS+ with x and y negated.
	flip := [3]float64{-1, -1, 1}
	for ax := 0; ax < 3; ax++ {
		col := a[ax][0] * flip[ax]
		row := a[ax][1] * flip[ax]
		if math.Abs(col-o[ax]*info.PixelSpacing[1]) > 1e-3 || math.Abs(row-o[3+ax]*info.PixelSpacing[0]) > 1e-3 {
			return fmt.Errorf("mask affine does not run along the source's ImageOrientationPatient %v and PixelSpacing %v", o, info.PixelSpacing)
		}
	}
	for k, p := range info.Positions {
		for ax := 0; ax < 3; ax++ {
			got := (a[ax][2]*float64(k) + a[ax][3]) * flip[ax]
			if math.Abs(got-p[ax]) > gridTolerance {
				return fmt.Errorf("mask slice %d lies at LPS %.3f (axis %d), the source slice %s at %.3f: the mask is not on the series' grid", k, got, ax, info.SOPInstanceUIDs[k], p[ax])
			}
		}
	}
	return nil
}
