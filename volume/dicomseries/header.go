package dicomseries

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// prefixSize is how much of a file the header pass reads first; CT headers
// (private vendor groups included) fit in it, longer ones are read whole.
const prefixSize = 64 << 10

// header is what the header pass learns from one file.
type header struct {
	path      string
	ts        string // transfer syntax UID
	seriesUID string
	desc      string
	modality  string
	seriesNum string
	instance  string
	sopUID    string // SOPInstanceUID
	sopClass  string // SOPClassUID
	studyUID  string // StudyInstanceUID
	patientID string // PatientID

	hasPixels bool  // a top-level PixelData element exists
	broken    error // the pixel data cannot be read (the header could)

	rows, cols int
	iop        []float64 // ImageOrientationPatient (6 values when present)
	ipp        []float64 // ImagePositionPatient (3 values when present)
	spacing    []float64 // PixelSpacing: between rows, between columns
	thickness  float64   // SliceThickness (0: absent)
	between    float64   // SpacingBetweenSlices (0: absent)

	samples, bitsAlloc, bitsStored, highBit, pixelRep int
	photometric                                       string
	slope, intercept                                  float64
	frames                                            int
	tilt                                              float64 // GantryDetectorTilt (degrees)

	missing []string // required image attributes that are absent or unreadable
}

// readHeader reads one file's header. It returns errNotDICOM for files that
// are not DICOM at all; any other error names a DICOM file that is broken.
func readHeader(path string) (*header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	b := make([]byte, min(size, prefixSize))
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	h, err := headerOf(b, size)
	if errors.Is(err, errNeedMore) {
		if b, err = readAll(f, size); err != nil {
			return nil, err
		}
		h, err = headerOf(b, size)
	}
	if err != nil {
		return nil, err
	}
	h.path = path
	return h, nil
}

// headerOf parses the header in b, the first bytes of a file of the given
// size (errNeedMore: the header goes on past b).
func headerOf(b []byte, size int64) (*header, error) {
	l, err := readLayout(b, size, true)
	if err != nil {
		return nil, err
	}
	end := len(l.ds)
	if l.pixelAt >= 0 {
		end = l.pixelAt
	}
	ds, err := parse(l, end, dicom.SkipPixelData())
	if err != nil {
		return nil, err
	}
	h := headerFrom(ds)
	h.ts, h.hasPixels, h.broken = l.ts, l.pixelAt >= 0, l.pixelErr
	return h, nil
}

// readAll reads the whole of an open file.
func readAll(f *os.File, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	return b, nil
}

// parse hands ds[:end], which readLayout has checked, to the dicom library.
// The library indexes into values without checking them in places, so a
// panic on a malformed file becomes an error here.
func parse(l *layout, end int, opts ...dicom.ParseOption) (ds dicom.Dataset, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed DICOM (the parser failed: %v)", r)
		}
	}()
	r := io.MultiReader(bytes.NewReader(l.meta), bytes.NewReader(l.ds[:end]))
	opts = append(opts, dicom.AllowUnknownSpecificCharacterSet())
	ds, err = dicom.Parse(r, int64(len(l.meta)+end), nil, opts...)
	if err != nil {
		return ds, fmt.Errorf("malformed DICOM: %w", err)
	}
	return ds, nil
}

// headerFrom extracts the attributes this package uses.
func headerFrom(ds dicom.Dataset) *header {
	e := map[tag.Tag]*dicom.Element{}
	for _, el := range ds.Elements {
		e[el.Tag] = el
	}
	h := &header{slope: 1, samples: 1, frames: 1}
	h.seriesUID = str(e, tag.SeriesInstanceUID)
	h.desc = str(e, tag.SeriesDescription)
	h.modality = str(e, tag.Modality)
	h.seriesNum = str(e, tag.SeriesNumber)
	h.instance = str(e, tag.InstanceNumber)
	h.sopUID = str(e, tag.SOPInstanceUID)
	h.sopClass = str(e, tag.SOPClassUID)
	h.studyUID = str(e, tag.StudyInstanceUID)
	h.patientID = str(e, tag.PatientID)
	h.photometric = str(e, tag.PhotometricInterpretation)

	need := func(t tag.Tag, name string, n int) []float64 {
		v, ok := nums(e, t)
		if !ok || (n > 0 && len(v) != n) {
			h.missing = append(h.missing, name)
			return nil
		}
		return v
	}
	one := func(t tag.Tag, name string, def float64, required bool) float64 {
		v, ok := nums(e, t)
		if !ok || len(v) == 0 {
			if required {
				h.missing = append(h.missing, name)
			}
			return def
		}
		return v[0]
	}
	h.rows = int(one(tag.Rows, "Rows (0028,0010)", 0, true))
	h.cols = int(one(tag.Columns, "Columns (0028,0011)", 0, true))
	h.bitsAlloc = int(one(tag.BitsAllocated, "BitsAllocated (0028,0100)", 0, true))
	h.bitsStored = int(one(tag.BitsStored, "", float64(h.bitsAlloc), false))
	h.highBit = int(one(tag.HighBit, "", float64(h.bitsStored-1), false))
	h.pixelRep = int(one(tag.PixelRepresentation, "", 0, false))
	h.samples = int(one(tag.SamplesPerPixel, "", 1, false))
	h.frames = int(one(tag.NumberOfFrames, "", 1, false))
	h.slope = one(tag.RescaleSlope, "", 1, false)
	h.intercept = one(tag.RescaleIntercept, "", 0, false)
	h.thickness = one(tag.SliceThickness, "", 0, false)
	h.between = one(tag.SpacingBetweenSlices, "", 0, false)
	h.tilt = one(tag.GantryDetectorTilt, "", 0, false)
	h.iop = need(tag.ImageOrientationPatient, "ImageOrientationPatient (0020,0037)", 6)
	h.ipp = need(tag.ImagePositionPatient, "ImagePositionPatient (0020,0032)", 3)
	h.spacing = need(tag.PixelSpacing, "PixelSpacing (0028,0030)", 2)
	return h
}

// str returns the first string value of an element ("" when absent).
func str(e map[tag.Tag]*dicom.Element, t tag.Tag) string {
	el, ok := e[t]
	if !ok || el.Value == nil {
		return ""
	}
	s, ok := el.Value.GetValue().([]string)
	if !ok || len(s) == 0 {
		return ""
	}
	return strings.TrimSpace(strings.Join(s, `\`))
}

// nums returns the numeric values of an element, whether it is binary (US,
// SS, UL, SL, FL, FD) or a decimal/integer string (DS, IS). It reports false
// when the element is absent, empty or holds something that is not a number.
func nums(e map[tag.Tag]*dicom.Element, t tag.Tag) ([]float64, bool) {
	el, ok := e[t]
	if !ok || el.Value == nil {
		return nil, false
	}
	var out []float64
	switch v := el.Value.GetValue().(type) {
	case []int:
		for _, x := range v {
			out = append(out, float64(x))
		}
	case []float64:
		out = append(out, v...)
	case []string:
		for _, s := range v {
			x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, false
			}
			out = append(out, x)
		}
	default:
		return nil, false
	}
	return out, len(out) > 0
}
