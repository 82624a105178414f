package phantom

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// SeriesMeta names a DICOM series written by WriteDICOM.
type SeriesMeta struct {
	PatientID    string
	StudyUID     string
	SeriesUID    string
	SeriesNumber int
	Description  string
	// ReverseFiles writes the files (and instance numbers) from the last
	// slice to the first, as many scanners number them; readers must sort
	// by position, not by file or number.
	ReverseFiles bool
}

// UID returns a DICOM UID under the 2.25 root (a UUID-derived UID, no
// registration needed) made from a hash of parts: the same parts always
// give the same UID.
func UID(parts ...string) string {
	h := fnv.New128a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var b [16]byte
	h.Sum(b[:0])
	// 2.25. followed by the 128-bit number in decimal (no leading zero).
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	return "2.25." + strconv.FormatUint(hi|1<<63, 10) + strconv.FormatUint(lo%1e9, 10)
}

// WriteDICOM writes v (HU) into dir as a CT series of single-frame files
// IM0001.dcm... (explicit VR little endian, 16-bit unsigned with rescale
// intercept −1024, values clipped to −1024..64511 HU). Slice k of v is
// file k (or in reverse, see SeriesMeta.ReverseFiles) with column i and
// row j of the volume as its columns and rows; position, orientation and
// spacing come from v's affine (converted to DICOM's LPS), which must have
// orthogonal columns. It returns each slice's SOPInstanceUID, by k.
func WriteDICOM(dir string, v *volume.Volume, meta SeriesMeta) ([]string, error) {
	lps := volume.LPSToRAS(v.Affine) // its own inverse: RAS → LPS
	sp := v.Affine.Spacing()
	var rowCos, colCos [3]float64
	for r := range 3 {
		rowCos[r], colCos[r] = lps[r][0]/sp[0], lps[r][1]/sp[1]
	}
	if dot := rowCos[0]*colCos[0] + rowCos[1]*colCos[1] + rowCos[2]*colCos[2]; math.Abs(dot) > 1e-6 {
		return nil, fmt.Errorf("phantom: %s: the affine's i and j axes are not orthogonal", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("phantom: %w", err)
	}
	d := v.Dims
	sops := make([]string, d[2])
	for k := range d[2] {
		sops[k] = UID(meta.SeriesUID, "slice", strconv.Itoa(k))
		n := k
		if meta.ReverseFiles {
			n = d[2] - 1 - k
		}
		ipp := lps.Apply([3]float64{0, 0, float64(k)})
		plane := v.Data[k*d[0]*d[1] : (k+1)*d[0]*d[1]]
		ds, err := sliceDataset(meta, sops[k], n+1, d[0], d[1], ipp, rowCos, colCos, [2]float64{sp[1], sp[0]}, sp[2], plane)
		if err != nil {
			return nil, fmt.Errorf("phantom: %s: %w", dir, err)
		}
		path := filepath.Join(dir, fmt.Sprintf("IM%04d.dcm", n+1))
		if err := atomicfile.Write(path, func(w io.Writer) error {
			return dicom.Write(w, ds, dicom.SkipVRVerification())
		}); err != nil {
			return nil, fmt.Errorf("phantom: %w", err)
		}
	}
	return sops, nil
}

func ds(x ...float64) []string {
	out := make([]string, len(x))
	for i, v := range x {
		// DS holds at most 16 characters.
		out[i] = strconv.FormatFloat(v, 'g', 10, 64)
	}
	return out
}

// sliceDataset builds one slice's dataset.
func sliceDataset(meta SeriesMeta, sop string, instance, cols, rows int, ipp, rowCos, colCos [3]float64, spacing [2]float64, thickness float64, hu []float32) (dicom.Dataset, error) {
	const ctImage = "1.2.840.10008.5.1.4.1.1.2"
	nf := frame.NewNativeFrame[uint16](16, rows, cols, rows*cols, 1)
	for i, x := range hu {
		s := math.Round(float64(x)) + 1024
		nf.RawData[i] = uint16(math.Max(0, math.Min(65535, s)))
	}
	type el struct {
		t tag.Tag
		v any
	}
	els := []el{
		{tag.FileMetaInformationVersion, []byte{0, 1}},
		{tag.MediaStorageSOPClassUID, []string{ctImage}},
		{tag.MediaStorageSOPInstanceUID, []string{sop}},
		{tag.TransferSyntaxUID, []string{uid.ExplicitVRLittleEndian}},
		{tag.SpecificCharacterSet, []string{"ISO_IR 100"}},
		{tag.SOPClassUID, []string{ctImage}},
		{tag.SOPInstanceUID, []string{sop}},
		{tag.Modality, []string{"CT"}},
		{tag.SeriesDescription, []string{meta.Description}},
		{tag.PatientName, []string{"SYNTHETIC^" + meta.PatientID}},
		{tag.PatientID, []string{meta.PatientID}},
		{tag.SliceThickness, ds(thickness)},
		{tag.StudyInstanceUID, []string{meta.StudyUID}},
		{tag.SeriesInstanceUID, []string{meta.SeriesUID}},
		{tag.SeriesNumber, []string{strconv.Itoa(meta.SeriesNumber)}},
		{tag.InstanceNumber, []string{strconv.Itoa(instance)}},
		{tag.ImagePositionPatient, ds(ipp[:]...)},
		{tag.ImageOrientationPatient, ds(rowCos[0], rowCos[1], rowCos[2], colCos[0], colCos[1], colCos[2])},
		{tag.FrameOfReferenceUID, []string{UID(meta.StudyUID, "frame")}},
		{tag.SamplesPerPixel, []int{1}},
		{tag.PhotometricInterpretation, []string{"MONOCHROME2"}},
		{tag.Rows, []int{rows}},
		{tag.Columns, []int{cols}},
		{tag.PixelSpacing, ds(spacing[:]...)},
		{tag.BitsAllocated, []int{16}},
		{tag.BitsStored, []int{16}},
		{tag.HighBit, []int{15}},
		{tag.PixelRepresentation, []int{0}},
		{tag.RescaleIntercept, ds(-1024)},
		{tag.RescaleSlope, ds(1)},
		{tag.PixelData, dicom.PixelDataInfo{Frames: []*frame.Frame{{NativeData: nf}}}},
	}
	var out dicom.Dataset
	for _, e := range els {
		x, err := dicom.NewElement(e.t, e.v)
		if err != nil {
			return out, fmt.Errorf("element %v: %w", e.t, err)
		}
		out.Elements = append(out.Elements, x)
	}
	return out, nil
}
