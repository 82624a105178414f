package dicomout

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
)

// fixtureSeries reads the IBSI chest CT series (204 columns x 201 rows: a
// frame is 41004 bits, so frames after the first start mid-byte).
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

// testMasks makes an "infiltrate" (a dense-ish block in some slices) and a
// "lung" label (air inside the body, 1 on the patient's right, 2 on the
// left, told apart by world x).
func testMasks(t testing.TB, ct *volume.Volume) (inf, lung *volume.Label) {
	inf, _ = volume.NewLabel(ct.Dims, ct.Affine)
	lung, _ = volume.NewLabel(ct.Dims, ct.Affine)
	d := ct.Dims
	a := ct.Affine
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				n := i + d[0]*(j+d[1]*k)
				if ct.Data[n] < -500 && ct.Data[n] > -1000 {
					x := a[0][0]*float64(i) + a[0][1]*float64(j) + a[0][2]*float64(k) + a[0][3]
					if x > 0 { // RAS+: x > 0 is the patient's right... of the origin
						lung.Data[n] = 1
					} else {
						lung.Data[n] = 2
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

func writeTestSEG(t testing.TB, dir string) (string, *Written) {
	t.Helper()
	ct, src := fixtureSeries(t)
	inf, lung := testMasks(t, ct)
	p := filepath.Join(dir, "seg.dcm")
	w, err := WriteSEG(p, src, StandardSegments(inf, lung, "test"), SEGOptions{Equipment: Equipment{SoftwareVersion: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return p, w
}

func TestWriteSEGManual(t *testing.T) {
	dir := os.Getenv("SEGOUT")
	if dir == "" {
		dir = t.TempDir()
	}
	p, w := writeTestSEG(t, dir)
	t.Logf("%s: %+v", p, w)
}
