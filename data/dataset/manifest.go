// Package dataset lists training cases: a manifest (a CSV file naming each
// case's image, mask, split and source data set), discovery of the public
// COVID-19 CT layouts into a manifest (Coronacases, MosMedData, folders of
// NIfTI pairs), deterministic seeded splits, and the conversion of RICORD's
// DICOM series and MD.ai annotations into NIfTI pairs.
//
// A manifest is a CSV file with a header row. The columns image, mask,
// split and dataset are required; case, label and group are optional; any
// other column is an error (it is most likely a typo). Columns may come in
// any order. Lines starting with # are comments.
//
//	image,mask,split,dataset,case,label,group
//	images/case01.nii.gz,masks/case01.nii.gz,train,ricord,case01,Typical Appearance,patient01
//
// The fields:
//   - image: a NIfTI file (.nii, .nii.gz) or a folder holding one DICOM
//     series; relative paths are resolved against the manifest's folder.
//   - mask: a NIfTI label map on the image's grid (0 = background, > 0 =
//     lesion), or empty for an unlabelled case.
//   - split: train, val, test, or unlabelled (exactly the cases without a
//     mask).
//   - dataset: the source data set's name (coronacases, mosmed, ricord...).
//   - case: a name unique within the manifest; the image's file name
//     without extension when empty.
//   - label: a free-text case-level label (RICORD's study classification,
//     MosMedData's CT-0..CT-4 category).
//   - group: cases of one group (one patient's several series) always get
//     the same split; the case name when empty.
package dataset

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/covseg/covseg/internal/atomicfile"
)

// Split is the part of the data a case belongs to.
type Split string

// The splits a manifest may hold.
const (
	Train      Split = "train"
	Val        Split = "val"
	Test       Split = "test"
	Unlabelled Split = "unlabelled" // no mask: for inference only
)

// ParseSplit returns the split named s (case-insensitive; "validation" is
// accepted for val).
func ParseSplit(s string) (Split, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "train":
		return Train, nil
	case "val", "validation":
		return Val, nil
	case "test":
		return Test, nil
	case "unlabelled", "unlabeled":
		return Unlabelled, nil
	}
	return "", fmt.Errorf("split %q is not one of train, val, test, unlabelled", s)
}

// Entry is one case of a manifest.
type Entry struct {
	Image   string // NIfTI file or DICOM series folder
	Mask    string // NIfTI label map; empty when unlabelled
	Split   Split
	Dataset string
	Case    string // unique name; never empty after ReadManifest
	Label   string // optional case-level label
	Group   string // split group; empty means the case itself
}

// SplitGroup is the name that decides the entry's split: Group, or Case
// when Group is empty.
func (e Entry) SplitGroup() string {
	if e.Group != "" {
		return e.Group
	}
	return e.Case
}

// Manifest is a list of cases.
type Manifest struct {
	Entries []Entry
}

// Select returns the entries of the given split, in manifest order.
func (m *Manifest) Select(s Split) []Entry {
	var out []Entry
	for _, e := range m.Entries {
		if e.Split == s {
			out = append(out, e)
		}
	}
	return out
}

// columns of a manifest, in the order Write puts them.
var columns = []string{"image", "mask", "split", "dataset", "case", "label", "group"}

// required columns.
var required = map[string]bool{"image": true, "mask": true, "split": true, "dataset": true}

// maxEntries bounds a manifest's size, far beyond any CT collection, so
// that a corrupted file is refused rather than exhausting memory.
const maxEntries = 1 << 20

// ReadManifest reads and validates the manifest at path: its syntax (see
// the package documentation) and that every image and mask exists. Relative
// paths become absolute, resolved against the manifest's folder. Errors name
// the file and line.
func ReadManifest(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	m, lines, err := parse(path, f, filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	for i, e := range m.Entries {
		if err := checkExists(e); err != nil {
			return nil, fmt.Errorf("dataset: %s:%d: %w", path, lines[i], err)
		}
	}
	return m, nil
}

// ParseManifest reads a manifest from r without touching the files it
// names. name is used in error messages; relative paths are resolved
// against base (left relative when base is empty).
func ParseManifest(name string, r io.Reader, base string) (*Manifest, error) {
	m, _, err := parse(name, r, base)
	return m, err
}

// parse reads and validates a manifest and returns each entry's line.
func parse(name string, r io.Reader, base string) (*Manifest, []int, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // checked here, with a clearer message
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("dataset: %s: empty manifest (want a header row: %s)", name, strings.Join(columns[:4], ","))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: %s: %w", name, err)
	}
	col, err := headerColumns(header)
	if err != nil {
		line, _ := cr.FieldPos(0)
		return nil, nil, fmt.Errorf("dataset: %s:%d: %w", name, line, err)
	}
	m := &Manifest{}
	var lines []int
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("dataset: %s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(m.Entries) >= maxEntries {
			return nil, nil, fmt.Errorf("dataset: %s:%d: more than %d entries", name, line, maxEntries)
		}
		if len(rec) != len(header) {
			return nil, nil, fmt.Errorf("dataset: %s:%d: %d fields, the header has %d", name, line, len(rec), len(header))
		}
		e, err := entryOf(rec, col, base)
		if err != nil {
			return nil, nil, fmt.Errorf("dataset: %s:%d: %w", name, line, err)
		}
		m.Entries = append(m.Entries, e)
		lines = append(lines, line)
	}
	if err := checkUnique(m.Entries, lines); err != nil {
		return nil, nil, fmt.Errorf("dataset: %s:%w", name, err)
	}
	return m, lines, nil
}

// headerColumns maps column names to their positions.
func headerColumns(header []string) (map[string]int, error) {
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		known := false
		for _, c := range columns {
			known = known || c == h
		}
		if !known {
			return nil, fmt.Errorf("unknown column %q (known: %s)", header[i], strings.Join(columns, ", "))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("column %q appears twice", h)
		}
		col[h] = i
	}
	var missing []string
	for _, c := range columns {
		if _, ok := col[c]; required[c] && !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("header lacks column(s) %s (want at least %s)", strings.Join(missing, ", "), strings.Join(columns[:4], ","))
	}
	return col, nil
}

// entryOf builds and checks one entry.
func entryOf(rec []string, col map[string]int, base string) (Entry, error) {
	get := func(c string) string {
		if i, ok := col[c]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var e Entry
	var err error
	if e.Split, err = ParseSplit(get("split")); err != nil {
		return e, err
	}
	e.Image, e.Mask = get("image"), get("mask")
	e.Dataset, e.Case, e.Label, e.Group = get("dataset"), get("case"), get("label"), get("group")
	if e.Image == "" {
		return e, errors.New("empty image")
	}
	if e.Dataset == "" {
		return e, errors.New("empty dataset")
	}
	if (e.Mask == "") != (e.Split == Unlabelled) {
		if e.Mask == "" {
			return e, fmt.Errorf("split %s needs a mask (cases without one are split %s)", e.Split, Unlabelled)
		}
		return e, fmt.Errorf("split %s is for cases without a mask, but mask is %s", Unlabelled, e.Mask)
	}
	if e.Case == "" {
		e.Case = CaseName(e.Image)
	}
	if e.Image = resolve(base, e.Image); e.Mask != "" {
		e.Mask = resolve(base, e.Mask)
	}
	return e, nil
}

// resolve makes p absolute against base when it is relative.
func resolve(base, p string) string {
	p = filepath.FromSlash(p)
	if base == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// checkUnique refuses repeated images and case names.
func checkUnique(es []Entry, lines []int) error {
	images, cases := map[string]int{}, map[string]int{}
	for i, e := range es {
		if j, ok := images[e.Image]; ok {
			return fmt.Errorf("%d: image %s is already listed on line %d", lines[i], e.Image, lines[j])
		}
		if j, ok := cases[e.Case]; ok {
			return fmt.Errorf("%d: case name %q is already used on line %d (set the case column to tell them apart)", lines[i], e.Case, lines[j])
		}
		images[e.Image], cases[e.Case] = i, i
	}
	return nil
}

// checkExists checks that the entry's files exist: the image a file or a
// folder (a DICOM series), the mask a file.
func checkExists(e Entry) error {
	if _, err := os.Stat(e.Image); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if e.Mask == "" {
		return nil
	}
	st, err := os.Stat(e.Mask)
	if err != nil {
		return fmt.Errorf("mask: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("mask %s is a folder; want a NIfTI label map", e.Mask)
	}
	return nil
}

// CaseName derives a case name from an image path: the file name without
// .nii, .nii.gz or .gz, or the folder's name for a DICOM folder.
func CaseName(image string) string {
	b := filepath.Base(filepath.Clean(filepath.FromSlash(image)))
	for _, ext := range []string{".nii.gz", ".nii", ".gz"} {
		if len(b) > len(ext) && strings.EqualFold(b[len(b)-len(ext):], ext) {
			return b[:len(b)-len(ext)]
		}
	}
	return b
}

// WriteManifest writes m to path atomically, with paths relative to the
// manifest's folder where they lie inside it (so the folder can be moved)
// and absolute otherwise. It refuses a manifest that would not read back.
func WriteManifest(path string, m *Manifest) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("dataset: %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	lines := make([]int, len(m.Entries))
	for i, e := range m.Entries {
		lines[i] = i + 2
		if err := validEntry(e); err != nil {
			return fmt.Errorf("dataset: %s: entry %d (%s): %w", path, i+1, e.Image, err)
		}
	}
	if err := checkUnique(m.Entries, lines); err != nil {
		return fmt.Errorf("dataset: %s:%w", path, err)
	}
	return atomicfile.Write(abs, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(columns); err != nil {
			return err
		}
		for _, e := range m.Entries {
			mask := ""
			if e.Mask != "" {
				mask = relative(dir, e.Mask)
			}
			image := relative(dir, e.Image)
			if strings.HasPrefix(image, "#") {
				return fmt.Errorf("image %q would read back as a comment line", image)
			}
			rec := []string{image, mask, string(e.Split), e.Dataset, e.Case, e.Label, e.Group}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
}

// validEntry checks what parse would check of an entry built in code.
func validEntry(e Entry) error {
	if _, err := ParseSplit(string(e.Split)); err != nil {
		return err
	}
	if e.Image == "" || e.Dataset == "" || e.Case == "" {
		return errors.New("image, dataset and case must not be empty")
	}
	if (e.Mask == "") != (e.Split == Unlabelled) {
		return fmt.Errorf("split %s with mask %q: only cases without a mask are %s", e.Split, e.Mask, Unlabelled)
	}
	for _, s := range []string{e.Image, e.Mask, e.Dataset, e.Case, e.Label, e.Group} {
		if strings.ContainsAny(s, "\r\n") || strings.TrimSpace(s) != s {
			return fmt.Errorf("field %q has line breaks or surrounding spaces", s)
		}
	}
	return nil
}

// relative returns p relative to dir when p lies inside dir, else p made
// absolute; always with forward slashes, so manifests travel between systems.
func relative(dir, p string) string {
	ap, err := filepath.Abs(p)
	if err != nil {
		return filepath.ToSlash(p)
	}
	if r, err := filepath.Rel(dir, ap); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(ap)
}
