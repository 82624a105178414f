package dicomout

import (
	"errors"
	"fmt"
	"image"
	"io"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/covseg/covseg/internal/atomicfile"
)

// SCOptions describe a Secondary Capture image.
type SCOptions struct {
	Equipment
	SeriesNumber      int    // default 9902
	SeriesDescription string // LO, cut to 64 characters
	// Comments go into ImageComments (LT): the figures in full, for
	// viewers that show them.
	Comments string
	// DerivationDescription says how the picture was made (ST).
	DerivationDescription string
	Time                  time.Time // zero: now
	// SeriesUID and InstanceUID: empty means new UIDs.
	SeriesUID, InstanceUID string
}

// maxSCPixels bounds a Secondary Capture picture (64 Mpixel).
const maxSCPixels = 1 << 26

// WriteSC writes img as an RGB Secondary Capture image (SOP class
// 1.2.840.10008.5.1.4.1.1.7) in the source's study, to path (a temporary
// file renamed into place). Text in the picture is burnt in: the object
// says so (BurnedInAnnotation YES).
func WriteSC(path string, src *Source, img image.Image, opt SCOptions) (*Written, error) {
	var w *Written
	err := atomicfile.Write(path, func(out io.Writer) error {
		var err error
		w, err = EncodeSC(out, src, img, opt)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dicomout: %s: %w", path, err)
	}
	w.Path = path
	return w, nil
}

// EncodeSC writes the Secondary Capture (see WriteSC) to out.
func EncodeSC(out io.Writer, src *Source, img image.Image, opt SCOptions) (*Written, error) {
	r := img.Bounds()
	if r.Dx() < 1 || r.Dy() < 1 || r.Dx() > 0xFFFF || r.Dy() > 0xFFFF || r.Dx()*r.Dy() > maxSCPixels {
		return nil, fmt.Errorf("picture %dx%d cannot be a Secondary Capture", r.Dx(), r.Dy())
	}
	if src == nil {
		return nil, errors.New("no source series")
	}
	defaultSC(&opt)
	b := &builder{}
	date, tm := opt.Time.Format("20060102"), opt.Time.Format("150405.000000")
	ds := meta(b, SecondaryCaptureStorage, opt.InstanceUID)
	ds = append(ds, src.commonElements(b, false)...)
	ds = append(ds, equipment(b, opt.Equipment)...)
	ds = append(ds,
		b.str(tag.SOPClassUID, SecondaryCaptureStorage),
		b.str(tag.SOPInstanceUID, opt.InstanceUID),
		b.str(tag.InstanceCreationDate, date),
		b.str(tag.InstanceCreationTime, tm),
		b.str(tag.Modality, "OT"),
		b.str(tag.Laterality), // type 2C: a picture of both lungs has none
		b.str(tag.SeriesInstanceUID, opt.SeriesUID),
		b.is(tag.SeriesNumber, opt.SeriesNumber),
		b.str(tag.SeriesDescription, shortString(opt.SeriesDescription, 64)),
		b.str(tag.SeriesDate, date),
		b.str(tag.SeriesTime, tm),
		// SC Equipment: a workstation made it.
		b.str(tag.ConversionType, "WSD"),
		b.str(tag.SecondaryCaptureDeviceManufacturer, shortString(opt.Manufacturer, 64)),
		b.str(tag.SecondaryCaptureDeviceManufacturerModelName, shortString(opt.Model, 64)),
		b.str(tag.SecondaryCaptureDeviceSoftwareVersions, shortString(opt.SoftwareVersion, 64)),
		b.str(tag.DateOfSecondaryCapture, date),
		b.str(tag.TimeOfSecondaryCapture, tm),
		// General Image
		b.is(tag.InstanceNumber, 1),
		b.str(tag.PatientOrientation),
		b.str(tag.ContentDate, date),
		b.str(tag.ContentTime, tm),
		b.str(tag.ImageType, "DERIVED", "SECONDARY"),
		b.str(tag.BurnedInAnnotation, "YES"),
		b.str(tag.LossyImageCompression, "00"),
		// Image Pixel: 8-bit RGB, pixel-interleaved
		b.ints(tag.SamplesPerPixel, 3),
		b.str(tag.PhotometricInterpretation, "RGB"),
		b.ints(tag.PlanarConfiguration, 0),
		b.ints(tag.Rows, r.Dy()),
		b.ints(tag.Columns, r.Dx()),
		b.ints(tag.BitsAllocated, 8),
		b.ints(tag.BitsStored, 8),
		b.ints(tag.HighBit, 7),
		b.ints(tag.PixelRepresentation, 0),
	)
	if opt.Comments != "" {
		ds = append(ds, b.str(tag.ImageComments, opt.Comments))
	}
	if opt.DerivationDescription != "" {
		ds = append(ds, b.str(tag.DerivationDescription, shortString(opt.DerivationDescription, 1024)))
	}
	if b.err != nil {
		return nil, b.err
	}
	ds = append(ds, pixelElement(rgbBytes(img)))
	sortElements(ds)
	if err := dicom.Write(out, dicom.Dataset{Elements: ds}); err != nil {
		return nil, err
	}
	return &Written{
		SOPClassUID: SecondaryCaptureStorage, SOPInstanceUID: opt.InstanceUID,
		SeriesInstanceUID: opt.SeriesUID, StudyInstanceUID: src.value(tag.StudyInstanceUID), Frames: 1,
	}, nil
}

func defaultSC(opt *SCOptions) {
	if opt.SeriesNumber == 0 {
		opt.SeriesNumber = 9902
	}
	if opt.SeriesDescription == "" {
		opt.SeriesDescription = "covseg report"
	}
	defaultInstance(&opt.Equipment, &opt.Time, &opt.SeriesUID, &opt.InstanceUID)
}

// defaultInstance fills what every object covseg writes needs and the
// caller left empty: equipment, the time, new series and instance UIDs.
func defaultInstance(eq *Equipment, t *time.Time, seriesUID, instanceUID *string) {
	defaultEquipment(eq)
	if t.IsZero() {
		*t = time.Now()
	}
	if *seriesUID == "" {
		*seriesUID = NewUID()
	}
	if *instanceUID == "" {
		*instanceUID = NewUID()
	}
}

// rgbBytes returns the picture's pixels as R, G, B bytes row by row
// (alpha dropped: the pictures are opaque), padded to even length.
func rgbBytes(img image.Image) []byte {
	r := img.Bounds()
	n := r.Dx() * r.Dy() * 3
	buf := make([]byte, n, n+1)
	i := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			buf[i], buf[i+1], buf[i+2] = byte(cr>>8), byte(cg>>8), byte(cb>>8)
			i += 3
		}
	}
	if n%2 == 1 {
		buf = append(buf, 0)
	}
	return buf
}
