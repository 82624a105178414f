package serve

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"

	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// Limits of a DICOM zip, besides the upload's own size cap.
const (
	maxZipEntries = 10000
	// zipExpansion bounds the unpacked size of a zip as a multiple of the
	// upload cap: DICOM compresses at most a few times, a zip bomb far more.
	zipExpansion = 8
	// maxFieldBytes bounds a form field that is not a file ("params").
	maxFieldBytes = 1 << 16
)

// httpError is an error with the status a handler answers it with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// form is a multipart request: its small fields, and its file parts saved in
// a temporary folder under their form names.
type form struct {
	fields map[string]string
	files  map[string]savedFile
}

type savedFile struct {
	path     string // in the upload's temporary folder
	filename string // as the client sent it
}

// readForm reads a multipart/form-data body part by part, saving the parts
// named in fileParts to dir. The body is capped at limit bytes while it is
// read (http.MaxBytesReader), so an oversized upload stops at the cap, not
// after it has filled the disk.
func readForm(w http.ResponseWriter, r *http.Request, dir string, limit int64, fileParts ...string) (*form, error) {
	f := &form{fields: map[string]string{}, files: map[string]savedFile{}}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "multipart/form-data" {
		return nil, badRequest("the request must be multipart/form-data (got %q)", clip(ct))
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("multipart body: %v", err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return nil, bodyError(err, limit)
		}
		if err := f.add(p, dir, limit, fileParts); err != nil {
			return nil, err
		}
	}
}

func (f *form) add(p *multipart.Part, dir string, limit int64, fileParts []string) error {
	defer p.Close()
	name := p.FormName()
	isFile := false
	for _, fp := range fileParts {
		isFile = isFile || fp == name
	}
	if !isFile {
		b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return bodyError(err, limit)
		}
		if len(b) > maxFieldBytes {
			return badRequest("form field %q is longer than %d bytes", clip(name), maxFieldBytes)
		}
		f.fields[name] = string(b)
		return nil
	}
	if _, dup := f.files[name]; dup {
		return badRequest("form part %q appears twice", name)
	}
	path := filepath.Join(dir, "part-"+name) // name is one of fileParts: fixed by the server
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, p)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return bodyError(err, limit)
	}
	f.files[name] = savedFile{path: path, filename: p.FileName()}
	return nil
}

// bodyError turns a failure to read the body into the right answer: 413 for
// an upload over the cap, 400 otherwise.
func bodyError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &httpError{http.StatusRequestEntityTooLarge,
			fmt.Sprintf("upload larger than the server's limit of %d bytes (covseg serve --max-upload)", limit)}
	}
	return badRequest("reading the upload: %v", err)
}

// sniff says what an uploaded file holds from its first bytes: "nifti"
// (plain or gzip-compressed), "zip", or "" when it is neither.
func sniff(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "zip", nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		zr, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			return "", nil
		}
		defer zr.Close()
		return niftiMagic(zr), nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return niftiMagic(f), nil
}

// niftiMagic checks a NIfTI-1 or NIfTI-2 header's magic ("n+1" at byte 344,
// "n+2" at byte 4).
func niftiMagic(r io.Reader) string {
	b := make([]byte, 348)
	n, _ := io.ReadFull(r, b)
	b = b[:n]
	if len(b) >= 348 && (bytes.Equal(b[344:347], []byte("n+1")) || bytes.Equal(b[344:347], []byte("ni1"))) {
		return "nifti"
	}
	if len(b) >= 8 && bytes.Equal(b[4:7], []byte("n+2")) {
		return "nifti"
	}
	return ""
}

// decodeCT reads an uploaded CT: a NIfTI file, or a zip holding one DICOM
// series, which is unpacked (under fixed names, never the zip's own) into
// a folder beside it. Anything else is a 400 saying why.
func decodeCT(sf savedFile, limit int64) (*volume.Volume, string, error) {
	kind, err := sniff(sf.path)
	if err != nil {
		return nil, "", err
	}
	switch kind {
	case "nifti":
		// volio tells NIfTI from DICOM by the name; nifti itself finds gzip
		// from the bytes.
		p := sf.path + ".nii"
		if err := os.Rename(sf.path, p); err != nil {
			return nil, "", err
		}
		v, _, err := volio.Read(p, volio.Options{})
		if err != nil {
			return nil, "", badRequest("%s: not a readable NIfTI image: %v", clip(sf.filename), err)
		}
		return v, string(volio.NIfTI), nil
	case "zip":
		dir := dicomDir(sf.path)
		if err := unzip(sf.path, dir, limit*zipExpansion); err != nil {
			return nil, "", badRequest("%s: %v", clip(sf.filename), err)
		}
		v, _, err := volio.Read(dir, volio.Options{})
		if err != nil {
			return nil, "", badRequest("%s: the zip holds no readable DICOM series: %v", clip(sf.filename), err)
		}
		return v, formatDICOM, nil
	}
	return nil, "", badRequest("%s: not a CT covseg reads: expected a NIfTI file (.nii or .nii.gz) or a zip of one DICOM series", clip(sf.filename))
}

// formatDICOM is Case.Format for a CT uploaded as a zip of a DICOM series;
// its files were unpacked into dicomDir(the upload's path).
const formatDICOM = "dicom"

// dicomDir is where decodeCT unpacks a zip uploaded to path.
func dicomDir(path string) string { return path + "-dicom" }

// unzip writes the zip's regular files to dir as 00000.dcm, 00001.dcm, ...:
// the names inside the zip never reach the file system. It stops past
// maxEntries files or maxBytes unpacked, counting the bytes it writes rather
// than trusting the sizes the zip declares.
func unzip(path, dir string, maxBytes int64) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("not a readable zip: %v", err)
	}
	defer zr.Close()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	var total int64
	n := 0
	for _, zf := range zr.File {
		if !zf.Mode().IsRegular() {
			continue
		}
		if n++; n > maxZipEntries {
			return fmt.Errorf("the zip holds more than %d files", maxZipEntries)
		}
		w, err := copyZipFile(zf, filepath.Join(dir, fmt.Sprintf("%05d.dcm", n)), maxBytes-total)
		total += w
		if err != nil {
			return err
		}
	}
	if n == 0 {
		return errors.New("the zip holds no files")
	}
	return nil
}

func copyZipFile(zf *zip.File, dst string, budget int64) (int64, error) {
	rc, err := zf.Open()
	if err != nil {
		return 0, fmt.Errorf("%s in the zip: %v", clip(zf.Name), err)
	}
	defer rc.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	n, err := io.Copy(out, io.LimitReader(rc, budget+1))
	if err != nil {
		return n, fmt.Errorf("%s in the zip: %v", clip(zf.Name), err)
	}
	if n > budget {
		return n, errors.New("the zip unpacks to more than the server allows")
	}
	return n, nil
}

// writeImage stores a CT in the case's folder as NIfTI: int16 when every
// voxel is a whole number of HU in range (most CTs), else float32.
func writeImage(path string, v *volume.Volume) error {
	if err := nifti.WriteVolume(path, v, nifti.WriteOptions{Datatype: nifti.Int16}); err == nil {
		return nil
	}
	return nifti.WriteVolume(path, v, nifti.WriteOptions{})
}
