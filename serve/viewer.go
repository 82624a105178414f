package serve

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/volume"
)

// web holds the pages and web/vendor: a README that is always there and,
// when scripts/setup installed it before the build, NiiVue's bundle
// (niivue.umd.js, ignored by git). A build without the bundle serves the
// case list and the montages, and says how to get the viewer.
//
//go:embed web/list.html web/case.html web/vendor
var web embed.FS

// niivueBundle is the bundle's path in web.
const niivueBundle = "web/vendor/niivue.umd.js"

// HasViewer reports whether this binary embeds NiiVue.
func HasViewer() bool {
	_, err := fs.Stat(web, niivueBundle)
	return err == nil
}

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"pct": func(p *float64) string {
		if p == nil {
			return "–"
		}
		return strings.TrimRight(strings.TrimRight(fmtFloat(*p, 1), "0"), ".") + " %"
	},
	"ml": func(x float64) string { return fmtFloat(x, 1) },
	"json": func(v any) (template.JS, error) {
		b, err := json.Marshal(v)
		return template.JS(b), err
	},
}).ParseFS(web, "web/list.html", "web/case.html"))

// caseView is a case with its report, for the pages and /api/cases.
type caseView struct {
	*Case
	Report *severity.Report `json:"report,omitempty"`
	Files  []string         `json:"files"`
}

// view reads a case's record, report and the files it has.
func (s *Server) view(id string) (*caseView, error) {
	c, err := s.st.get(id)
	if err != nil {
		return nil, err
	}
	v := &caseView{Case: c, Files: []string{}}
	for _, f := range []string{FileImage, FileMask, FileLungs, FileReport, FileMontage, FileSEG, FileSC} {
		if s.st.exists(id, f) {
			v.Files = append(v.Files, f)
		}
	}
	if b, err := os.ReadFile(s.st.path(id, FileReport)); err == nil {
		var r severity.Report
		if json.Unmarshal(b, &r) == nil {
			v.Report = &r
		}
	}
	return v, nil
}

func (s *Server) viewerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.handleList)
	mux.HandleFunc("GET /case/{id}", s.handleCase)
	mux.HandleFunc("GET /vendor/{file}", s.handleVendor)
	mux.HandleFunc("GET /api/cases", s.handleAPICases)
	mux.HandleFunc("GET /api/cases/{id}", s.handleAPICase)
	mux.HandleFunc("GET /api/cases/{id}/{file}", s.handleAPIFile)
	mux.HandleFunc("POST /api/cases/{id}/segment", s.handleAPISegment)
}

// pathID sanitises the {id} of a path.
func pathID(r *http.Request) (string, error) {
	id, err := SafeID(r.PathValue("id"))
	if err != nil || id != r.PathValue("id") {
		return "", &httpError{http.StatusNotFound, "no such case"}
	}
	return id, nil
}

func (s *Server) views() ([]*caseView, error) {
	ids, err := s.st.ids()
	if err != nil {
		return nil, err
	}
	views := []*caseView{}
	for _, id := range ids {
		if v, err := s.view(id); err == nil {
			views = append(views, v)
		}
	}
	return views, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	views, err := s.views()
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, "list.html", map[string]any{"Cases": views, "Data": s.dataCTs(views), "Viewer": HasViewer(), "Model": s.cfg.Segmenter != nil, "Version": s.cfg.Version})
}

func (s *Server) handleCase(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	v, err := s.view(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, "case.html", map[string]any{"C": v, "Viewer": HasViewer(), "Check": r.URL.Query().Get("check") == "1", "Model": s.cfg.Segmenter != nil})
}

func (s *Server) render(w http.ResponseWriter, page string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self' data: blob:")
	if err := pages.ExecuteTemplate(w, page, data); err != nil {
		s.logf("page %s: %v", page, err)
	}
}

func (s *Server) handleVendor(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := web.ReadFile("web/vendor/" + name)
	if err != nil || strings.HasPrefix(name, ".") {
		writeError(w, http.StatusNotFound, "not in this build: run scripts/setup (it installs NiiVue with npm) and build covseg again")
		return
	}
	ct := "text/plain; charset=utf-8"
	if strings.HasSuffix(name, ".js") {
		ct = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "max-age=86400")
	w.Write(b)
}

func (s *Server) handleAPICases(w http.ResponseWriter, r *http.Request) {
	views, err := s.views()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, views)
}

func (s *Server) handleAPICase(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		var v *caseView
		if v, err = s.view(id); err == nil {
			writeJSON(w, http.StatusOK, v)
			return
		}
	}
	s.fail(w, err)
}

func (s *Server) handleAPIFile(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	switch f := r.PathValue("file"); f {
	case FileImage, FileMask, FileLungs, FileReport, FileMontage, FileSEG, FileSC:
		s.serveFile(w, r, id, f)
	default:
		writeError(w, http.StatusNotFound, "a case has image.nii.gz, mask.nii.gz, lungs.nii.gz, report.json and montage.png, and from a DICOM series seg.dcm and sc.dcm")
	}
}

// handleAPISegment queues a case (or a CT of the data folder, which
// becomes a case) for the model and answers 202 at once; GET /api/cases/ID
// tells when it is done.
func (s *Server) handleAPISegment(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		if s.cfg.Segmenter == nil {
			writeError(w, http.StatusServiceUnavailable, "no model loaded: start covseg serve with --model")
			return
		}
		if _, err = s.st.get(id); errors.Is(err, fs.ErrNotExist) {
			err = s.importData(id)
		}
		if err == nil {
			if _, err = s.submit(id, jobSegment); err == nil {
				writeJSON(w, http.StatusAccepted, map[string]string{"image": id, "state": StateQueued})
				return
			}
		}
	}
	s.fail(w, err)
}

// focus is where the viewer opens a case: the centre of the infiltrate in
// the axial slice (of the closest canonical grid) that holds most of it,
// in RAS+ mm; nil for an empty mask.
func focus(mask *volume.Label) *[3]float64 {
	c := mask.Canonical()
	d := c.Dims
	best, bestN := -1, 0
	for k := range d[2] {
		n := 0
		for _, x := range c.Data[k*d[0]*d[1] : (k+1)*d[0]*d[1]] {
			if x != 0 {
				n++
			}
		}
		if n > bestN {
			best, bestN = k, n
		}
	}
	if best < 0 {
		return nil
	}
	var si, sj float64
	for j := range d[1] {
		for i := range d[0] {
			if c.Data[(best*d[1]+j)*d[0]+i] != 0 {
				si += float64(i)
				sj += float64(j)
			}
		}
	}
	p := c.Affine.Apply([3]float64{si / float64(bestN), sj / float64(bestN), float64(best)})
	return &p
}

func fmtFloat(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }

// dataCTs lists the CTs in the data folder that are not cases yet: the IDs
// of its NIfTI files and of its folders other than the datastore's own.
func (s *Server) dataCTs(views []*caseView) []string {
	if s.cfg.DataDir == "" {
		return nil
	}
	entries, err := os.ReadDir(s.cfg.DataDir)
	if err != nil {
		return nil
	}
	have := map[string]bool{"cases": true, "tmp": true}
	for _, v := range views {
		have[v.ID] = true
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		lower := strings.ToLower(name)
		if !e.IsDir() && !strings.HasSuffix(lower, ".nii") && !strings.HasSuffix(lower, ".nii.gz") {
			continue
		}
		id, err := SafeID(name)
		if err != nil || have[id] || (id != strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".nii") && !e.IsDir()) || (e.IsDir() && id != name) {
			continue // names that do not map back to the file are not importable by ID
		}
		have[id] = true
		ids = append(ids, id)
	}
	return ids
}
