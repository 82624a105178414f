package dicomout

import (
	"bytes"
	"image"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
)

// fixtureSeries reads the IBSI chest CT series: 204 columns x 201 rows, so
// a frame is 41004 bits and every other frame starts mid-byte.
func fixtureSeries(t testing.TB) (*volume.Volume, *Source) {
	t.Helper()
	ct, info, err := dicomseries.Read(testutil.IO(t, "ibsi_chest_ct", "dicom"), dicomseries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(info)
	if err != nil {
		t.Fatal(err)
	}
	return ct, src
}

// testMasks makes an "infiltrate" (a block in slices 10..16) and a crude
// lung label: air-like voxels, 1 where the patient's right is (RAS+ x
// larger than the body's middle), 2 on the left.
func testMasks(t testing.TB, ct *volume.Volume) (inf, lung *volume.Label) {
	t.Helper()
	inf, err := volume.NewLabel(ct.Dims, ct.Affine)
	if err != nil {
		t.Fatal(err)
	}
	lung, _ = volume.NewLabel(ct.Dims, ct.Affine)
	d, a := ct.Dims, ct.Affine
	mid := a[0][0]*float64(d[0]-1)/2 + a[0][1]*float64(d[1]-1)/2 + a[0][3]
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				n := i + d[0]*(j+d[1]*k)
				if v := ct.Data[n]; v < -500 && v > -1000 {
					x := a[0][0]*float64(i) + a[0][1]*float64(j) + a[0][2]*float64(k) + a[0][3]
					lung.Data[n] = 2
					if x > mid {
						lung.Data[n] = 1
					}
				}
				if k >= 10 && k < 17 && i > 30 && i < 61 && j > 50 && j < 77 {
					inf.Data[n] = 1
				}
			}
		}
	}
	return inf, lung
}

func writeTestSEG(t testing.TB, dir string) (string, *Source, []Segment, *Written) {
	t.Helper()
	ct, src := fixtureSeries(t)
	inf, lung := testMasks(t, ct)
	segs := StandardSegments(inf, lung, "test")
	p := filepath.Join(dir, "seg.dcm")
	w, err := WriteSEG(p, src, segs, SEGOptions{Equipment: Equipment{SoftwareVersion: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return p, src, segs, w
}

// TestPackFramesAcrossBytes checks the bit layout on 3x3 frames (9 bits:
// the second frame starts at bit 1 of byte 1).
func TestPackFramesAcrossBytes(t *testing.T) {
	l, _ := volume.NewLabel(volume.Dims{3, 3, 2}, volume.Identity())
	l.Data[0] = 1  // frame 0, pixel 0: byte 0 bit 0
	l.Data[8] = 1  // frame 0, pixel 8: byte 1 bit 0
	l.Data[9] = 1  // frame 1, pixel 0: bit 9 = byte 1 bit 1
	l.Data[17] = 1 // frame 1, pixel 8: bit 17 = byte 2 bit 1
	segs := []Segment{{Mask: l}}
	frames, per := segFrames(segs)
	if len(frames) != 2 || per[0] != 2 {
		t.Fatalf("frames %v", frames)
	}
	got := packFrames(segs, frames)
	want := []byte{0x01, 0x03, 0x02, 0x00} // 18 bits -> 3 bytes, padded to 4
	if !bytes.Equal(got, want) {
		t.Fatalf("packed % x, want % x", got, want)
	}
}

// decodeBits unpacks frame f of a BINARY SEG's pixel data, independently
// of the library's reader (which reads 1-bit data most significant bit
// first and frames as byte-aligned, both wrong).
func decodeBits(pix []byte, f, plane int) []uint8 {
	out := make([]uint8, plane)
	for p := range out {
		bit := f*plane + p
		out[p] = pix[bit>>3] >> (bit & 7) & 1
	}
	return out
}

func find(t *testing.T, es []*dicom.Element, tg tag.Tag) *dicom.Element {
	t.Helper()
	for _, e := range es {
		if e.Tag == tg {
			return e
		}
	}
	t.Fatalf("no %s", tag.DebugString(tg))
	return nil
}

func items(t *testing.T, e *dicom.Element) [][]*dicom.Element {
	var out [][]*dicom.Element
	for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
		out = append(out, it.GetValue().([]*dicom.Element))
	}
	return out
}

// TestSEGFramesMatchMasks reads the SEG back (headers with the library,
// bits by hand) and checks every frame against the mask it came from, its
// source reference against its position, and that the right lung lies on
// the patient's right.
func TestSEGFramesMatchMasks(t *testing.T) {
	p, src, segs, w := writeTestSEG(t, t.TempDir())
	ds, err := dicom.ParseFile(p, nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		t.Fatal(err)
	}
	info := src.Series
	rows := dicom.MustGetInts(find(t, ds.Elements, tag.Rows).Value)[0]
	cols := dicom.MustGetInts(find(t, ds.Elements, tag.Columns).Value)[0]
	if cols != 204 || rows != 201 {
		t.Fatalf("frame %dx%d, want 204x201", cols, rows)
	}
	pix := dicom.MustGetPixelDataInfo(find(t, ds.Elements, tag.PixelData).Value).UnprocessedValueData
	plane := rows * cols
	if want := (w.Frames*plane + 7) / 8; len(pix) != want+want%2 {
		t.Fatalf("pixel data %d bytes for %d frames", len(pix), w.Frames)
	}
	byUID := map[string]int{}
	for k, u := range info.SOPInstanceUIDs {
		byUID[u] = k
	}
	perFrame := items(t, find(t, ds.Elements, tag.PerFrameFunctionalGroupsSequence))
	if len(perFrame) != w.Frames {
		t.Fatalf("%d per-frame items, %d frames", len(perFrame), w.Frames)
	}
	seen := map[[2]int]bool{}
	var sumX [3]float64
	var nX [3]int
	for f, it := range perFrame {
		seg := dicom.MustGetInts(find(t, items(t, find(t, it, tag.SegmentIdentificationSequence))[0], tag.ReferencedSegmentNumber).Value)[0] - 1
		der := items(t, find(t, it, tag.DerivationImageSequence))[0]
		srcItem := items(t, find(t, der, tag.SourceImageSequence))[0]
		uid := dicom.MustGetStrings(find(t, srcItem, tag.ReferencedSOPInstanceUID).Value)[0]
		k, ok := byUID[uid]
		if !ok {
			t.Fatalf("frame %d references %s, not a source instance", f, uid)
		}
		ipp := dicom.MustGetStrings(find(t, items(t, find(t, it, tag.PlanePositionSequence))[0], tag.ImagePositionPatient).Value)
		for a := 0; a < 3; a++ {
			if got, want := ipp[a], formatDS(info.Positions[k][a]); got != want {
				t.Fatalf("frame %d: IPP %v, its source instance (slice %d) is at %v", f, ipp, k, info.Positions[k])
			}
		}
		seen[[2]int{seg, k}] = true
		bits := decodeBits(pix, f, plane)
		s := segs[seg]
		for n, b := range bits {
			want := s.has(s.Mask.Data[k*plane+n])
			if (b == 1) != want {
				t.Fatalf("frame %d (segment %d, slice %d) pixel %d: %d, mask says %v", f, seg+1, k, n, b, want)
			}
			if b == 1 {
				sumX[seg] += info.Positions[k][0] + float64(n%cols)*info.Orientation[0]*info.PixelSpacing[1] + float64(n/cols)*info.Orientation[3]*info.PixelSpacing[0]
				nX[seg]++
			}
		}
	}
	// Every slice where a segment has a voxel has its frame.
	for i, s := range segs {
		for k := 0; k < s.Mask.Dims[2]; k++ {
			has := false
			for _, v := range s.Mask.Data[k*plane : (k+1)*plane] {
				has = has || s.has(v)
			}
			if has != seen[[2]int{i, k}] {
				t.Fatalf("segment %d slice %d: voxels %v, frame %v", i+1, k, has, seen[[2]int{i, k}])
			}
		}
	}
	// LPS+: the patient's right is smaller x.
	right, left := sumX[1]/float64(nX[1]), sumX[2]/float64(nX[2])
	if !(right < left) {
		t.Fatalf("right lung centroid LPS x %.1f, left %.1f: right should be smaller (patient's right is -x in LPS)", right, left)
	}
}

// TestSEGRefusesOtherGrid checks that a mask not on the series' grid is
// refused rather than written onto the wrong pixels.
func TestSEGRefusesOtherGrid(t *testing.T) {
	ct, src := fixtureSeries(t)
	a := ct.Affine
	a[2][3] += 1.5 // half a slice off
	l, _ := volume.NewLabel(ct.Dims, a)
	_, err := EncodeSEG(&bytes.Buffer{}, src, []Segment{{Label: "x", Mask: l}}, SEGOptions{})
	if err == nil || !strings.Contains(err.Error(), "not on the series' grid") {
		t.Fatalf("err = %v", err)
	}
	l, _ = volume.NewLabel(volume.Dims{ct.Dims[1], ct.Dims[0], ct.Dims[2]}, ct.Affine)
	if _, err := EncodeSEG(&bytes.Buffer{}, src, []Segment{{Label: "x", Mask: l}}, SEGOptions{}); err == nil {
		t.Fatal("a transposed mask was accepted")
	}
}

// validate runs dciodvfy on a file and returns its error lines.
func validate(t *testing.T, path string) []string {
	t.Helper()
	out, _ := exec.Command(testutil.Tool(t, "dciodvfy", "dicom3tools"), path).CombinedOutput()
	var errs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Error") {
			errs = append(errs, l)
		}
	}
	return errs
}

// TestSEGValidates runs dicom3tools' dciodvfy (the IOD) and dcentvfy (the
// SEG's patient/study entities against its source series') on the SEG,
// and checks that SEGs broken on purpose fail them, so the check can fail.
func TestSEGValidates(t *testing.T) {
	dir := t.TempDir()
	p, src, segs, _ := writeTestSEG(t, dir)
	if errs := validate(t, p); len(errs) > 0 {
		t.Fatalf("dciodvfy:\n%s", strings.Join(errs, "\n"))
	}
	args := append([]string{p}, src.Series.Files...)
	out, err := exec.Command(testutil.Tool(t, "dcentvfy", "dicom3tools"), args...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Error") || strings.Contains(string(out), "Warning") {
		t.Fatalf("dcentvfy: %v\n%s", err, out)
	}

	breakages := map[string]func([]*dicom.Element){
		"segment removed": func(ds []*dicom.Element) {
			e := findEl(ds, tag.SegmentSequence)
			v := e.Value.GetValue().([]*dicom.SequenceItemValue)
			e.Value = mustValue(t, itemsOf(v[:1]))
		},
		"derivation reference removed": func(ds []*dicom.Element) {
			e := findEl(ds, tag.PerFrameFunctionalGroupsSequence)
			first := e.Value.GetValue().([]*dicom.SequenceItemValue)[0].GetValue().([]*dicom.Element)
			der := findEl(first, tag.DerivationImageSequence)
			dItem := der.Value.GetValue().([]*dicom.SequenceItemValue)[0].GetValue().([]*dicom.Element)
			srcSeq := findEl(dItem, tag.SourceImageSequence)
			sItem := srcSeq.Value.GetValue().([]*dicom.SequenceItemValue)[0].GetValue().([]*dicom.Element)
			var kept []*dicom.Element
			for _, x := range sItem {
				if x.Tag != tag.ReferencedSOPInstanceUID {
					kept = append(kept, x)
				}
			}
			srcSeq.Value = mustValue(t, [][]*dicom.Element{kept})
		},
	}
	for name, breakIt := range breakages {
		ds, _, err := segElements(src, segs, SEGOptions{})
		if err != nil {
			t.Fatal(err)
		}
		breakIt(ds)
		bp := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".dcm")
		var buf bytes.Buffer
		if err := dicom.Write(&buf, dicom.Dataset{Elements: ds}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bp, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if errs := validate(t, bp); len(errs) == 0 {
			t.Errorf("%s: dciodvfy found no error", name)
		}
	}
}

func findEl(es []*dicom.Element, tg tag.Tag) *dicom.Element {
	for _, e := range es {
		if e.Tag == tg {
			return e
		}
	}
	return nil
}

func itemsOf(v []*dicom.SequenceItemValue) [][]*dicom.Element {
	var out [][]*dicom.Element
	for _, it := range v {
		out = append(out, it.GetValue().([]*dicom.Element))
	}
	return out
}

func mustValue(t *testing.T, v any) dicom.Value {
	x, err := dicom.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestSCValidates writes a small RGB Secondary Capture and checks it with
// dciodvfy and dcentvfy, and its pixels as read back.
func TestSCValidates(t *testing.T) {
	_, src := fixtureSeries(t)
	img := image.NewRGBA(image.Rect(0, 0, 7, 5)) // odd size: 105 bytes, padded
	img.Set(1, 2, color.RGBA{200, 10, 20, 255})
	p := filepath.Join(t.TempDir(), "sc.dcm")
	if _, err := WriteSC(p, src, img, SCOptions{SeriesDescription: "test", Comments: "CT-1"}); err != nil {
		t.Fatal(err)
	}
	if errs := validate(t, p); len(errs) > 0 {
		t.Fatalf("dciodvfy:\n%s", strings.Join(errs, "\n"))
	}
	args := append([]string{p}, src.Series.Files...)
	out, err := exec.Command(testutil.Tool(t, "dcentvfy", "dicom3tools"), args...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Error") {
		t.Fatalf("dcentvfy: %v\n%s", err, out)
	}
	ds, err := dicom.ParseFile(p, nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		t.Fatal(err)
	}
	pix := dicom.MustGetPixelDataInfo(find(t, ds.Elements, tag.PixelData).Value).UnprocessedValueData
	if len(pix) != 106 || pix[(2*7+1)*3] != 200 || pix[(2*7+1)*3+2] != 20 {
		t.Fatalf("pixel data %d bytes, pixel (1,2) % x", len(pix), pix[(2*7+1)*3:(2*7+1)*3+3])
	}
}

// TestSEGAllEmpty checks that masks without a voxel still give a valid
// Segmentation (one empty frame: a SEG needs at least one).
func TestSEGAllEmpty(t *testing.T) {
	ct, src := fixtureSeries(t)
	inf, _ := volume.NewLabel(ct.Dims, ct.Affine)
	p := filepath.Join(t.TempDir(), "empty.dcm")
	w, err := WriteSEG(p, src, StandardSegments(inf, nil, "test"), SEGOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Frames != 1 {
		t.Fatalf("%d frames, want 1", w.Frames)
	}
	if errs := validate(t, p); len(errs) > 0 {
		t.Fatalf("dciodvfy:\n%s", strings.Join(errs, "\n"))
	}
}
