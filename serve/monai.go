package serve

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// labelNames maps the model's class names (background left out) to their
// values in the mask, as MONAI Label's "labels" and "label_names" do.
func (s *Server) labelNames() map[string]int {
	names := map[string]int{}
	if s.cfg.Segmenter == nil {
		return names
	}
	cfg := s.cfg.Segmenter.Config()
	for k := 1; k < len(cfg.ClassNames); k++ {
		names[cfg.ClassNames[k]] = k
	}
	if len(names) == 0 && cfg.Classes >= 2 {
		names["infiltrate"] = 1
	}
	return names
}

// handleInfo answers GET /info/ as MONAI Label's app info: name, labels,
// models, empty trainers/strategies/scoring/train_stats and the datastore's
// counts. There is no top-level "config": Slicer's extension takes one for
// an old server and asks for an upgrade.
func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	models := map[string]any{}
	labels := s.labelNames()
	if s.cfg.Segmenter != nil {
		models[s.cfg.ModelName] = map[string]any{
			"type":        "segmentation",
			"labels":      labels,
			"dimension":   3,
			"description": "covseg 3D U-Net (R3D-18 encoder): COVID-19 pulmonary infiltrates in chest CT; " + s.cfg.Segmenter.Config().String(),
			"config":      map[string]any{},
		}
	}
	ds, err := s.datastoreStats()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":        "covseg",
		"description": "COVID-19 pulmonary infiltrate segmentation in chest CT",
		"version":     s.cfg.Version,
		"labels":      labels,
		"models":      models,
		"trainers":    map[string]any{},
		"strategies":  map[string]any{},
		"scoring":     map[string]any{},
		"train_stats": map[string]any{},
		"datastore":   ds,
	})
}

// datastoreStats is MONAI Label's datastore status: total images and those
// with a final label (here: a finished mask).
func (s *Server) datastoreStats() (map[string]any, error) {
	cases, err := s.st.list()
	if err != nil {
		return nil, err
	}
	done := 0
	for _, c := range cases {
		if c.State == StateDone {
			done++
		}
	}
	return map[string]any{"total": len(cases), "completed": done, "label_tags": map[string]int{"final": done}, "train": map[string]any{}}, nil
}

// handleAuth answers GET /auth/: whether a token is needed. Slicer then
// asks for a user name and password and gets a token at /auth/token.
func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"enabled": s.cfg.Token != "", "client_id": "", "realm": ""})
}

// handleToken answers POST /auth/token (an OAuth2 password form): the
// password is the server's token, which comes back as the access token.
// Without a token it answers nulls, as MONAI Label does.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Token == "" {
		writeJSON(w, http.StatusOK, map[string]any{"access_token": nil, "token_type": nil})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFieldBytes)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "token request: "+err.Error())
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("password")), []byte(s.cfg.Token)) != 1 {
		writeError(w, http.StatusUnauthorized, "wrong password: it is the server's token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": s.cfg.Token, "token_type": "bearer"})
}

// handleTokenValid answers GET /auth/token/valid, which Slicer calls to
// check its token: reaching it means the token passed.
func (s *Server) handleTokenValid(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"username": "covseg", "email": "", "name": "covseg", "roles": []string{"user"}})
}

// handleTrain answers GET /train/: covseg serve does not train, so no
// training task is running (404, which Slicer's train_status reads as "not
// running").
func (s *Server) handleTrain(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no training task is running: covseg serve does not train (use covseg train)")
}

// handleDatastore answers GET /datastore/?output=stats|all.
func (s *Server) handleDatastore(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("output") != "all" {
		ds, err := s.datastoreStats()
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ds)
		return
	}
	cases, err := s.st.list()
	if err != nil {
		s.fail(w, err)
		return
	}
	objects := map[string]any{}
	for _, c := range cases {
		objects[c.ID] = c
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": "covseg", "objects": objects})
}

// acquireUpload takes one of the upload slots, or fails with ErrBusy.
func (s *Server) acquireUpload() (release func(), err error) {
	select {
	case s.uploads <- struct{}{}:
		return func() { <-s.uploads }, nil
	default:
		return nil, ErrBusy
	}
}

// handleUpload answers PUT /datastore/?image=ID with a multipart "file"
// part (and an optional "params" field): the CT is checked, stored as the
// case's image.nii.gz, and the answer is {"image": ID}. Without ?image the
// ID comes from the file's name; a client-side path keeps only its base.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	id, err := s.storeUpload(w, r, "file", true)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"image": id})
}

// storeUpload reads a request's CT from its file part and stores it as a
// new case (replacing an earlier one of the same ID). required says whether
// the part must be there; without it the ID is "".
func (s *Server) storeUpload(w http.ResponseWriter, r *http.Request, part string, required bool) (string, error) {
	release, err := s.acquireUpload()
	if err != nil {
		return "", err
	}
	defer release()
	tmp, err := s.st.tempDir()
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	f, err := readForm(w, r, tmp, s.cfg.MaxUpload, part, "label")
	if err != nil {
		return "", err
	}
	sf, ok := f.files[part]
	if !ok {
		if required {
			return "", badRequest("the form has no %q file part", part)
		}
		return "", nil
	}
	id := ""
	if r.URL.Query().Get("image") != "" {
		if id, err = caseID(r, "image"); err != nil {
			return "", err
		}
	} else if id, err = SafeID(sf.filename); err != nil {
		return "", badRequest("file name: %v", err)
	}
	ct, format, err := decodeCT(sf, s.cfg.MaxUpload)
	if err != nil {
		return "", err
	}
	dcm := ""
	if format == formatDICOM {
		dcm = dicomDir(sf.path)
	}
	if err := s.addCase(id, ct, format, sf.filename, tmp, dcm); err != nil {
		return "", err
	}
	s.logf("case %s: stored (%s, %v)", id, format, ct.Dims)
	return id, nil
}

// addCase stores a CT as a case, replacing an earlier case of that ID; a
// DICOM case keeps its series (dcm, a folder in tmp) for its DICOM SEG.
// The new folder is filled in tmp and renamed into place, the old one moved
// aside first: a crash leaves the old case, the new one or neither (the
// restart sweeps tmp), never a mix of the two.
func (s *Server) addCase(id string, ct *volume.Volume, format, input, tmp, dcm string) error {
	dir := filepath.Join(tmp, "case")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if dcm != "" {
		if err := os.Rename(dcm, filepath.Join(dir, dirDICOM)); err != nil {
			return err
		}
	}
	if err := writeImage(filepath.Join(dir, FileImage), ct); err != nil {
		return err
	}
	now := time.Now().UTC()
	c := &Case{ID: id, Input: safeInput(input), Format: format, Dims: ct.Dims, State: StateUploaded, Created: now}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, fileCase), append(b, '\n'), 0o644); err != nil {
		return err
	}
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	if _, busy := s.q.inflight[id]; busy {
		return errConflict
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if err := os.Rename(s.st.caseDir(id), filepath.Join(tmp, "old")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(dir, s.st.caseDir(id))
}

// safeInput keeps the base name of a client's file name for the record,
// printable and short.
func safeInput(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	return clip(name)
}

// handleSaveLabel answers PUT /datastore/label?image=ID: the "label" part,
// a NIfTI mask on the CT's grid, becomes the case's mask (mask_from
// "label"), and the lungs, report and montage are computed for it in the
// queue. The answer is {"image": ID, "label": ID}.
func (s *Server) handleSaveLabel(w http.ResponseWriter, r *http.Request) {
	id, err := caseID(r, "image")
	if err == nil {
		err = s.saveLabel(w, r, id)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"image": id, "label": id})
}

func (s *Server) saveLabel(w http.ResponseWriter, r *http.Request, id string) error {
	c, err := s.st.get(id)
	if err != nil {
		return err
	}
	release, err := s.acquireUpload()
	if err != nil {
		return err
	}
	defer release()
	tmp, err := s.st.tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f, err := readForm(w, r, tmp, s.cfg.MaxUpload, "label")
	if err != nil {
		return err
	}
	sf, ok := f.files["label"]
	if !ok {
		return badRequest("the form has no \"label\" file part")
	}
	if kind, err := sniff(sf.path); err != nil || kind != "nifti" {
		return badRequest("%s: the label must be a NIfTI file (.nii or .nii.gz)", clip(sf.filename))
	}
	label, _, err := nifti.ReadLabel(sf.path)
	if err != nil {
		return badRequest("%s: not a readable NIfTI label: %v", clip(sf.filename), err)
	}
	hdr, err := nifti.ReadHeader(s.st.path(id, FileImage))
	if err != nil {
		return err
	}
	if err := sameGrid(label.Dims, label.Affine, hdr); err != nil {
		return badRequest("%s: %v", clip(sf.filename), err)
	}
	s.q.mu.Lock()
	_, busy := s.q.inflight[id]
	s.q.mu.Unlock()
	if busy {
		return errConflict
	}
	if err := nifti.WriteLabel(s.st.path(id, FileMask), label); err != nil {
		return err
	}
	if _, err := s.st.update(c.ID, func(c *Case) { c.MaskFrom = "label" }); err != nil {
		return err
	}
	_, err = s.submit(id, jobAnalyse)
	return err
}

// handleDownload answers GET /datastore/image?image=ID and
// /datastore/label?label=ID with the case's file.
func (s *Server) handleDownload(file, key string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := caseID(r, key)
		if err != nil {
			s.fail(w, err)
			return
		}
		s.serveFile(w, r, id, file)
	}
}

// serveFile answers one of a case's fixed files.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, id, file string) {
	f, err := os.Open(s.st.path(id, file))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("case %s has no %s", id, file))
			return
		}
		s.fail(w, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", contentType(file))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"_"+file))
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func contentType(file string) string {
	switch filepath.Ext(file) {
	case ".json":
		return "application/json"
	case ".png":
		return "image/png"
	case ".dcm":
		return "application/dicom"
	}
	return "application/octet-stream"
}

// handleInfer answers POST /infer/MODEL?image=ID (or with the CT in a
// multipart "file" part): it queues the case, waits for the mask and
// answers as MONAI Label does: multipart/form-data with a "params" JSON part
// (label_names, latencies, the report's figures) and an "image" part
// ID_seg.nii.gz, the mask on the CT's grid; ?output=image answers the mask
// alone and ?output=json the params alone.
func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	if m := r.PathValue("model"); m != s.cfg.ModelName {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no model %q: this server has %q", clip(m), s.cfg.ModelName))
		return
	}
	if s.cfg.Segmenter == nil {
		writeError(w, http.StatusServiceUnavailable, "no model loaded: start covseg serve with --model")
		return
	}
	start := time.Now()
	id, err := s.inferCase(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	j, err := s.submit(id, jobSegment)
	if err != nil {
		s.fail(w, err)
		return
	}
	select {
	case <-j.done:
	case <-r.Context().Done():
		return
	case <-time.After(s.cfg.InferTimeout):
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("case %s is still being segmented after %v; its result will be in GET /api/cases/%s", id, s.cfg.InferTimeout, id))
		return
	}
	if errors.Is(j.err, errStopping) {
		s.fail(w, j.err)
		return
	}
	if j.err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("case %s: %v", id, j.err))
		return
	}
	s.answerInfer(w, r, id, time.Since(start))
}

// inferCase finds the case an /infer request names: a CT in its "file"
// part, an uploaded case, or a file of the data folder.
func (s *Server) inferCase(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Header.Get("Content-Type") != "" && r.ContentLength != 0 {
		id, err := s.storeUpload(w, r, "file", false)
		if err != nil || id != "" {
			return id, err
		}
	}
	id, err := caseID(r, "image")
	if err != nil {
		return "", err
	}
	if _, err := s.st.get(id); err == nil {
		return id, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return id, s.importData(id)
}

// importData makes a case of a CT in the data folder named id (a NIfTI
// file id.nii.gz or id.nii, or a DICOM folder id).
func (s *Server) importData(id string) error {
	if s.cfg.DataDir == "" {
		return &httpError{http.StatusNotFound, fmt.Sprintf("no image %q: upload it first (PUT /datastore/?image=%s)", id, id)}
	}
	if id == "cases" || id == "tmp" { // the datastore's own folders
		return &httpError{http.StatusNotFound, fmt.Sprintf("no image %q", id)}
	}
	var path string
	for _, name := range []string{id + ".nii.gz", id + ".nii", id} {
		p := filepath.Join(s.cfg.DataDir, name) // id is a safe base name
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return &httpError{http.StatusNotFound, fmt.Sprintf("no image %q in the datastore or the data folder", id)}
	}
	release, err := s.acquireUpload()
	if err != nil {
		return err
	}
	defer release()
	ct, src, err := volio.Read(path, volio.Options{})
	if err != nil {
		return badRequest("%v", err)
	}
	tmp, err := s.st.tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	return s.addCase(id, ct, string(src.Format), filepath.Base(path), tmp, "")
}

// answerInfer writes the finished case's mask in MONAI Label's form.
func (s *Server) answerInfer(w http.ResponseWriter, r *http.Request, id string, latency time.Duration) {
	mask, err := os.ReadFile(s.st.path(id, FileMask))
	if err != nil {
		s.fail(w, err)
		return
	}
	params := map[string]any{
		"label_names": s.labelNames(),
		"latencies":   map[string]any{"total": math.Round(latency.Seconds()*1000) / 1000},
		"case":        id,
	}
	if b, err := os.ReadFile(s.st.path(id, FileReport)); err == nil {
		params["report"] = json.RawMessage(b)
	}
	pj, err := json.Marshal(params)
	if err != nil {
		s.fail(w, err)
		return
	}
	switch r.URL.Query().Get("output") {
	case "json":
		w.Header().Set("Content-Type", "application/json")
		w.Write(pj)
		return
	case "image":
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"_seg.nii.gz"))
		w.Write(mask)
		return
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="params"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	pw.Write(pj)
	h = textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="image"; filename=%q`, id+"_seg.nii.gz"))
	h.Set("Content-Type", "application/octet-stream")
	fw, _ := mw.CreatePart(h)
	fw.Write(mask)
	mw.Close()
	w.Header().Set("Content-Type", mw.FormDataContentType())
	w.Write(body.Bytes())
}

// sameGrid checks that a label lies on the grid of the CT whose header is
// hdr: the same dims, and affines within severity.GridTolerance.
func sameGrid(d volume.Dims, a volume.Affine, hdr *nifti.Header) error {
	ha, err := hdr.Affine()
	if err != nil {
		return err
	}
	hd := volume.Dims{int(hdr.Dim[1]), int(hdr.Dim[2]), int(hdr.Dim[3])}
	if d != hd {
		return fmt.Errorf("the label's dims %v are not the CT's %v", d, hd)
	}
	for i := range 3 {
		for j := range 4 {
			if math.Abs(a[i][j]-ha[i][j]) > severity.GridTolerance {
				return fmt.Errorf("the label's affine differs from the CT's (row %d: %v against %v)", i, a[i], ha[i])
			}
		}
	}
	return nil
}
