package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/covseg/covseg/internal/atomicfile"
)

// Case states.
const (
	StateUploaded = "uploaded" // CT stored, nothing computed yet
	StateQueued   = "queued"
	StateRunning  = "running"
	StateDone     = "done"
	StateFailed   = "failed"
)

// Files of a case folder. These fixed names are the only ones the server
// ever opens inside a case.
const (
	FileImage   = "image.nii.gz"
	FileMask    = "mask.nii.gz"
	FileLungs   = "lungs.nii.gz"
	FileReport  = "report.json"
	FileMontage = "montage.png"
	// FileSEG and FileSC are a DICOM case's results as DICOM: the masks as a
	// Segmentation on the series' own frames, the report as a Secondary
	// Capture, both in the source's study (eval/dicomreport).
	FileSEG = "seg.dcm"
	FileSC  = "sc.dcm"
	// dirDICOM holds a DICOM case's series as uploaded (under the fixed
	// names the unzip gave), for the SEG's references.
	dirDICOM = "dicom"
	fileCase = "case.json"
)

// Case is a case's record, kept in its folder as case.json.
type Case struct {
	ID string `json:"id"`
	// Input is the client's name for what was uploaded (its safe base name)
	// or the file imported from the data folder.
	Input string `json:"input"`
	// Format is "nifti" or "dicom".
	Format string `json:"format"`
	Dims   [3]int `json:"dims"`
	State  string `json:"state"`
	// MaskFrom says where mask.nii.gz came from: "model" or "label" (saved
	// by a client); empty when there is none.
	MaskFrom string `json:"mask_from,omitempty"`
	// Job is the kind of the last job queued: "segment" or "analyse".
	Job     string    `json:"job,omitempty"`
	Error   string    `json:"error,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Seconds spent in the last job's steps.
	Timing map[string]float64 `json:"timing,omitempty"`
	// Focus is where the viewer opens the case (RAS+ mm): the centre of the
	// mask in the axial slice that holds most of it.
	Focus *[3]float64 `json:"focus,omitempty"`
}

// store is the datastore folder. Its lock orders the updates of case.json;
// the big files are written atomically and need none.
type store struct {
	dir string
	mu  sync.Mutex
}

func openStore(dir string) (*store, error) {
	if dir == "" {
		return nil, errors.New("serve: no datastore folder")
	}
	for _, d := range []string{dir, filepath.Join(dir, "cases"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("serve: datastore: %w", err)
		}
	}
	s := &store{dir: dir}
	if err := s.sweep(); err != nil {
		return nil, err
	}
	return s, nil
}

// sweep removes what an interrupted server left behind: uploads in tmp/,
// temporary files in case folders, and case folders without a case.json
// (an upload that stopped before its record was written).
func (s *store) sweep() error {
	tmp := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("serve: datastore: %w", err)
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
	ids, err := s.ids()
	if err != nil {
		return err
	}
	for _, id := range ids {
		dir := s.caseDir(id)
		files, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		hasRecord := false
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".") {
				os.Remove(filepath.Join(dir, f.Name()))
			}
			hasRecord = hasRecord || f.Name() == fileCase
		}
		if !hasRecord {
			os.RemoveAll(dir)
		}
	}
	return nil
}

func (s *store) caseDir(id string) string { return filepath.Join(s.dir, "cases", id) }

func (s *store) path(id, file string) string { return filepath.Join(s.caseDir(id), file) }

// ids lists the case folders, sorted.
func (s *store) ids() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "cases"))
	if err != nil {
		return nil, fmt.Errorf("serve: datastore: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// get reads a case's record; fs.ErrNotExist when there is no such case.
func (s *store) get(id string) (*Case, error) {
	b, err := os.ReadFile(s.path(id, fileCase))
	if err != nil {
		return nil, err
	}
	var c Case
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("serve: %s: %w", s.path(id, fileCase), err)
	}
	return &c, nil
}

// put writes a case's record atomically.
func (s *store) put(c *Case) error {
	c.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path(c.ID, fileCase), func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// update changes a case's record under the store's lock.
func (s *store) update(id string, change func(c *Case)) (*Case, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(id)
	if err != nil {
		return nil, err
	}
	change(c)
	return c, s.put(c)
}

// exists reports whether a case has a file.
func (s *store) exists(id, file string) bool {
	st, err := os.Stat(s.path(id, file))
	return err == nil && st.Mode().IsRegular()
}

// hasDICOM reports whether a case kept the DICOM series it came from.
func (s *store) hasDICOM(id string) bool {
	st, err := os.Stat(s.path(id, dirDICOM))
	return err == nil && st.IsDir()
}

// list returns every case's record, sorted by ID; unreadable records are
// skipped.
func (s *store) list() ([]*Case, error) {
	ids, err := s.ids()
	if err != nil {
		return nil, err
	}
	var cases []*Case
	for _, id := range ids {
		if c, err := s.get(id); err == nil {
			cases = append(cases, c)
		}
	}
	return cases, nil
}

// tempDir makes a folder for one upload under DIR/tmp, on the datastore's
// file system so that its files can be renamed into a case.
func (s *store) tempDir() (string, error) {
	return os.MkdirTemp(filepath.Join(s.dir, "tmp"), "upload-")
}
