package dicomseries

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/volume"
)

// fixtures is the shared fixture folder (beside the repository).
var fixtures = testutil.SharedPath("fixtures", "io")

// expected is one entry of expected.json (see shared/tools/io_expect.py):
// figures after nibabel's as_closest_canonical.
type expected struct {
	Dims      [3]int        `json:"dims"`
	Spacing   [3]float64    `json:"spacing"`
	AffineRAS [4][4]float64 `json:"affine_ras"`
	Min       float64       `json:"min"`
	Max       float64       `json:"max"`
	Mean      float64       `json:"mean"`
	Sum       float64       `json:"sum"`
	Nonfinite int           `json:"nonfinite"`
	SHA256    string        `json:"sha256_f32_xfastest"`
}

func loadExpected(t *testing.T, key string) expected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "expected.json"))
	if err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	var all map[string]expected
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	e, ok := all[key]
	if !ok {
		t.Fatalf("expected.json has no entry %q", key)
	}
	return e
}

func TestFixtureIBSIChestCT(t *testing.T) { checkFixture(t, "ibsi_chest_ct/dicom") }

func TestFixtureRICORDJPEGLossless(t *testing.T) { checkFixture(t, "ricord_jpeg_lossless_3slices") }

func checkFixture(t *testing.T, key string) {
	want := loadExpected(t, key)
	v, info, err := Read(filepath.Join(fixtures, key), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d slices, %v, axes %s", key, info.Slices, info.TransferSyntaxes, v.Affine.AxCodes())

	// Geometry, whatever the reader's axis order: the voxel-centre box has
	// the same eight corners in world space as the reference's. The
	// reference's entries are rounded to 5 decimals, an error that grows
	// with the voxel index.
	tol := 1e-4 + 0.5e-5*float64(want.Dims[0]+want.Dims[1]+want.Dims[2])
	if got, w := corners(v.Dims, v.Affine), corners(volume.Dims(want.Dims), want.AffineRAS); !sameCorners(got, w, tol) {
		t.Fatalf("box corners %v, reference %v", got, w)
	}
	c := v.Canonical()
	if c.Dims != volume.Dims(want.Dims) {
		t.Fatalf("canonical dims %v, want %v", c.Dims, want.Dims)
	}
	if !c.Affine.Equal(want.AffineRAS, 1e-4) {
		t.Fatalf("canonical affine %v, want %v", c.Affine, want.AffineRAS)
	}
	sp := c.Spacing()
	for a := range sp {
		if math.Abs(sp[a]-want.Spacing[a]) > 1e-5 {
			t.Fatalf("spacing %v, want %v", sp, want.Spacing)
		}
	}

	mn, mx, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, x := range v.Data {
		f := float64(x)
		mn, mx, sum = math.Min(mn, f), math.Max(mx, f), sum+f
	}
	mean := sum / float64(len(v.Data))
	if mn != want.Min || mx != want.Max || sum != want.Sum || math.Abs(mean-want.Mean) > 1e-9*math.Abs(want.Mean) {
		t.Fatalf("min %g max %g sum %g mean %g, want %g %g %g %g", mn, mx, sum, mean, want.Min, want.Max, want.Sum, want.Mean)
	}
	h := sha256.New()
	buf := make([]byte, 4*len(c.Data))
	for i, x := range c.Data {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
	}
	h.Write(buf)
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		t.Fatalf("sha256 of canonical voxels %s, want %s", got, want.SHA256)
	}
}

// corners returns the world positions of the eight corner voxel centres.
func corners(d volume.Dims, a volume.Affine) [][3]float64 {
	var out [][3]float64
	for _, i := range []int{0, d[0] - 1} {
		for _, j := range []int{0, d[1] - 1} {
			for _, k := range []int{0, d[2] - 1} {
				out = append(out, a.Apply([3]float64{float64(i), float64(j), float64(k)}))
			}
		}
	}
	sort.Slice(out, func(x, y int) bool {
		for c := 0; c < 3; c++ {
			if math.Abs(out[x][c]-out[y][c]) > 1e-2 {
				return out[x][c] < out[y][c]
			}
		}
		return false
	})
	return out
}

func sameCorners(a, b [][3]float64, tol float64) bool {
	for i := range a {
		if !near(a[i], b[i], tol) {
			return false
		}
	}
	return true
}
