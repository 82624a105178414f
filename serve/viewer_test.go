package serve

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// TestDICOMZipLabelAndPages uploads the IBSI chest CT's DICOM series as a
// zip, saves a label for it through PUT /datastore/label, and checks the
// case: stored on the series' own grid, its report computed, and the pages
// showing the report's figures (and, in a build without NiiVue, saying how
// to get the viewer).
func TestDICOMZipLabelAndPages(t *testing.T) {
	series := testutil.IO(t, "ibsi_chest_ct/dicom")
	ref, _, err := volio.Read(series, volio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	entries, err := os.ReadDir(series)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		w, _ := zw.Create("../series/" + e.Name()) // hostile names are not used
		w.Write(mustRead(t, filepath.Join(series, e.Name())))
	}
	zw.Close()
	_, ts := newServer(t, Config{})
	ctype, body := slicerMultipart(nil, "file", `D:\exports\IBSI chest.zip`, zb.Bytes())
	if st, _, b := do(t, "PUT", ts.URL+"/datastore/", ctype, body); st != 200 || !strings.Contains(string(b), `"IBSI_chest"`) {
		t.Fatalf("zip upload: %d %s", st, b)
	}
	var c caseView
	getJSON(t, ts.URL+"/api/cases/IBSI_chest", &c)
	if c.Format != "dicom" || c.Dims != ref.Dims {
		t.Fatalf("case %+v, want dicom %v", c.Case, ref.Dims)
	}
	_, _, img := do(t, "GET", ts.URL+"/datastore/image?image=IBSI_chest", "", nil)
	if got := readVolume(t, img); !got.Affine.Equal(ref.Affine, 1e-4) {
		t.Errorf("stored affine %v, series %v", got.Affine, ref.Affine)
	}
	// A label on another grid is refused; one on the CT's grid is analysed.
	wrong, _ := volume.NewLabel(volume.Dims{4, 4, 4}, ref.Affine)
	ctype, body = slicerMultipart(map[string]string{"params": "{}"}, "label", "wrong.nii.gz", labelBytes(t, wrong))
	if st, _, b := do(t, "PUT", ts.URL+"/datastore/label?image=IBSI_chest", ctype, body); st != 400 || !strings.Contains(string(b), "dims") {
		t.Errorf("label on another grid: %d %s", st, b)
	}
	label, _ := volume.NewLabel(ref.Dims, ref.Affine)
	for i, x := range ref.Data {
		if x > -500 && x < 100 && i%3 == 0 { // something inside and outside the lungs
			label.Data[i] = 1
		}
	}
	ctype, body = slicerMultipart(map[string]string{"params": "{}"}, "label", "/tmp/label.nii.gz", labelBytes(t, label))
	if st, _, b := do(t, "PUT", ts.URL+"/datastore/label?image=IBSI_chest&tag=final", ctype, body); st != 200 || !strings.Contains(string(b), `"label": "IBSI_chest"`) {
		t.Fatalf("save label: %d %s", st, b)
	}
	waitState(t, ts.URL, "IBSI_chest", StateDone)
	getJSON(t, ts.URL+"/api/cases/IBSI_chest", &c)
	r := c.Report
	if r == nil || c.MaskFrom != "label" || r.LungRightML < 500 || r.InfiltrateML <= 0 || c.Focus == nil {
		t.Fatalf("case after the label: %+v, report %+v", c.Case, r)
	}
	for _, f := range []string{FileImage, FileMask, FileLungs, FileReport, FileMontage, FileSEG, FileSC} {
		if st, _, _ := do(t, "GET", ts.URL+"/api/cases/IBSI_chest/"+f, "", nil); st != 200 {
			t.Errorf("GET %s: %d", f, st)
		}
	}
	// A DICOM case's results come back as DICOM too: a Segmentation and a
	// Secondary Capture (checked in depth by volume/dicomout's tests).
	for f, sop := range map[string]string{FileSEG: "1.2.840.10008.5.1.4.1.1.66.4", FileSC: "1.2.840.10008.5.1.4.1.1.7"} {
		_, _, b := do(t, "GET", ts.URL+"/api/cases/IBSI_chest/"+f, "", nil)
		if len(b) < 132 || string(b[128:132]) != "DICM" || !bytes.Contains(b, []byte(sop)) {
			t.Errorf("%s: %d bytes (%.60q), not a DICOM file of SOP class %s", f, len(b), b, sop)
		}
	}
	if st, _, _ := do(t, "GET", ts.URL+"/api/cases/IBSI_chest/case.json", "", nil); st != 404 {
		t.Errorf("GET case.json: %d, want 404 (not a served file)", st)
	}
	figures := []string{fmtFloat(r.LungRightML, 1), fmtFloat(r.InfiltrateML, 1), r.Category}
	for _, page := range []string{"/", "/case/IBSI_chest"} {
		_, ct, b := do(t, "GET", ts.URL+page, "", nil)
		html := string(b)
		if !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: %s", page, ct)
		}
		for _, f := range figures {
			if !strings.Contains(html, f) {
				t.Errorf("%s does not show %q", page, f)
			}
		}
		if says := strings.Contains(html, "run scripts/setup") || strings.Contains(html, "run <code>scripts/setup</code>"); says == HasViewer() {
			t.Errorf("%s: viewer embedded %v, page says how to get it %v", page, HasViewer(), says)
		}
	}
	if !HasViewer() {
		if st, _, b := do(t, "GET", ts.URL+"/vendor/niivue.umd.js", "", nil); st != 404 || !strings.Contains(string(b), "scripts/setup") {
			t.Errorf("vendor without NiiVue: %d %s", st, b)
		}
	}
	if st, _, _ := do(t, "GET", ts.URL+"/case/..%2f..%2fetc", "", nil); st != 404 {
		t.Errorf("case page with a path: %d", st)
	}
}

func labelBytes(t *testing.T, l *volume.Label) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "l.nii.gz")
	if err := nifti.WriteLabel(p, l); err != nil {
		t.Fatal(err)
	}
	return mustRead(t, p)
}

func readVolume(t *testing.T, b []byte) *volume.Volume {
	t.Helper()
	p := filepath.Join(t.TempDir(), fmt.Sprintf("v%d.nii.gz", len(b)))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v, _, err := nifti.ReadVolume(p)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDataFolder segments CTs placed in the data folder by ID: from the
// case list's button (POST /api/cases/ID/segment) and through /infer.
func TestDataFolder(t *testing.T) {
	dir := t.TempDir()
	cts := map[string]*volume.Volume{"walkin": synthCT(volume.Dims{8, 6, 4}, 9), "other": synthCT(volume.Dims{6, 8, 4}, 10)}
	for id, name := range map[string]string{"walkin": "walkin.nii.gz", "other": "other.nii"} {
		if err := nifti.WriteVolume(filepath.Join(dir, name), cts[id], nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a CT"), 0o644)
	_, ts := newServer(t, Config{Dir: dir, DataDir: dir, Segmenter: thresholdSegmenter(t)})
	_, _, page := do(t, "GET", ts.URL+"/", "", nil)
	for _, id := range []string{"walkin", "other"} {
		if !strings.Contains(string(page), `data-id="`+id+`"`) {
			t.Errorf("the case list offers no button for %s", id)
		}
	}
	if strings.Contains(string(page), "notes") || strings.Contains(string(page), `data-id="cases"`) {
		t.Error("the case list offers files that are not CTs")
	}
	if st, _, b := do(t, "POST", ts.URL+"/api/cases/walkin/segment", "", nil); st != 202 {
		t.Fatalf("segment walkin: %d %s", st, b)
	}
	waitState(t, ts.URL, "walkin", StateDone)
	_, _, m := do(t, "GET", ts.URL+"/datastore/label?label=walkin", "", nil)
	if d := thresholdDiff(t, cts["walkin"], readMask(t, "walkin", m)); d != 0 {
		t.Errorf("walkin: %d voxels off", d)
	}
	st, ct, b := do(t, "POST", ts.URL+"/infer/"+DefaultModelName+"?image=other", "", nil)
	if st != 200 {
		t.Fatalf("infer other: %d %s", st, b)
	}
	if d := thresholdDiff(t, cts["other"], readMask(t, "other", parseInfer(t, ct, b).files["other_seg.nii.gz"])); d != 0 {
		t.Errorf("other: %d voxels off", d)
	}
	for _, bad := range []string{"cases", "tmp", "notes"} {
		if st, _, _ := do(t, "POST", ts.URL+"/api/cases/"+bad+"/segment", "", nil); st != 404 {
			t.Errorf("segment %s: %d, want 404", bad, st)
		}
	}
}
