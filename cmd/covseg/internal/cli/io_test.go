package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

var ioFixtures = testutil.SharedPath("fixtures", "io")

// run executes covseg with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(args, &out, &errb)
	return out.String(), errb.String(), code
}

func fixture(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(ioFixtures, rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	return p
}

// TestConvertKeepsVoxelsAndAffine converts every fixture CT (NIfTI and DICOM,
// JPEG Lossless included) and reads the result back: same dims, same voxel
// values bit for bit, same affine.
func TestConvertKeepsVoxelsAndAffine(t *testing.T) {
	for _, rel := range []string{
		"ibsi_chest_ct/image.nii.gz",
		"ibsi_chest_ct/dicom",
		"ricord_jpeg_lossless_3slices",
		"totalseg_chest_crop.nii.gz",
		"mosmed_masks/study_0255_mask.nii.gz",
	} {
		t.Run(rel, func(t *testing.T) {
			in := fixture(t, rel)
			want, _, err := volio.Read(in, volio.Options{})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out.nii.gz")
			if _, stderr, code := run(t, "convert", in, out); code != 0 {
				t.Fatalf("convert failed: %s", stderr)
			}
			got, h, err := nifti.ReadVolume(out)
			if err != nil {
				t.Fatal(err)
			}
			if got.Dims != want.Dims {
				t.Fatalf("dims %v, want %v", got.Dims, want.Dims)
			}
			for i := range want.Data {
				if got.Data[i] != want.Data[i] {
					t.Fatalf("voxel %d: %v, want %v", i, got.Data[i], want.Data[i])
				}
			}
			// NIfTI-1 stores the sform in float32: the format's limit.
			if !got.Affine.Equal(want.Affine, 1e-4) {
				t.Fatalf("affine\n%v\nwant\n%v", got.Affine, want.Affine)
			}
			if volio.IsDICOMDir(in) && h.Datatype != nifti.Int16 {
				t.Errorf("DICOM HU stored as %s, want int16", h.Datatype)
			}
		})
	}
}

func TestInfoJSON(t *testing.T) {
	out, stderr, code := run(t, "info", "--json", fixture(t, "ibsi_chest_ct/dicom"))
	if code != 0 {
		t.Fatal(stderr)
	}
	var r infoReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if r.Format != volio.DICOM || *r.Dims != (volume.Dims{204, 201, 60}) || r.AxCodes != "LPS" {
		t.Errorf("got format %s dims %v axcodes %s", r.Format, r.Dims, r.AxCodes)
	}
	if r.Stats == nil || *r.Stats.Min != -1000 || *r.Stats.Max != 3065 {
		t.Errorf("stats %+v", r.Stats)
	}
	if r.Series == nil || r.Series.Slices != 60 {
		t.Errorf("series %+v", r.Series)
	}
}

func TestInfoDescribes4D(t *testing.T) {
	p := filepath.Join(t.TempDir(), "4d.nii")
	v, err := volume.New(volume.Dims{4, 3, 2}, volume.Diag([3]float64{2, 2, 3}, [3]float64{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := nifti.WriteVolume(p, v, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Make it 4D with 5 volumes by rewriting dim[0] and dim[4] and
	// appending voxels (NIfTI-1 little endian: dim at byte 40).
	b, _ := os.ReadFile(p)
	b[40], b[48] = 4, 5
	b = append(b, make([]byte, 4*24*4)...)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "info", p)
	if code != 0 {
		t.Fatal(stderr)
	}
	if !strings.Contains(out, "[4 3 2 5]") || !strings.Contains(out, "4-dimensional") {
		t.Errorf("info of a 4D file:\n%s", out)
	}
	// Converting it needs a 3D volume: a clear refusal naming the file.
	_, stderr, code = run(t, "convert", p, filepath.Join(t.TempDir(), "x.nii"))
	if code == 0 || !strings.Contains(stderr, p) {
		t.Errorf("convert of 4D: code %d, %s", code, stderr)
	}
}

func TestBadPathsGetClearErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.nii.gz")
	os.WriteFile(junk, []byte("not a nifti file at all"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	single := filepath.Join(fixture(t, "ricord_jpeg_lossless_3slices"), "1-120.dcm")
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.nii"), "no such file"},
		{junk, junk},
		{empty, empty},
		{single, "single DICOM file"},
	} {
		_, stderr, code := run(t, "info", c.path)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("info %s: code %d, stderr %q, want it to mention %q", c.path, code, stderr, c.want)
		}
	}
}
