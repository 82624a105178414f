package dataset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/volume"
)

func cases(m *Manifest) string {
	var s []string
	for _, e := range m.Entries {
		s = append(s, e.Case)
	}
	return strings.Join(s, " ")
}

func TestDiscoverCoronacases(t *testing.T) {
	dir := t.TempDir()
	touch(t, dir,
		"COVID-19-CT-Seg_20cases/coronacases_org_001.nii.gz",
		"COVID-19-CT-Seg_20cases/coronacases_org_002.nii.gz",
		"COVID-19-CT-Seg_20cases/radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii.gz",
		"Infection_Mask/coronacases_001.nii.gz",
		"Infection_Mask/coronacases_002.nii.gz",
		"Infection_Mask/radiopaedia_4_85506_1.nii.gz",
		"Lung_Mask/coronacases_001.nii.gz",
		"Lung_and_Infection_Mask/coronacases_002.nii.gz",
	)
	m, err := DiscoverCoronacases(dir, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cases(m); got != "coronacases_001 coronacases_002" {
		t.Errorf("cases %q", got)
	}
	e := m.Entries[1]
	if e.Mask != filepath.Join(dir, "Infection_Mask/coronacases_002.nii.gz") || e.Dataset != Coronacases {
		t.Errorf("entry %+v", e)
	}
	m, err = DiscoverCoronacases(dir, DiscoverOptions{Radiopaedia: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := cases(m); got != "coronacases_001 coronacases_002 radiopaedia_4_85506_1" {
		t.Errorf("with radiopaedia: cases %q", got)
	}
	os.Remove(filepath.Join(dir, "Infection_Mask/coronacases_002.nii.gz"))
	if _, err := DiscoverCoronacases(dir, DiscoverOptions{}); err == nil || !strings.Contains(err.Error(), "coronacases_org_002") {
		t.Errorf("missing mask: %v", err)
	}
	if _, err := DiscoverCoronacases(t.TempDir(), DiscoverOptions{}); err == nil {
		t.Error("empty folder discovered")
	}
	if _, err := DiscoverCoronacases(filepath.Join(dir, "nope"), DiscoverOptions{}); err == nil {
		t.Error("missing folder discovered")
	}
}

func TestDiscoverMosMed(t *testing.T) {
	dir := t.TempDir()
	touch(t, dir,
		"COVID19_1110/studies/CT-0/study_0001.nii.gz",
		"COVID19_1110/studies/CT-1/study_0255.nii.gz",
		"COVID19_1110/studies/CT-1/study_0256.nii.gz",
		"COVID19_1110/studies/CT-4/study_1100.nii.gz",
		"COVID19_1110/masks/study_0255_mask.nii.gz",
		"COVID19_1110/masks/study_1100_mask.nii.gz",
		"COVID19_1110/other/study_0002.nii.gz", // not in a CT-k folder
	)
	m, err := DiscoverMosMed(dir, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cases(m); got != "study_0255 study_1100" {
		t.Errorf("cases %q", got)
	}
	if m.Entries[1].Label != "CT-4" || m.Entries[0].Mask != filepath.Join(dir, "COVID19_1110/masks/study_0255_mask.nii.gz") {
		t.Errorf("entries %+v", m.Entries)
	}
	m, err = DiscoverMosMed(dir, DiscoverOptions{Unlabelled: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := cases(m); got != "study_0001 study_0255 study_0256 study_1100" {
		t.Errorf("with unlabelled: cases %q", got)
	}
	if m.Entries[0].Split != Unlabelled || m.Entries[0].Mask != "" {
		t.Errorf("unlabelled entry %+v", m.Entries[0])
	}
	// Splits keep unlabelled studies out of training.
	if err := AssignSplits(m.Entries, DefaultSplit); err != nil {
		t.Fatal(err)
	}
	if m.Entries[2].Split != Unlabelled {
		t.Errorf("unlabelled study got split %s", m.Entries[2].Split)
	}
	touch(t, dir, "COVID19_1110/masks/study_0999_mask.nii.gz")
	if _, err := DiscoverMosMed(dir, DiscoverOptions{}); err == nil || !strings.Contains(err.Error(), "study_0999_mask") {
		t.Errorf("orphan mask: %v", err)
	}
}

func TestDiscoverPairs(t *testing.T) {
	dir := t.TempDir()
	touch(t, dir, "images/b.nii.gz", "masks/b.nii.gz", "images/a.nii", "masks/a.nii", "images/.hidden.nii")
	m, err := DiscoverPairs(dir, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if got := cases(m); got != "a b" || m.Entries[0].Dataset != "mine" {
		t.Errorf("cases %q, %+v", got, m.Entries)
	}
	// A manifest beside them keeps its labels and groups.
	m.Entries[1].Label, m.Entries[1].Group = "Typical Appearance", "patient9"
	m.Entries[0].Split, m.Entries[1].Split = Train, Test
	if err := WriteManifest(filepath.Join(dir, "manifest.csv"), m); err != nil {
		t.Fatal(err)
	}
	again, err := DiscoverPairs(dir, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if e := again.Entries[1]; e.Label != "Typical Appearance" || e.Group != "patient9" {
		t.Errorf("labels lost: %+v", e)
	}
	touch(t, dir, "images/c.nii.gz")
	if _, err := DiscoverPairs(dir, "mine"); err == nil || !strings.Contains(err.Error(), "c.nii.gz") {
		t.Errorf("image without mask: %v", err)
	}
	touch(t, dir, "masks/c.nii.gz", "masks/c.nii")
	if _, err := DiscoverPairs(dir, "mine"); err == nil {
		t.Error("two masks of one case accepted")
	}
}

func TestMerge(t *testing.T) {
	a := &Manifest{Entries: []Entry{{Image: "x", Case: "x"}}}
	b := &Manifest{Entries: []Entry{{Image: "y", Case: "x"}}}
	if _, err := Merge(a, b); err == nil {
		t.Error("clashing case names merged")
	}
	c := &Manifest{Entries: []Entry{{Image: "z", Case: "z"}}}
	m, err := Merge(a, c)
	if err != nil || len(m.Entries) != 2 {
		t.Errorf("Merge: %v, %+v", err, m)
	}
}

// TestDiscoverStandIns discovers the phantom stand-ins of the public
// layouts and writes one manifest of all three that reads back.
func TestDiscoverStandIns(t *testing.T) {
	dir := t.TempDir()
	cfg := phantom.Small(volume.Dims{16, 16, 5})
	if _, err := phantom.WriteCoronacases(filepath.Join(dir, "cc"), 3, cfg, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := phantom.WriteMosMed(filepath.Join(dir, "mm"), 3, 2, cfg, 1); err != nil {
		t.Fatal(err)
	}
	si, err := phantom.WriteRICORD(filepath.Join(dir, "ri"), 2, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ConvertRICORD(RICORDOptions{DICOM: si.DICOM, Annotations: si.Annotations, Out: filepath.Join(dir, "ricord")})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := DiscoverCoronacases(filepath.Join(dir, "cc"), DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mm, err := DiscoverMosMed(filepath.Join(dir, "mm"), DiscoverOptions{Unlabelled: true})
	if err != nil {
		t.Fatal(err)
	}
	ri, err := DiscoverPairs(filepath.Join(dir, "ricord"), RICORD)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Merge(cc, mm, ri)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Entries) != 3+5+2 {
		t.Fatalf("%d entries: %s", len(all.Entries), cases(all))
	}
	if err := AssignSplits(all.Entries, DefaultSplit); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "all.csv")
	if err := WriteManifest(p, all); err != nil {
		t.Fatal(err)
	}
	back, err := ReadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, e := range back.Entries {
		labels[e.Case] = e.Label
	}
	for _, s := range res.Series {
		if labels[s.Case] != s.StudyLabel || s.StudyLabel == "" {
			t.Errorf("case %s: label %q, want %q", s.Case, labels[s.Case], s.StudyLabel)
		}
	}
}
