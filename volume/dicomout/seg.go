package dicomout

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
)

// UIDs of the SOP classes and transfer syntax written here.
const (
	SegmentationStorage     = "1.2.840.10008.5.1.4.1.1.66.4"
	SecondaryCaptureStorage = "1.2.840.10008.5.1.4.1.1.7"
	ExplicitVRLittleEndian  = "1.2.840.10008.1.2.1"
	// implementationUID identifies covseg as the writer (2.25 root, fixed).
	implementationUID = "2.25.302839153526934312853431736418862187461"
)

// Segment is one segment of a Segmentation: the voxels of Mask equal to
// Value (any non-zero voxel when Value is 0), and what they are.
type Segment struct {
	Label       string // SegmentLabel (LO), e.g. "Right lung"
	Description string // SegmentDescription (ST), optional
	Category    Code   // SegmentedPropertyCategoryCodeSequence (CID 7150)
	Type        Code   // SegmentedPropertyTypeCodeSequence (CID 7151)
	// TypeModifier is the type's modifier (laterality, disease), optional.
	TypeModifier *Code
	// AnatomicRegion is where the segment lies, optional.
	AnatomicRegion *Code
	// Algorithm and AlgorithmVersion name the method (SegmentAlgorithmName
	// and the Segmentation Algorithm Identification Sequence, written when
	// Family, its CID 7162 family, is set).
	Algorithm, AlgorithmVersion string
	Family                      *Code
	// CIELab is the recommended display colour in DICOM's scaled CIELab
	// (0..65535 each); all zero leaves it out.
	CIELab [3]int
	Mask   *volume.Label
	Value  uint8
}

// has reports whether a mask value belongs to the segment.
func (s *Segment) has(v uint8) bool {
	if s.Value == 0 {
		return v != 0
	}
	return v == s.Value
}

// Equipment names the software that made an object (General and Enhanced
// General Equipment modules).
type Equipment struct {
	Manufacturer, Model, SoftwareVersion, DeviceSerialNumber string
}

// SEGOptions describe a Segmentation object beyond its segments.
type SEGOptions struct {
	Equipment
	SeriesNumber       int    // default 9901
	SeriesDescription  string // default "covseg segmentation"
	ContentLabel       string // CS, default "COVSEG"
	ContentDescription string
	ContentCreator     string    // PN, default "covseg"
	Time               time.Time // content date/time; zero: now
	// SeriesUID and InstanceUID are the new series and instance; empty:
	// new UIDs.
	SeriesUID, InstanceUID string
}

// Written describes a DICOM object that was written.
type Written struct {
	Path              string
	SOPClassUID       string
	SOPInstanceUID    string
	SeriesInstanceUID string
	StudyInstanceUID  string
	Frames            int
	FramesPerSegment  []int // SEG only: frames of each segment
}

// WriteSEG writes a BINARY Segmentation of the source series to path (a
// temporary file renamed into place): one frame per segment and source
// slice where the segment has a voxel, each referencing its source
// instance. Every segment's mask must lie on the source's grid.
func WriteSEG(path string, src *Source, segs []Segment, opt SEGOptions) (*Written, error) {
	var w *Written
	err := atomicfile.Write(path, func(out io.Writer) error {
		var err error
		w, err = EncodeSEG(out, src, segs, opt)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dicomout: %s: %w", path, err)
	}
	w.Path = path
	return w, nil
}

// segFrame is one frame of a Segmentation: segment seg (index into the
// segments) on source slice k.
type segFrame struct{ seg, k int }

// EncodeSEG writes the Segmentation (see WriteSEG) to out.
func EncodeSEG(out io.Writer, src *Source, segs []Segment, opt SEGOptions) (*Written, error) {
	ds, w, err := segElements(src, segs, opt)
	if err != nil {
		return nil, err
	}
	if err := dicom.Write(out, dicom.Dataset{Elements: ds}); err != nil {
		return nil, err
	}
	return w, nil
}

// segElements builds the Segmentation's elements, sorted by tag.
func segElements(src *Source, segs []Segment, opt SEGOptions) ([]*dicom.Element, *Written, error) {
	if len(segs) == 0 {
		return nil, nil, errors.New("no segments")
	}
	for i := range segs {
		if segs[i].Mask == nil {
			return nil, nil, fmt.Errorf("segment %d (%s): no mask", i+1, segs[i].Label)
		}
		if err := src.checkGrid(segs[i].Mask); err != nil {
			return nil, nil, fmt.Errorf("segment %d (%s): %w", i+1, segs[i].Label, err)
		}
	}
	defaultSEG(&opt)
	frames, perSeg := segFrames(segs)
	b := &builder{}
	ds := segDataset(b, src, segs, frames, opt)
	if b.err != nil {
		return nil, nil, b.err
	}
	ds = append(ds, pixelElement(packFrames(segs, frames)))
	sortElements(ds)
	return ds, &Written{
		SOPClassUID: SegmentationStorage, SOPInstanceUID: opt.InstanceUID,
		SeriesInstanceUID: opt.SeriesUID, StudyInstanceUID: src.value(tag.StudyInstanceUID),
		Frames: len(frames), FramesPerSegment: perSeg,
	}, nil
}

func defaultSEG(opt *SEGOptions) {
	if opt.SeriesNumber == 0 {
		opt.SeriesNumber = 9901
	}
	if opt.SeriesDescription == "" {
		opt.SeriesDescription = "covseg segmentation"
	}
	if opt.ContentLabel == "" {
		opt.ContentLabel = "COVSEG"
	}
	if opt.ContentCreator == "" {
		opt.ContentCreator = "covseg^"
	}
	defaultInstance(&opt.Equipment, &opt.Time, &opt.SeriesUID, &opt.InstanceUID)
}

func defaultEquipment(e *Equipment) {
	if e.Manufacturer == "" {
		e.Manufacturer = "covseg"
	}
	if e.Model == "" {
		e.Model = "covseg"
	}
	if e.SoftwareVersion == "" {
		e.SoftwareVersion = "unknown"
	}
	if e.DeviceSerialNumber == "" {
		e.DeviceSerialNumber = "0"
	}
}

// segFrames lists the frames to write, segment by segment and slice by
// slice: those where the segment has a voxel. When no segment has any,
// one empty frame is kept, since a Segmentation needs at least one.
func segFrames(segs []Segment) ([]segFrame, []int) {
	d := segs[0].Mask.Dims
	plane := d[0] * d[1]
	var frames []segFrame
	per := make([]int, len(segs))
	for i := range segs {
		data := segs[i].Mask.Data
		for k := 0; k < d[2]; k++ {
			for _, v := range data[k*plane : (k+1)*plane] {
				if segs[i].has(v) {
					frames = append(frames, segFrame{i, k})
					per[i]++
					break
				}
			}
		}
	}
	if len(frames) == 0 {
		frames = append(frames, segFrame{0, 0})
		per[0] = 1
	}
	return frames, per
}

// packFrames packs the frames' pixels one bit each, as PS3.5 8.1.1 and
// 8.2 say for BitsAllocated 1: the first pixel in the least significant
// bit of the first byte, frames following each other without padding
// (so a frame may start mid-byte), the whole padded to an even length.
func packFrames(segs []Segment, frames []segFrame) []byte {
	d := segs[0].Mask.Dims
	plane := d[0] * d[1]
	nbits := len(frames) * plane
	buf := make([]byte, (nbits+7)/8+((nbits+7)/8)%2)
	bit := 0
	for _, f := range frames {
		s := &segs[f.seg]
		for _, v := range s.Mask.Data[f.k*plane : (f.k+1)*plane] {
			if s.has(v) {
				buf[bit>>3] |= 1 << (bit & 7)
			}
			bit++
		}
	}
	return buf
}

// pixelElement is the PixelData element holding already packed bytes (the
// library has no 1-bit writer): OB, written as given.
func pixelElement(pix []byte) *dicom.Element {
	v, _ := dicom.NewValue(dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: pix})
	return &dicom.Element{Tag: tag.PixelData, RawValueRepresentation: "OB", ValueRepresentation: tag.VRBytes, Value: v}
}

// segDataset builds every element of the Segmentation but its pixels.
func segDataset(b *builder, src *Source, segs []Segment, frames []segFrame, opt SEGOptions) []*dicom.Element {
	info := src.Series
	date, tm := opt.Time.Format("20060102"), opt.Time.Format("150405.000000")
	ds := meta(b, SegmentationStorage, opt.InstanceUID)
	ds = append(ds, src.commonElements(b, true)...)
	ds = append(ds,
		// SOP Common
		b.str(tag.SOPClassUID, SegmentationStorage),
		b.str(tag.SOPInstanceUID, opt.InstanceUID),
		b.str(tag.InstanceCreationDate, date),
		b.str(tag.InstanceCreationTime, tm),
		// General Series, Segmentation Series
		b.str(tag.Modality, "SEG"),
		b.str(tag.SeriesInstanceUID, opt.SeriesUID),
		b.is(tag.SeriesNumber, opt.SeriesNumber),
		b.str(tag.SeriesDescription, shortString(opt.SeriesDescription, 64)),
		b.str(tag.SeriesDate, date),
		b.str(tag.SeriesTime, tm),
		// General Image, Segmentation Image
		b.is(tag.InstanceNumber, 1),
		b.str(tag.ContentDate, date),
		b.str(tag.ContentTime, tm),
		b.str(tag.ImageType, "DERIVED", "PRIMARY"),
		b.str(tag.ContentLabel, shortString(opt.ContentLabel, 16)),
		b.str(tag.ContentDescription, shortString(opt.ContentDescription, 64)),
		b.str(tag.ContentCreatorName, opt.ContentCreator),
		b.str(tag.SegmentationType, "BINARY"),
		b.str(tag.LossyImageCompression, "00"),
		// Image Pixel: one bit per pixel
		b.ints(tag.SamplesPerPixel, 1),
		b.str(tag.PhotometricInterpretation, "MONOCHROME2"),
		b.ints(tag.Rows, info.Dims[1]),
		b.ints(tag.Columns, info.Dims[0]),
		b.ints(tag.BitsAllocated, 1),
		b.ints(tag.BitsStored, 1),
		b.ints(tag.HighBit, 0),
		b.ints(tag.PixelRepresentation, 0),
		// Multi-frame
		b.is(tag.NumberOfFrames, len(frames)),
	)
	ds = append(ds, equipment(b, opt.Equipment)...)
	ds = append(ds, b.seq(tag.SegmentSequence, segmentItems(b, segs)...))
	ds = append(ds, dimensions(b)...)
	ds = append(ds, b.seq(tag.SharedFunctionalGroupsSequence, sharedGroups(b, info)))
	ds = append(ds, b.seq(tag.PerFrameFunctionalGroupsSequence, perFrameGroups(b, src, frames)...))
	ds = append(ds, b.seq(tag.ReferencedSeriesSequence, referencedSeries(b, src)))
	return ds
}

// meta is the File Meta Information (PS3.10 7.1).
func meta(b *builder, class, instance string) []*dicom.Element {
	return []*dicom.Element{
		b.elem(tag.FileMetaInformationVersion, []byte{0, 1}),
		b.str(tag.MediaStorageSOPClassUID, class),
		b.str(tag.MediaStorageSOPInstanceUID, instance),
		b.str(tag.TransferSyntaxUID, ExplicitVRLittleEndian),
		b.str(tag.ImplementationClassUID, implementationUID),
		b.str(tag.ImplementationVersionName, "COVSEG"),
	}
}

// equipment is the General and Enhanced General Equipment modules.
func equipment(b *builder, e Equipment) []*dicom.Element {
	return []*dicom.Element{
		b.str(tag.Manufacturer, shortString(e.Manufacturer, 64)),
		b.str(tag.ManufacturerModelName, shortString(e.Model, 64)),
		b.str(tag.DeviceSerialNumber, shortString(e.DeviceSerialNumber, 64)),
		b.str(tag.SoftwareVersions, shortString(e.SoftwareVersion, 64)),
	}
}

// segmentItems are the SegmentSequence items (PS3.3 C.8.20.2.1
// Segment Description Macro), numbered from 1.
func segmentItems(b *builder, segs []Segment) [][]*dicom.Element {
	items := make([][]*dicom.Element, len(segs))
	for i, s := range segs {
		typ := b.code(s.Type)
		if s.TypeModifier != nil {
			typ = append(typ, b.seq(tag.SegmentedPropertyTypeModifierCodeSequence, b.code(*s.TypeModifier)))
		}
		it := []*dicom.Element{
			b.ints(tag.SegmentNumber, i+1),
			b.str(tag.SegmentLabel, shortString(s.Label, 64)),
			b.str(tag.SegmentAlgorithmType, "AUTOMATIC"),
			b.str(tag.SegmentAlgorithmName, shortString(s.Algorithm, 64)),
			b.seq(tag.SegmentedPropertyCategoryCodeSequence, b.code(s.Category)),
			b.seq(tag.SegmentedPropertyTypeCodeSequence, typ),
		}
		if s.Description != "" {
			it = append(it, b.str(tag.SegmentDescription, s.Description))
		}
		if s.AnatomicRegion != nil {
			it = append(it, b.seq(tag.AnatomicRegionSequence, b.code(*s.AnatomicRegion)))
		}
		if s.CIELab != [3]int{} {
			it = append(it, b.ints(tag.RecommendedDisplayCIELabValue, s.CIELab[:]...))
		}
		if s.Family != nil {
			it = append(it, b.seq(tag.SegmentationAlgorithmIdentificationSequence, []*dicom.Element{
				b.seq(tag.AlgorithmFamilyCodeSequence, b.code(*s.Family)),
				b.str(tag.AlgorithmName, shortString(s.Algorithm, 64)),
				b.str(tag.AlgorithmVersion, shortString(s.AlgorithmVersion, 64)),
			}))
		}
		items[i] = it
	}
	return items
}

// dimensions is the Multi-frame Dimension module: frames are indexed by
// segment, then by ImagePositionPatient.
func dimensions(b *builder) []*dicom.Element {
	org := NewUID()
	at := func(t tag.Tag) []int { return []int{int(t.Group), int(t.Element)} }
	return []*dicom.Element{
		b.seq(tag.DimensionOrganizationSequence, []*dicom.Element{b.str(tag.DimensionOrganizationUID, org)}),
		b.str(tag.DimensionOrganizationType, "3D"),
		b.seq(tag.DimensionIndexSequence,
			[]*dicom.Element{
				b.str(tag.DimensionOrganizationUID, org),
				b.ints(tag.DimensionIndexPointer, at(tag.ReferencedSegmentNumber)...),
				b.ints(tag.FunctionalGroupPointer, at(tag.SegmentIdentificationSequence)...),
				b.str(tag.DimensionDescriptionLabel, "ReferencedSegmentNumber"),
			},
			[]*dicom.Element{
				b.str(tag.DimensionOrganizationUID, org),
				b.ints(tag.DimensionIndexPointer, at(tag.ImagePositionPatient)...),
				b.ints(tag.FunctionalGroupPointer, at(tag.PlanePositionSequence)...),
				b.str(tag.DimensionDescriptionLabel, "ImagePositionPatient"),
			}),
	}
}

// sharedGroups are the functional groups every frame shares: pixel
// measures and plane orientation, as the source states them.
func sharedGroups(b *builder, info *dicomseries.SeriesInfo) []*dicom.Element {
	o := info.Orientation
	return []*dicom.Element{
		b.seq(tag.PixelMeasuresSequence, []*dicom.Element{
			b.ds(tag.PixelSpacing, info.PixelSpacing[0], info.PixelSpacing[1]),
			b.ds(tag.SliceThickness, info.SliceStep),
			b.ds(tag.SpacingBetweenSlices, info.SliceStep),
		}),
		b.seq(tag.PlaneOrientationSequence, []*dicom.Element{
			b.ds(tag.ImageOrientationPatient, o[:]...),
		}),
	}
}

// perFrameGroups are each frame's functional groups: where it derives
// from, its dimension index, its position and its segment.
func perFrameGroups(b *builder, src *Source, frames []segFrame) [][]*dicom.Element {
	info := src.Series
	items := make([][]*dicom.Element, len(frames))
	for i, f := range frames {
		p := info.Positions[f.k]
		items[i] = []*dicom.Element{
			b.seq(tag.DerivationImageSequence, []*dicom.Element{
				b.seq(tag.DerivationCodeSequence, b.code(codeSegmentation)),
				b.seq(tag.SourceImageSequence, []*dicom.Element{
					b.str(tag.ReferencedSOPClassUID, info.SOPClassUIDs[f.k]),
					b.str(tag.ReferencedSOPInstanceUID, info.SOPInstanceUIDs[f.k]),
					b.seq(tag.PurposeOfReferenceCodeSequence, b.code(codeSourceImage)),
				}),
			}),
			b.seq(tag.FrameContentSequence, []*dicom.Element{
				b.ints(tag.DimensionIndexValues, f.seg+1, f.k+1),
			}),
			b.seq(tag.PlanePositionSequence, []*dicom.Element{
				b.ds(tag.ImagePositionPatient, p[0], p[1], p[2]),
			}),
			b.seq(tag.SegmentIdentificationSequence, []*dicom.Element{
				b.ints(tag.ReferencedSegmentNumber, f.seg+1),
			}),
		}
	}
	return items
}

// referencedSeries is the Common Instance Reference module's item for the
// source series: every instance of it.
func referencedSeries(b *builder, src *Source) []*dicom.Element {
	info := src.Series
	inst := make([][]*dicom.Element, len(info.SOPInstanceUIDs))
	for k := range inst {
		inst[k] = []*dicom.Element{
			b.str(tag.ReferencedSOPClassUID, info.SOPClassUIDs[k]),
			b.str(tag.ReferencedSOPInstanceUID, info.SOPInstanceUIDs[k]),
		}
	}
	return []*dicom.Element{
		b.str(tag.SeriesInstanceUID, info.UID),
		b.seq(tag.ReferencedInstanceSequence, inst...),
	}
}
