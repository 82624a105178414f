package dataset

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
	"github.com/covseg/covseg/volume/nifti"
)

// readPair reads a converted case and checks that the mask has the
// image's dims and affine.
func readPair(t *testing.T, out, name string) (*volume.Volume, *volume.Label) {
	t.Helper()
	img, _, err := nifti.ReadVolume(filepath.Join(out, "images", name+".nii.gz"))
	if err != nil {
		t.Fatal(err)
	}
	mask, _, err := nifti.ReadLabel(filepath.Join(out, "masks", name+".nii.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if mask.Dims != img.Dims || !mask.Affine.Equal(img.Affine, 1e-4) {
		t.Fatalf("%s: mask %v %v, image %v %v", name, mask.Dims, mask.Affine, img.Dims, img.Affine)
	}
	return img, mask
}

// sameInWorld compares a converted mask with the truth through world
// coordinates: every voxel of got must hold the truth's value at the same
// place, wherever the grids' axes point.
func sameInWorld(t *testing.T, name string, got, truth *volume.Label) {
	t.Helper()
	if got.Dims.Len() != truth.Dims.Len() {
		t.Fatalf("%s: %d voxels, truth %d", name, got.Dims.Len(), truth.Dims.Len())
	}
	inv, err := truth.Affine.Inverse()
	if err != nil {
		t.Fatal(err)
	}
	d := got.Dims
	ones := 0
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				p := inv.Apply(got.Affine.Apply([3]float64{float64(i), float64(j), float64(k)}))
				var q [3]int
				for a := range 3 {
					q[a] = int(math.Round(p[a]))
					if math.Abs(p[a]-float64(q[a])) > 1e-3 || q[a] < 0 || q[a] >= truth.Dims[a] {
						t.Fatalf("%s: voxel (%d,%d,%d) maps to %v in the truth's grid", name, i, j, k, p)
					}
				}
				want := truth.At(q[0], q[1], q[2])
				if g := got.At(i, j, k); g != want {
					t.Fatalf("%s: voxel (%d,%d,%d) = %d, truth (%d,%d,%d) = %d", name, i, j, k, g, q[0], q[1], q[2], want)
				}
				ones += int(want)
			}
		}
	}
	if ones == 0 {
		t.Fatalf("%s: the truth is empty; the test proves nothing", name)
	}
}

func TestConvertRICORDStandIn(t *testing.T) {
	dir := t.TempDir()
	cfg := phantom.Small(volume.Dims{40, 32, 10})
	si, err := phantom.WriteRICORD(dir, 3, cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := ConvertRICORD(RICORDOptions{DICOM: si.DICOM, Annotations: si.Annotations, Out: out, Split: SplitConfig{Val: 0.34, Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// The second study's extra series has no outlines: three pairs.
	if len(res.Series) != 3 || len(res.Manifest.Entries) != 3 || len(res.Failed) != 0 {
		t.Fatalf("converted %+v, failed %v", res.Series, res.Failed)
	}
	m, err := ReadManifest(res.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	for n, c := range si.Cases {
		var e *Entry
		for i := range m.Entries {
			if m.Entries[i].Case == c.Patient {
				e = &m.Entries[i]
			}
		}
		if e == nil {
			t.Fatalf("case %s not in the manifest: %+v", c.Patient, m.Entries)
		}
		if e.Label != c.StudyLabel || e.Group != c.Patient || e.Dataset != RICORD {
			t.Errorf("entry %+v, want label %q", *e, c.StudyLabel)
		}
		img, mask := readPair(t, out, c.Patient)
		if img.Affine.AxCodes() != "LPS" {
			t.Errorf("axis codes %s", img.Affine.AxCodes())
		}
		// Same grid as the phantom: the masks must match voxel for voxel
		// (study 0's files are numbered against the slice order).
		sameInWorld(t, fmt.Sprint("case ", n), mask, c.Lesions)
		for _, s := range res.Series {
			if s.Case == c.Patient && (s.Readers < 2 || s.Voxels != countOnes(c.Lesions) || s.SeriesUID != c.SeriesUID) {
				t.Errorf("series report %+v", s)
			}
		}
	}
	// With the TIB label the small squares come too.
	out2 := filepath.Join(dir, "out2")
	if _, err := ConvertRICORD(RICORDOptions{DICOM: si.DICOM, Annotations: si.Annotations, Out: out2, Labels: []string{LabelOpacity, LabelTIB}}); err != nil {
		t.Fatal(err)
	}
	for n, c := range si.Cases {
		_, mask := readPair(t, out2, c.Patient)
		want := c.Lesions.Clone()
		for i, x := range c.TIB.Data {
			want.Data[i] |= x
		}
		sameInWorld(t, fmt.Sprint("case ", n, " with TIB"), mask, want)
	}
}

func countOnes(l *volume.Label) int {
	n := 0
	for _, x := range l.Data {
		if x != 0 {
			n++
		}
	}
	return n
}

// TestConvertRICORDOrientations writes coronal series and axial series
// whose k axis points down (the reader stacks them the other way up): the
// masks must stay on their anatomy.
func TestConvertRICORDOrientations(t *testing.T) {
	for _, codes := range []string{"LIP", "LPI", "RAS"} {
		t.Run(codes, func(t *testing.T) {
			dir := t.TempDir()
			cfg := phantom.Small(volume.Dims{36, 12, 30})
			cfg.Orientation = codes
			cfg.Spacing = [3]float64{9, 25, 11}
			si, err := phantom.WriteRICORD(dir, 1, cfg, 5)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			if _, err := ConvertRICORD(RICORDOptions{DICOM: si.DICOM, Annotations: si.Annotations, Out: out}); err != nil {
				t.Fatal(err)
			}
			_, mask := readPair(t, out, si.Cases[0].Patient)
			sameInWorld(t, codes, mask, si.Cases[0].Lesions)
		})
	}
}

// series writes a 10-column, 7-row, 3-slice series and returns its folder
// and SOPInstanceUIDs by slice.
func series(t *testing.T, dir string) (string, []string) {
	t.Helper()
	v, _ := volume.New(volume.Dims{10, 7, 3}, volume.Diag([3]float64{0.7, 0.8, 2}, [3]float64{-3, 4, 5}))
	v.Affine = volume.LPSToRAS(v.Affine) // stored as DICOM stores axial slices
	sd := filepath.Join(dir, "dicom", "P1")
	sops, err := phantom.WriteDICOM(sd, v, phantom.SeriesMeta{PatientID: "P1", StudyUID: "1.2.3", SeriesUID: "1.2.3.4", SeriesNumber: 1, ReverseFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "dicom"), sops
}

type ann struct {
	sop, label, reader string
	data               any
	rows, cols         int
}

func writeExport(t *testing.T, path string, as []ann) {
	t.Helper()
	var list []map[string]any
	for i, a := range as {
		m := map[string]any{"id": fmt.Sprint("A", i), "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4",
			"SOPInstanceUID": a.sop, "labelId": a.label, "createdById": a.reader, "data": a.data}
		if a.rows > 0 {
			m["height"], m["width"] = a.rows, a.cols
		}
		list = append(list, m)
	}
	exp := map[string]any{
		"datasets": []any{map[string]any{"id": "D", "annotations": list}},
		"labelGroups": []any{map[string]any{"labels": []any{
			map[string]any{"id": "op", "name": "Infectious opacity", "scope": "INSTANCE", "annotationMode": "freeform"},
			map[string]any{"id": "opm", "name": "Infectious opacity", "scope": "INSTANCE", "annotationMode": "mask"},
			map[string]any{"id": "typ", "name": "Typical Appearance", "scope": "STUDY"},
			map[string]any{"id": "ind", "name": "Indeterminate Appearance", "scope": "STUDY"},
		}}},
	}
	b, _ := json.Marshal(exp)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// plane renders slice k of a mask as rows of '#' and '.'.
func plane(m *volume.Label, k int) string {
	var s strings.Builder
	for j := 0; j < m.Dims[1]; j++ {
		for i := 0; i < m.Dims[0]; i++ {
			if m.At(i, j, k) != 0 {
				s.WriteByte('#')
			} else {
				s.WriteByte('.')
			}
		}
		s.WriteByte('\n')
	}
	return s.String()
}

func TestConvertRICORDPixels(t *testing.T) {
	dir := t.TempDir()
	dicomDir, sops := series(t, dir)
	path := filepath.Join(dir, "mdai.json")
	writeExport(t, path, []ann{
		// Slice 1: an L (wide on top) from one reader, its missing corner
		// from another; union = a 5x3 block minus nothing.
		{sops[1], "op", "r1", map[string]any{"vertices": [][2]float64{{1, 1}, {6, 1}, {6, 2}, {2, 2}, {2, 4}, {1, 4}}}, 7, 10},
		{sops[1], "op", "r2", map[string]any{"vertices": [][2]float64{{7.5, 4.5}, {8.5, 4.5}, {8.5, 6.5}, {7.5, 6.5}}}, 7, 10},
		// Slice 2: a frame with a hole (mask tool).
		{sops[2], "opm", "r1", map[string]any{
			"foreground": [][][2]float64{{{0, 0}, {5, 0}, {5, 5}, {0, 5}}},
			"background": [][][2]float64{{{1.5, 1.5}, {3.5, 1.5}, {3.5, 2.5}, {1.5, 2.5}}}}, 7, 10},
		{sops[0], "op", "r2", nil, 0, 0}, // no data: skipped
		{"", "typ", "r1", nil, 0, 0},
		{"", "typ", "r2", nil, 0, 0},
		{"", "ind", "r3", nil, 0, 0},
	})
	out := filepath.Join(dir, "out")
	res, err := ConvertRICORD(RICORDOptions{DICOM: dicomDir, Annotations: path, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Manifest.Entries[0]; e.Case != "P1" || e.Label != "Typical Appearance" {
		t.Errorf("entry %+v", e)
	}
	_, mask := readPair(t, out, "P1")
	if got := plane(mask, 0); strings.Contains(got, "#") {
		t.Errorf("slice 0 has lesion:\n%s", got)
	}
	want1 := strings.Join([]string{
		"..........",
		".#####....",
		".#........",
		".#........",
		"..........",
		"........#.",
		"........#.",
	}, "\n") + "\n"
	if got := plane(mask, 1); got != want1 {
		t.Errorf("slice 1:\n%s\nwant\n%s", got, want1)
	}
	want2 := strings.Join([]string{
		"#####.....",
		"#####.....",
		"##..#.....",
		"#####.....",
		"#####.....",
		"..........",
		"..........",
	}, "\n") + "\n"
	if got := plane(mask, 2); got != want2 {
		t.Errorf("slice 2:\n%s\nwant\n%s", got, want2)
	}
}

func TestConvertRICORDErrors(t *testing.T) {
	dir := t.TempDir()
	dicomDir, sops := series(t, dir)
	sq := map[string]any{"vertices": [][2]float64{{1, 1}, {3, 1}, {3, 3}}}
	cases := []struct {
		name string
		as   []ann
		opts RICORDOptions
		want string
	}{
		{"size", []ann{{sops[0], "op", "r", sq, 10, 7}}, RICORDOptions{}, "drawn on a 10x7"},
		{"sop", []ann{{"9.9", "op", "r", sq, 7, 10}}, RICORDOptions{}, "instance 9.9, which is not in the series"},
		{"label", []ann{{sops[0], "op", "r", sq, 7, 10}}, RICORDOptions{Labels: []string{"Nodule"}}, `no label named "Nodule"`},
		{"nothing", []ann{{sops[0], "op", "r", nil, 7, 10}}, RICORDOptions{}, "no outlines"},
		{"data", []ann{{sops[0], "op", "r", map[string]any{"vertices": "x"}, 7, 10}}, RICORDOptions{}, "annotation A0"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name+".json")
		writeExport(t, path, c.as)
		o := c.opts
		o.DICOM, o.Annotations, o.Out = dicomDir, path, filepath.Join(dir, "out-"+c.name)
		_, err := ConvertRICORD(o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// A series that is not there fails; KeepGoing reports it and converts
	// the rest.
	path := filepath.Join(dir, "missing.json")
	writeExport(t, path, []ann{{sops[0], "op", "r", sq, 7, 10}})
	raw, _ := os.ReadFile(path)
	var exp map[string]any
	json.Unmarshal(raw, &exp)
	list := exp["datasets"].([]any)[0].(map[string]any)["annotations"].([]any)
	extra := map[string]any{"id": "B", "StudyInstanceUID": "7", "SeriesInstanceUID": "7.7", "SOPInstanceUID": "7.7.7", "labelId": "op", "data": sq}
	exp["datasets"].([]any)[0].(map[string]any)["annotations"] = append(list, extra)
	raw, _ = json.Marshal(exp)
	os.WriteFile(path, raw, 0o644)
	opts := RICORDOptions{DICOM: dicomDir, Annotations: path, Out: filepath.Join(dir, "out-missing")}
	if _, err := ConvertRICORD(opts); err == nil || !strings.Contains(err.Error(), "series 7.7 (study 7, 1 outlines) is not under") {
		t.Errorf("missing series: %v", err)
	}
	opts.KeepGoing = true
	res, err := ConvertRICORD(opts)
	if err != nil || len(res.Failed) != 1 || len(res.Series) != 1 {
		t.Errorf("keep going: %v, %+v", err, res)
	}
}

// TestConvertRICORDRealSlices converts three real RICORD-1a slices (JPEG
// Lossless) from the shared fixtures with an outline on the middle one.
func TestConvertRICORDRealSlices(t *testing.T) {
	src := testutil.IO(t, "ricord_jpeg_lossless_3slices")
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	v, info, err := dicomseries.Read(src, dicomseries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, cols := v.Dims[1], v.Dims[0]
	dir := t.TempDir()
	path := filepath.Join(dir, "mdai.json")
	// A wide, short rectangle: columns 100..299, rows 50..59.
	rect := map[string]any{"vertices": [][2]float64{{99.5, 49.5}, {299.5, 49.5}, {299.5, 59.5}, {99.5, 59.5}}}
	writeExport(t, path, []ann{{info.SOPInstanceUIDs[1], "op", "r1", rect, rows, cols}})
	// The fixture's own series UID.
	b, _ := os.ReadFile(path)
	s := strings.ReplaceAll(string(b), `"SeriesInstanceUID":"1.2.3.4"`, `"SeriesInstanceUID":"`+info.UID+`"`)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := ConvertRICORD(RICORDOptions{DICOM: src, Annotations: path, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	img, mask := readPair(t, out, res.Series[0].Case)
	if img.Dims != v.Dims {
		t.Fatalf("dims %v, want %v", img.Dims, v.Dims)
	}
	for k := 0; k < 3; k++ {
		n := 0
		for j := 0; j < rows; j++ {
			for i := 0; i < cols; i++ {
				in := mask.At(i, j, k) != 0
				want := k == 1 && i >= 100 && i < 300 && j >= 50 && j < 60
				if in != want {
					t.Fatalf("voxel (%d,%d,%d): mask %v, want %v", i, j, k, in, want)
				}
				if in {
					n++
				}
			}
		}
		if k == 1 && n != 2000 {
			t.Errorf("%d lesion voxels, want 2000", n)
		}
	}
	// The image is the series in HU, stored exactly.
	for i := range v.Data {
		if img.Data[i] != v.Data[i] {
			t.Fatalf("voxel %d: %g, the series has %g", i, img.Data[i], v.Data[i])
		}
	}
}
