package serve

import (
	"archive/zip"
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/covseg/covseg/volume"
)

// FuzzUpload sends arbitrary bytes as an uploaded CT: the server answers
// 200 (a readable NIfTI), 400 (with a reason) or 413, never fails or panics.
func FuzzUpload(f *testing.F) {
	good := ctBytes(f, synthCT(volume.Dims{4, 3, 2}, 1))
	f.Add(good)
	f.Add(good[:200])
	f.Add([]byte("PK\x03\x04garbage"))
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("a.dcm")
	w.Write([]byte("DICM"))
	zw.Close()
	f.Add(zb.Bytes())
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	s, err := New(Config{Dir: f.TempDir(), MaxUpload: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, data []byte) {
		ctype, body := slicerMultipart(nil, "file", "fuzz.nii.gz", data)
		req := httptest.NewRequest("PUT", "/datastore/?image=fuzz", bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("upload of %d bytes: %d %s", len(data), rec.Code, rec.Body.Bytes())
		}
		if rec.Code == http.StatusBadRequest && !bytes.Contains(rec.Body.Bytes(), []byte(`"detail"`)) {
			t.Fatalf("400 without a reason: %s", rec.Body.Bytes())
		}
	})
}
