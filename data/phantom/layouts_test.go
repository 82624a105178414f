package phantom

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/data/mdai"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
	"github.com/covseg/covseg/volume/nifti"
)

// TestWriteDICOMReadsBack writes phantoms in several orientations as DICOM
// and reads them with dicomseries: same world geometry, same HU (rounded,
// clipped at −1024), SOPInstanceUIDs by slice.
func TestWriteDICOMReadsBack(t *testing.T) {
	for _, codes := range []string{"LPS", "RAS", "LIP", "LPI"} {
		cfg := Small(volume.Dims{12, 10, 6})
		cfg.Orientation = codes
		ph, err := Generate(cfg, 2)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		sops, err := WriteDICOM(dir, ph.Image, SeriesMeta{PatientID: "P", StudyUID: UID("a"), SeriesUID: UID("b"), SeriesNumber: 1, ReverseFiles: codes == "LPS"})
		if err != nil {
			t.Fatal(err)
		}
		v, info, err := dicomseries.Read(dir, dicomseries.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if info.PatientID != "P" || info.StudyUID != UID("a") {
			t.Errorf("%s: info %+v", codes, info)
		}
		inv, _ := ph.Image.Affine.Inverse()
		d := v.Dims
		for k := 0; k < d[2]; k++ {
			for j := 0; j < d[1]; j++ {
				for i := 0; i < d[0]; i++ {
					p := inv.Apply(v.Affine.Apply([3]float64{float64(i), float64(j), float64(k)}))
					q := [3]int{int(math.Round(p[0])), int(math.Round(p[1])), int(math.Round(p[2]))}
					if math.Abs(p[0]-float64(q[0]))+math.Abs(p[1]-float64(q[1]))+math.Abs(p[2]-float64(q[2])) > 1e-4 {
						t.Fatalf("%s: voxel (%d,%d,%d) lands between the phantom's voxels: %v", codes, i, j, k, p)
					}
					want := math.Max(-1024, math.Round(float64(ph.Image.At(q[0], q[1], q[2]))))
					if got := float64(v.At(i, j, k)); got != want {
						t.Fatalf("%s: voxel (%d,%d,%d) = %g, phantom (%d,%d,%d) = %g", codes, i, j, k, got, q[0], q[1], q[2], want)
					}
					if i == 0 && j == 0 && info.SOPInstanceUIDs[k] != sops[q[2]] {
						t.Fatalf("%s: plane %d has SOP %s, phantom slice %d was written as %s", codes, k, info.SOPInstanceUIDs[k], q[2], sops[q[2]])
					}
				}
			}
		}
	}
}

func TestUID(t *testing.T) {
	u := UID("x", "y")
	if u != UID("x", "y") || u == UID("xy") || len(u) > 64 {
		t.Errorf("UID %q", u)
	}
	for i, ch := range u {
		if !(ch == '.' || ch >= '0' && ch <= '9') || ch == '.' && (i+1 >= len(u) || u[i+1] == '0') {
			t.Fatalf("UID %q is not a valid DICOM UID", u)
		}
	}
}

func TestWriteLayouts(t *testing.T) {
	dir := t.TempDir()
	cfg := Small(volume.Dims{16, 16, 6})
	cc, err := WriteCoronacases(filepath.Join(dir, "cc"), 2, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cc) != 2 || filepath.Base(cc[1].Image) != "coronacases_org_002.nii.gz" {
		t.Fatalf("coronacases %+v", cc)
	}
	img, _, err := nifti.ReadVolume(cc[0].Image)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := Generate(cfg, caseSeed(1, "coronacases", 0))
	if img.Dims != ref.Image.Dims || !img.Affine.Equal(ref.Image.Affine, 1e-4) || math.Abs(float64(img.Data[77]-ref.Image.Data[77])) > 0.5 {
		t.Errorf("coronacases image differs from its phantom")
	}
	mask, _, err := nifti.ReadLabel(cc[0].Mask)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mask.Data {
		if mask.Data[i] != ref.Lesions.Data[i] {
			t.Fatal("coronacases mask differs from the phantom's lesions")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cc", "Lung_Mask", "coronacases_001.nii.gz")); err != nil {
		t.Error(err)
	}
	mm, err := WriteMosMed(filepath.Join(dir, "mm"), 2, 1, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(mm) != 3 || mm[2].Mask != "" || filepath.Base(filepath.Dir(mm[2].Image)) != "CT-0" || filepath.Base(mm[0].Mask) != "study_0255_mask.nii.gz" {
		t.Errorf("mosmed %+v", mm)
	}
	si, err := WriteRICORD(filepath.Join(dir, "ri"), 2, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := mdai.ReadFile(si.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	if found, _ := exp.FindLabels(LabelOpacity); len(found) != 2 {
		t.Errorf("opacity labels %+v", found)
	}
	series, err := dicomseries.Scan(si.DICOM)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 3 {
		t.Errorf("%d series, want 3 (one extra in study 2)", len(series))
	}
}
