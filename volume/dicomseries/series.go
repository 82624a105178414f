// Package dicomseries reads DICOM image series (a folder of single-frame
// slices, searched recursively) into volumes.
//
// Files are grouped by SeriesInstanceUID, slices are sorted by their
// position along the slice normal, the stack is checked (same size,
// orientation and pixel spacing; even spacing; no duplicate positions; no
// gantry tilt) and its affine is built from ImagePositionPatient,
// ImageOrientationPatient and PixelSpacing. DICOM's patient coordinates are
// LPS+; the volume's affine is RAS+ (converted with volume.LPSToRAS).
// Voxels are HU: stored values with PixelRepresentation, BitsStored and
// HighBit applied, then RescaleSlope and RescaleIntercept, per slice.
//
// Transfer syntaxes: implicit and explicit VR little endian, explicit VR big
// endian, deflated explicit VR little endian, and JPEG Lossless (processes
// 14 and 14 SV1). Other compressed syntaxes are refused with the command
// that converts them.
//
// Headers are parsed with github.com/suyashkumar/dicom, after the element
// structure of each file has been checked here (see layout.go).
package dicomseries

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/covseg/covseg/internal/membudget"
	par "github.com/covseg/covseg/internal/parallel"
	"github.com/covseg/covseg/volume"
)

// SeriesInfo describes one image series found in a folder.
type SeriesInfo struct {
	UID         string // SeriesInstanceUID
	Description string // SeriesDescription
	Modality    string // e.g. CT
	Number      string // SeriesNumber
	Slices      int    // image files in the series
	// TransferSyntaxes lists the distinct transfer syntax UIDs, sorted.
	TransferSyntaxes []string
	// Dims are columns, rows (of the series' first file) and slices.
	Dims volume.Dims
	// Files are the image files: sorted by path from Scan, in slice order
	// (voxel index k) from Read.
	Files []string
	// SOPInstanceUIDs holds each file's SOPInstanceUID, parallel to Files
	// (so from Read, SOPInstanceUIDs[k] is the instance of voxel plane k;
	// its pixel (column c, row r) is voxel (c, r, k)). Empty strings where
	// a file lacks one.
	SOPInstanceUIDs []string
	// StudyUID and PatientID are the first found among the files.
	StudyUID  string
	PatientID string

	// The fields below are filled by Read only, in slice order (parallel
	// to Files), for writers of derived objects (DICOM SEG) that must
	// reference each source frame by its instance and position.

	// SOPClassUIDs holds each file's SOPClassUID.
	SOPClassUIDs []string
	// Positions holds each file's ImagePositionPatient in DICOM's LPS+
	// patient coordinates (mm), as its header states it.
	Positions [][3]float64
	// Orientation is the series' ImageOrientationPatient (row cosine, then
	// column cosine; LPS+), PixelSpacing its (between rows, between
	// columns) in mm, and SliceStep the distance between slice centres
	// along the normal (mm), as the volume's affine uses them.
	Orientation  [6]float64
	PixelSpacing [2]float64
	SliceStep    float64
}

// Folder is what ScanFolder found.
type Folder struct {
	Dir    string
	Series []SeriesInfo // sorted by SeriesNumber, then UID
	// NotDICOM counts files that are not DICOM; they are ignored.
	NotDICOM int
	// NoImage lists DICOM files without pixel data (DICOMDIR, structured
	// reports, presentation states...); they are ignored.
	NoImage []string
	// Broken lists DICOM files that could not be read, each error naming
	// the file and the problem. A broken file whose series is known makes
	// that series unreadable; one whose series is unknown makes Read fail.
	Broken []error

	headers map[string][]*header // by series UID
	orphans []error              // broken files of unknown series
}

// Scan lists the image series in dir and its subfolders (headers only;
// dir may also be a single file).
// Use ScanFolder to also see what was skipped.
func Scan(dir string) ([]SeriesInfo, error) {
	f, err := ScanFolder(dir, 0)
	if err != nil {
		return nil, err
	}
	return f.Series, nil
}

// ScanFolder reads the header of every file under dir (recursively, with
// at most workers files at once; 0 means GOMAXPROCS) and groups the image
// files by series.
func ScanFolder(dir string, workers int) (*Folder, error) {
	var paths []string
	root := dir
	if st, err := os.Lstat(dir); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		// dir is itself a link (e.g. "latest" -> a study folder): walk what
		// it points to. A trailing separator makes WalkDir's first Lstat
		// resolve it, and the paths found still start with dir.
		root = dir + string(filepath.Separator)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		} else if d.Type()&fs.ModeSymlink != 0 {
			// Links to files count (archives often link slices); links to
			// folders are not followed, which also rules out cycles.
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				paths = append(paths, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dicomseries: %w", err)
	}
	sort.Strings(paths)
	headers := make([]*header, len(paths))
	errs := make([]error, len(paths))
	parallel(len(paths), workers, func(i int) {
		headers[i], errs[i] = readHeader(paths[i])
	})
	f := &Folder{Dir: dir, headers: map[string][]*header{}}
	for i, h := range headers {
		switch err := errs[i]; {
		case errors.Is(err, errNotDICOM):
			f.NotDICOM++
		case err != nil:
			e := fmt.Errorf("dicomseries: %s: %w", paths[i], err)
			f.Broken = append(f.Broken, e)
			f.orphans = append(f.orphans, e)
		case !h.hasPixels && h.rows == 0:
			f.NoImage = append(f.NoImage, h.path)
		default:
			if h.broken != nil {
				f.Broken = append(f.Broken, fmt.Errorf("dicomseries: %s: %w", h.path, h.broken))
			}
			f.headers[h.seriesUID] = append(f.headers[h.seriesUID], h)
		}
	}
	for uid, hs := range f.headers {
		f.Series = append(f.Series, infoOf(uid, hs))
	}
	sort.Slice(f.Series, func(a, b int) bool {
		sa, sb := f.Series[a], f.Series[b]
		na, ea := strconv.Atoi(sa.Number)
		nb, eb := strconv.Atoi(sb.Number)
		if ea == nil && eb == nil && na != nb {
			return na < nb
		}
		return sa.UID < sb.UID
	})
	return f, nil
}

// infoOf summarises the headers of one series (in path order).
func infoOf(uid string, hs []*header) SeriesInfo {
	s := SeriesInfo{UID: uid, Slices: len(hs)}
	seen := map[string]bool{}
	for _, h := range hs {
		if s.Description == "" {
			s.Description = h.desc
		}
		if s.Modality == "" {
			s.Modality = h.modality
		}
		if s.Number == "" {
			s.Number = h.seriesNum
		}
		if !seen[h.ts] {
			seen[h.ts] = true
			s.TransferSyntaxes = append(s.TransferSyntaxes, h.ts)
		}
		if s.StudyUID == "" {
			s.StudyUID = h.studyUID
		}
		if s.PatientID == "" {
			s.PatientID = h.patientID
		}
		s.Files = append(s.Files, h.path)
		s.SOPInstanceUIDs = append(s.SOPInstanceUIDs, h.sopUID)
	}
	sort.Strings(s.TransferSyntaxes)
	s.Dims = volume.Dims{hs[0].cols, hs[0].rows, len(hs)}
	return s
}

// Options control Read.
type Options struct {
	// SeriesUID selects the series to read; it may be empty when the
	// folder holds exactly one.
	SeriesUID string
	// Workers bounds how many files are read at once (0: GOMAXPROCS).
	Workers int
	// Check, when set, is called with the series' dims once the headers
	// are read and before the pixels are allocated; its error ends Read
	// (callers use it to refuse volumes over their memory budget).
	Check func(volume.Dims) error
}

// MultipleSeriesError is returned by Read when the folder holds several
// series and Options.SeriesUID chose none (or one that is not there).
type MultipleSeriesError struct {
	Dir    string
	Wanted string // the UID asked for ("" if none)
	Series []SeriesInfo
}

// Error lists every series with its UID, modality, description and size.
func (e *MultipleSeriesError) Error() string {
	var b strings.Builder
	if e.Wanted != "" {
		fmt.Fprintf(&b, "dicomseries: %s holds no series %s; it holds %d:", e.Dir, e.Wanted, len(e.Series))
	} else {
		fmt.Fprintf(&b, "dicomseries: %s holds %d series; choose one by its UID (--series UID):", e.Dir, len(e.Series))
	}
	for _, s := range e.Series {
		desc := s.Description
		if desc == "" {
			desc = "(no description)"
		}
		fmt.Fprintf(&b, "\n  %s  %s %q, %d slices", s.UID, s.Modality, desc, s.Slices)
	}
	return b.String()
}

// Read reads one series from dir (searched recursively) into a volume of
// HU values with its RAS+ affine: voxel (i, j, k) is column i, row j of
// the k-th slice along the slice normal. It returns the series' info with
// Files in slice order.
func Read(dir string, opts Options) (*volume.Volume, *SeriesInfo, error) {
	f, err := ScanFolder(dir, opts.Workers)
	if err != nil {
		return nil, nil, err
	}
	return f.Read(opts)
}

// Read reads one of the folder's series (see the package function Read).
func (f *Folder) Read(opts Options) (*volume.Volume, *SeriesInfo, error) {
	info, err := f.choose(opts.SeriesUID)
	if err != nil {
		return nil, nil, err
	}
	if len(f.orphans) > 0 {
		return nil, nil, fmt.Errorf("dicomseries: %s: %d DICOM file(s) could not be read and may belong to the series; fix or remove them (first: %w)", f.Dir, len(f.orphans), f.orphans[0])
	}
	hs := f.headers[info.UID]
	g := make([]sliceGeom, len(hs))
	formats := make([]pixelFormat, len(hs))
	for i, h := range hs {
		if g[i], formats[i], err = check(h); err != nil {
			return nil, nil, fmt.Errorf("dicomseries: %s: %w", h.path, err)
		}
	}
	order, aff, err := assemble(g)
	if err != nil {
		return nil, nil, fmt.Errorf("dicomseries: series %s: %w", info.UID, err)
	}
	dims := volume.Dims{hs[0].cols, hs[0].rows, len(hs)}
	if err := membudget.Check(fmt.Sprintf("dicomseries: series %s: %v voxels as float32", info.UID, dims), int64(dims[0])*int64(dims[1])*int64(dims[2])*4); err != nil {
		return nil, nil, err
	}
	if opts.Check != nil {
		if err := opts.Check(dims); err != nil {
			return nil, nil, err
		}
	}
	v, err := volume.New(dims, aff)
	if err != nil {
		return nil, nil, fmt.Errorf("dicomseries: series %s: %w", info.UID, err)
	}
	plane := hs[0].cols * hs[0].rows
	errs := make([]error, len(order))
	parallel(len(order), opts.Workers, func(k int) {
		h := hs[order[k]]
		errs[k] = readPixels(h, formats[order[k]], v.Data[k*plane:(k+1)*plane])
	})
	for k, err := range errs {
		if err != nil {
			return nil, nil, fmt.Errorf("dicomseries: %s: %w", hs[order[k]].path, err)
		}
	}
	out := *info
	out.Files = make([]string, len(order))
	out.SOPInstanceUIDs = make([]string, len(order))
	out.SOPClassUIDs = make([]string, len(order))
	out.Positions = make([][3]float64, len(order))
	for k, i := range order {
		out.Files[k] = hs[i].path
		out.SOPInstanceUIDs[k] = hs[i].sopUID
		out.SOPClassUIDs[k] = hs[i].sopClass
		out.Positions[k] = g[i].ipp
	}
	out.Orientation, out.PixelSpacing = g[0].iop, g[0].spacing
	out.SliceStep = sliceStep(aff)
	return v, &out, nil
}

// choose picks the series to read.
func (f *Folder) choose(want string) (*SeriesInfo, error) {
	if len(f.Series) == 0 {
		msg := fmt.Sprintf("dicomseries: %s holds no DICOM images (%d files not DICOM, %d DICOM without pixel data, %d unreadable)", f.Dir, f.NotDICOM, len(f.NoImage), len(f.Broken))
		if len(f.Broken) > 0 {
			return nil, fmt.Errorf("%s; first: %w", msg, f.Broken[0])
		}
		return nil, errors.New(msg)
	}
	for i := range f.Series {
		if f.Series[i].UID == want || (want == "" && len(f.Series) == 1) {
			return &f.Series[i], nil
		}
	}
	return nil, &MultipleSeriesError{Dir: f.Dir, Wanted: want, Series: f.Series}
}

// check validates one image header before any pixel is read and returns
// its geometry and pixel format.
func check(h *header) (sliceGeom, pixelFormat, error) {
	var g sliceGeom
	if h.broken != nil {
		return g, pixelFormat{}, h.broken
	}
	if !h.hasPixels {
		return g, pixelFormat{}, fmt.Errorf("no pixel data although the header describes an image (file truncated?)")
	}
	if len(h.missing) > 0 {
		return g, pixelFormat{}, fmt.Errorf("missing or unreadable %s", strings.Join(h.missing, ", "))
	}
	if h.rows < 1 || h.cols < 1 || h.rows > 0xFFFF || h.cols > 0xFFFF {
		return g, pixelFormat{}, fmt.Errorf("Rows %d / Columns %d out of range", h.rows, h.cols)
	}
	if err := checkSyntax(h.ts); err != nil {
		return g, pixelFormat{}, err
	}
	pf, err := formatOf(h)
	if err != nil {
		return g, pf, err
	}
	g = sliceGeom{name: h.path, rows: h.rows, cols: h.cols, thickness: h.thickness}
	if g.thickness <= 0 {
		g.thickness = h.between
	}
	copy(g.ipp[:], h.ipp)
	copy(g.iop[:], h.iop)
	copy(g.spacing[:], h.spacing)
	return g, pf, nil
}

// parallel calls fn(i) for every i in [0, n) from up to workers
// goroutines (0: GOMAXPROCS), one item at a time (parallel.ForEach).
func parallel(n, workers int, fn func(i int)) {
	par.ForEach(workers, n, func() struct{} { return struct{}{} }, func(_ struct{}, i int) { fn(i) })
}

// sliceStep is the length of the affine's third column: the distance
// between slice centres.
func sliceStep(a volume.Affine) float64 {
	return math.Sqrt(a[0][2]*a[0][2] + a[1][2]*a[1][2] + a[2][2]*a[2][2])
}
