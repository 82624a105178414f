package dicomseries

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/volume"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// gradient is a stored-value pattern that differs in every voxel of a
// small stack, so that any swapped or flipped axis changes some voxel.
func gradient(i, j, k int) uint32 { return uint32(int16(100*k+10*j+i-500)) & 0xFFFF }

// checkStack reads dir and compares the volume with the stack: every
// voxel's value, and the world position of every box corner through the
// affine against DICOM's own definition (IPP + i·Δc·r + j·Δr·c).
func checkStack(t *testing.T, dir string, st stack, specs []sliceSpec) *volume.Volume {
	t.Helper()
	v, info, err := Read(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := st.base
	if want := (volume.Dims{b.cols, b.rows, st.n}); v.Dims != want || info.Dims != want {
		t.Fatalf("dims %v (info %v), want %v", v.Dims, info.Dims, want)
	}
	if info.Slices != st.n || len(info.Files) != st.n {
		t.Fatalf("info: %d slices, %d files", info.Slices, len(info.Files))
	}
	for k := 0; k < st.n; k++ {
		for j := 0; j < b.rows; j++ {
			for i := 0; i < b.cols; i++ {
				want := float32(float64(int16(st.value(i, j, k)))*b.slope + b.intercept)
				if got := v.At(i, j, k); got != want {
					t.Fatalf("voxel (%d,%d,%d) = %g, want %g", i, j, k, got, want)
				}
			}
		}
	}
	for _, k := range []int{0, st.n - 1} {
		for _, ij := range [][2]int{{0, 0}, {b.cols - 1, 0}, {0, b.rows - 1}, {b.cols - 1, b.rows - 1}} {
			got := v.Affine.Apply([3]float64{float64(ij[0]), float64(ij[1]), float64(k)})
			want := lpsWorld(specs[k], float64(ij[0]), float64(ij[1]))
			if !near(got, want, 1e-6) {
				t.Fatalf("voxel (%d,%d,%d) at %v, DICOM puts it at %v", ij[0], ij[1], k, got, want)
			}
		}
	}
	sp := v.Spacing()
	if math.Abs(sp[0]-b.spacing[1]) > 1e-6 || math.Abs(sp[1]-b.spacing[0]) > 1e-6 || math.Abs(sp[2]-math.Abs(st.step)) > 1e-6 {
		t.Fatalf("spacing %v, want %v, %v, %v", sp, b.spacing[1], b.spacing[0], st.step)
	}
	return v
}

func TestOrientations(t *testing.T) {
	s30, c30 := math.Sin(math.Pi/6), math.Cos(math.Pi/6)
	cases := []struct {
		name  string
		iop   [6]float64
		step  float64
		codes string // RAS+ axis codes of (i, j, k)
	}{
		{"axial", [6]float64{1, 0, 0, 0, 1, 0}, 2.5, "LPS"},
		{"axial reversed", [6]float64{1, 0, 0, 0, 1, 0}, -2.5, "LPS"},
		{"coronal", [6]float64{1, 0, 0, 0, 0, -1}, 1.5, "LIP"},
		{"sagittal", [6]float64{0, 1, 0, 0, 0, -1}, 3, "PIR"},
		{"axial flipped rows", [6]float64{-1, 0, 0, 0, -1, 0}, 1, "RAS"},
		// Rotated 30° about the patient's z axis, then tilted: oblique.
		{"oblique", [6]float64{c30, s30, 0, -s30 * c30, c30 * c30, s30}, 2, ""},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := axialSpec("1.2.826.0.1.1", 6, 5)
			base.iop = c.iop
			st := stack{base: base, n: 7, origin: [3]float64{-100.25, 40.5, -300}, step: c.step, value: gradient}
			specs := st.specs()
			// A negative step writes the stack from its far end: the reader
			// must still order slices along +normal, so re-express the same
			// slices in position order.
			if c.step < 0 {
				for a, b := 0, len(specs)-1; a < b; a, b = a+1, b-1 {
					specs[a], specs[b] = specs[b], specs[a]
				}
				st.origin = specs[0].ipp
				st.step = -c.step
				v := st.value
				st.value = func(i, j, k int) uint32 { return v(i, j, st.n-1-k) }
			}
			dir := t.TempDir()
			writeFiles(t, dir, specs, int64(ci))
			v := checkStack(t, dir, st, specs)
			if c.codes != "" && v.Affine.AxCodes() != c.codes {
				t.Fatalf("axis codes %s, want %s", v.Affine.AxCodes(), c.codes)
			}
		})
	}
}

func TestTransferSyntaxes(t *testing.T) {
	for _, ts := range []string{tsImplicitLE, tsExplicitLE, tsExplicitBE, tsDeflatedLE} {
		for _, noMeta := range []bool{false, true} {
			if noMeta && ts == tsDeflatedLE {
				continue // deflate needs the meta information to be recognised
			}
			t.Run(ts+map[bool]string{true: " no meta"}[noMeta], func(t *testing.T) {
				base := axialSpec("1.2.826.0.1.2", 4, 3)
				base.ts, base.noMeta = ts, noMeta
				st := stack{base: base, n: 3, origin: [3]float64{1, 2, 3}, step: 1.25, value: gradient}
				specs := st.specs()
				dir := t.TempDir()
				writeFiles(t, dir, specs, 1)
				checkStack(t, dir, st, specs)
				f, err := ScanFolder(dir, 1)
				if err != nil {
					t.Fatal(err)
				}
				if got := f.Series[0].TransferSyntaxes; len(got) != 1 || got[0] != ts {
					t.Fatalf("transfer syntaxes %v, want %s", got, ts)
				}
			})
		}
	}
}

// readOne writes one stack with the given base and value function and
// returns the volume.
func readOne(t *testing.T, base sliceSpec, n int, value func(i, j, k int) uint32, edit func(int, *sliceSpec)) (*volume.Volume, error) {
	t.Helper()
	st := stack{base: base, n: n, origin: [3]float64{0, 0, 0}, step: 1, value: value, edit: edit}
	dir := t.TempDir()
	writeFiles(t, dir, st.specs(), 7)
	v, _, err := Read(dir, Options{})
	return v, err
}

func TestPixelFormats(t *testing.T) {
	cases := []struct {
		name                        string
		alloc, stored, high, signed int
		word                        uint32  // the word written
		slope, inter                float64 // rescale
		want                        float32
	}{
		{"int16", 16, 16, 15, 1, 0xFC18, 1, 0, -1000},
		{"uint16", 16, 16, 15, 0, 0xFC18, 1, 0, 64536},
		{"12-bit signed, sign extended", 16, 12, 11, 1, 0x0800, 1, 0, -2048},
		{"12-bit signed, garbage above", 16, 12, 11, 1, 0xA7FF, 1, 0, 2047},
		{"12-bit signed -1, garbage above", 16, 12, 11, 1, 0x5FFF, 1, 0, -1},
		{"12-bit unsigned, garbage above", 16, 12, 11, 0, 0xF123, 1, -1024, 0x123 - 1024},
		{"12 bits high at bit 15", 16, 12, 15, 1, 0x8001, 1, 0, -2048},
		{"8-bit unsigned", 8, 8, 7, 0, 200, 2, -100, 300},
		{"8-bit signed", 8, 8, 7, 1, 200, 1, 0, -56},
		{"32-bit signed", 32, 32, 31, 1, 0xFFFFFF00, 1, 0, -256},
		{"32-bit unsigned", 32, 32, 31, 0, 0x80000000, 1, 0, 2147483648},
		{"fractional slope", 16, 16, 15, 1, 3, 0.25, -0.5, 0.25},
	}
	for _, ts := range []string{tsExplicitLE, tsExplicitBE, tsImplicitLE} {
		for _, c := range cases {
			t.Run(ts+" "+c.name, func(t *testing.T) {
				base := axialSpec("1.2.826.0.1.3", 3, 3)
				base.ts = ts
				base.bitsAlloc, base.bitsStored, base.highBit, base.pixelRep = c.alloc, c.stored, c.high, c.signed
				base.slope, base.intercept = c.slope, c.inter
				v, err := readOne(t, base, 2, func(i, j, k int) uint32 { return c.word }, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range v.Data {
					if x != c.want {
						t.Fatalf("voxel %g, want %g", x, c.want)
					}
				}
			})
		}
	}
}

func TestPerSliceRescale(t *testing.T) {
	base := axialSpec("1.2.826.0.1.4", 2, 2)
	v, err := readOne(t, base, 4, func(i, j, k int) uint32 { return 10 }, func(k int, s *sliceSpec) {
		s.slope, s.intercept = float64(k+1), float64(-1000*k)
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 4; k++ {
		if got, want := v.At(1, 1, k), float32(10*(k+1)-1000*k); got != want {
			t.Fatalf("slice %d: %g, want %g", k, got, want)
		}
	}
}

func TestSingleSlice(t *testing.T) {
	base := axialSpec("1.2.826.0.1.5", 3, 4)
	base.thickness = 5
	v, err := readOne(t, base, 1, gradient, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sp := v.Spacing(); sp != [3]float64{0.7, 0.8, 5} {
		t.Fatalf("spacing %v", sp)
	}
	base.thickness = 0
	if _, err := readOne(t, base, 1, gradient, nil); err == nil || !strings.Contains(err.Error(), "SliceThickness") {
		t.Fatalf("single slice without thickness: %v", err)
	}
}

func TestMixedSeries(t *testing.T) {
	dir := t.TempDir()
	a := stack{base: axialSpec("1.2.826.0.1.6.1", 3, 3), n: 4, step: 1, value: gradient}
	b := stack{base: axialSpec("1.2.826.0.1.6.2", 2, 2), n: 2, step: 3, value: gradient}
	b.base.desc = "lung kernel"
	writeFiles(t, filepath.Join(dir, "a"), a.specs(), 1)
	writeFiles(t, filepath.Join(dir, "b"), b.specs(), 2)
	_, _, err := Read(dir, Options{})
	var me *MultipleSeriesError
	if !errors.As(err, &me) || len(me.Series) != 2 {
		t.Fatalf("want a MultipleSeriesError listing 2 series, got %v", err)
	}
	for _, want := range []string{"1.2.826.0.1.6.1", "1.2.826.0.1.6.2", `"lung kernel"`, "4 slices", "2 slices", "--series"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error lacks %q:\n%v", want, err)
		}
	}
	v, info, err := Read(dir, Options{SeriesUID: "1.2.826.0.1.6.2"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Dims != (volume.Dims{2, 2, 2}) || info.Description != "lung kernel" || v.Spacing()[2] != 3 {
		t.Fatalf("selected series: dims %v, %+v", v.Dims, info)
	}
	if _, _, err := Read(dir, Options{SeriesUID: "9.9"}); !errors.As(err, &me) || !strings.Contains(err.Error(), "no series 9.9") {
		t.Fatalf("unknown UID: %v", err)
	}
}

// wantErr reads a stack edited by edit and checks the error mentions every
// fragment in want.
func wantErr(t *testing.T, n int, edit func(k int, s *sliceSpec), want ...string) {
	t.Helper()
	_, err := readOne(t, axialSpec("1.2.826.0.1.7", 3, 3), n, gradient, edit)
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestGeometryErrors(t *testing.T) {
	t.Run("uneven", func(t *testing.T) {
		wantErr(t, 6, func(k int, s *sliceSpec) {
			if k >= 3 {
				s.ipp[2] += 1 // a missing slice between 2 and 3
			}
		}, "uneven slice spacing", "gap of 2.0000 mm", "slice 2", "slice 3")
	})
	t.Run("duplicate", func(t *testing.T) {
		wantErr(t, 4, func(k int, s *sliceSpec) {
			if k == 2 {
				s.ipp[2] = 1
			}
		}, "duplicate slice position")
	})
	t.Run("gantry tilt", func(t *testing.T) {
		wantErr(t, 5, func(k int, s *sliceSpec) {
			s.ipp[1] += 0.2 * float64(k) // slices slide along y as z rises
		}, "gantry tilt", "11.31°", "dcm2niix")
	})
	t.Run("rows differ", func(t *testing.T) {
		wantErr(t, 3, func(k int, s *sliceSpec) {
			if k == 1 {
				s.rows, s.stored = 2, s.stored[:6]
			}
		}, "differ in size")
	})
	t.Run("orientation differs", func(t *testing.T) {
		wantErr(t, 3, func(k int, s *sliceSpec) {
			if k == 1 {
				s.iop = [6]float64{0, 1, 0, 1, 0, 0}
			}
		}, "differ in orientation")
	})
	t.Run("spacing differs", func(t *testing.T) {
		wantErr(t, 3, func(k int, s *sliceSpec) {
			if k == 1 {
				s.spacing[0] = 0.9
			}
		}, "differ in PixelSpacing")
	})
	t.Run("not unit cosines", func(t *testing.T) {
		wantErr(t, 3, func(k int, s *sliceSpec) { s.iop = [6]float64{2, 0, 0, 0, 1, 0} }, "unit vectors")
	})
	t.Run("zero spacing", func(t *testing.T) {
		wantErr(t, 3, func(k int, s *sliceSpec) { s.spacing = [2]float64{0, 0.5} }, "PixelSpacing")
	})
	for _, c := range []struct {
		t    tag.Tag
		name string
	}{
		{tag.ImagePositionPatient, "ImagePositionPatient (0020,0032)"},
		{tag.ImageOrientationPatient, "ImageOrientationPatient (0020,0037)"},
		{tag.PixelSpacing, "PixelSpacing (0028,0030)"},
		{tag.Rows, "Rows (0028,0010)"},
	} {
		t.Run("missing "+c.name, func(t *testing.T) {
			wantErr(t, 3, func(k int, s *sliceSpec) {
				if k == 1 {
					s.omit = map[tag.Tag]bool{c.t: true}
				}
			}, "missing or unreadable "+c.name, "IMG")
		})
	}
}

func TestRefusedImages(t *testing.T) {
	t.Run("multi-frame", func(t *testing.T) {
		wantErr(t, 2, func(k int, s *sliceSpec) { s.frames = 3 }, "multi-frame", "NumberOfFrames 3")
	})
	t.Run("RGB", func(t *testing.T) {
		wantErr(t, 2, func(k int, s *sliceSpec) { s.samples = 3 }, "SamplesPerPixel is 3")
	})
	t.Run("bits", func(t *testing.T) {
		wantErr(t, 2, func(k int, s *sliceSpec) { s.bitsStored = 17 }, "BitsStored 17")
	})
	for _, ts := range []string{"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80"} {
		t.Run(ts, func(t *testing.T) {
			wantErr(t, 2, func(k int, s *sliceSpec) { s.ts, s.jpeg = ts, true }, "transfer syntax "+ts, "not supported", "gdcmconv --raw", "dcmdjpeg")
		})
	}
}

func TestFolderWithoutImages(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not dicom at all, but long enough to hold a preamble .......................................................................................................!"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	// A DICOM file without pixel data (like a DICOMDIR or an SR).
	sr := axialSpec("1.2.826.0.1.8", 2, 2)
	sr.stored = make([]uint32, 4)
	sr.omit = map[tag.Tag]bool{tag.PixelData: true, tag.Rows: true, tag.Columns: true}
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "DICOMDIR"), sr.encode(), 0o644)
	f, err := ScanFolder(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Series) != 0 || f.NotDICOM != 2 || len(f.NoImage) != 1 || len(f.Broken) != 0 {
		t.Fatalf("scan: %d series, %d not DICOM, %v no image, %v broken", len(f.Series), f.NotDICOM, f.NoImage, f.Broken)
	}
	_, _, err = Read(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "holds no DICOM images (2 files not DICOM, 1 DICOM without pixel data") {
		t.Fatalf("got %v", err)
	}
	if _, err := Scan(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("scanning a missing folder gave no error")
	}
}

func TestNonDICOMBesideSeries(t *testing.T) {
	dir := t.TempDir()
	st := stack{base: axialSpec("1.2.826.0.1.9", 2, 3), n: 3, step: 2, value: gradient}
	specs := st.specs()
	paths := writeFiles(t, dir, specs, 3)
	os.WriteFile(filepath.Join(dir, "README"), []byte("hello"), 0o644)
	checkStack(t, dir, st, specs)
	// Slices reached through links to files count; links to folders are
	// not followed (a link to the folder itself would loop).
	linked := t.TempDir()
	for k, p := range paths {
		abs, _ := filepath.Abs(p)
		if err := os.Symlink(abs, filepath.Join(linked, fmt.Sprintf("s%d", k))); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(linked, filepath.Join(linked, "loop"))
	checkStack(t, linked, st, specs)
	// A link given as the folder itself is followed.
	link := filepath.Join(t.TempDir(), "latest")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	checkStack(t, link, st, specs)
}

func TestTruncatedFiles(t *testing.T) {
	for _, c := range []struct {
		name string
		keep func(n int) int // bytes kept of an n-byte file
		want []string
	}{
		{"in pixel data", func(n int) int { return n - 5 }, []string{"truncated", "pixel data needs"}},
		{"in header", func(n int) int { return 300 }, []string{"could not be read", "truncated"}},
		{"after meta", func(n int) int { return 132 + 12 + 90 }, []string{"truncated"}},
		{"before pixel data", func(n int) int { return n - 18 - 8 - 4 }, []string{"no pixel data"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			st := stack{base: axialSpec("1.2.826.0.1.10", 3, 3), n: 4, step: 1, value: gradient}
			paths := writeFiles(t, dir, st.specs(), 4)
			b, _ := os.ReadFile(paths[2])
			os.WriteFile(paths[2], b[:c.keep(len(b))], 0o644)
			_, _, err := Read(dir, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(c.want, paths[2]) {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestScanInfo(t *testing.T) {
	dir := t.TempDir()
	st := stack{base: axialSpec("1.2.826.0.1.11", 4, 5), n: 3, step: 1, value: gradient}
	st.base.ts = tsExplicitBE
	paths := writeFiles(t, dir, st.specs(), 5)
	series, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 {
		t.Fatalf("%d series", len(series))
	}
	s := series[0]
	if s.UID != "1.2.826.0.1.11" || s.Modality != "CT" || s.Description != "synthetic 1.2.826.0.1.11" || s.Slices != 3 ||
		s.Dims != (volume.Dims{5, 4, 3}) || len(s.TransferSyntaxes) != 1 || s.TransferSyntaxes[0] != tsExplicitBE || len(s.Files) != 3 {
		t.Fatalf("%+v", s)
	}
	_, info, err := Read(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range paths {
		if info.Files[k] != paths[k] {
			t.Fatalf("Read's files are not in slice order: %v, want %v", info.Files, paths)
		}
	}
}
