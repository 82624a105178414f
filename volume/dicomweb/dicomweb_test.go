package dicomweb

import (
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePACS answers the few DICOMweb requests the client makes, on
// loopback (httptest listens on 127.0.0.1 only).
func fakePACS(t *testing.T, auth *string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /studies/1.2/series", func(w http.ResponseWriter, r *http.Request) {
		*auth = r.Header.Get("Authorization")
		if r.Header.Get("Accept") != "application/dicom+json" {
			http.Error(w, "accept", http.StatusNotAcceptable)
			return
		}
		fmt.Fprint(w, `[
 {"0020000E":{"vr":"UI","Value":["1.2.10"]},"00080060":{"vr":"CS","Value":["CT"]},"00201209":{"vr":"IS","Value":[300]}},
 {"0020000E":{"vr":"UI","Value":["1.2.20"]},"00080060":{"vr":"CS","Value":["CT"]},"00201209":{"vr":"IS","Value":[120]},"0008103E":{"vr":"LO","Value":["axial"]}},
 {"0020000E":{"vr":"UI","Value":["1.2.30"]},"00080060":{"vr":"CS","Value":["SR"]},"00201209":{"vr":"IS","Value":[900]}}]`)
	})
	// 1.2.10 is sagittal, 1.2.20 axial.
	mux.HandleFunc("GET /studies/1.2/series/1.2.10/instances", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"00200037":{"vr":"DS","Value":[0,1,0,0,0,-1]}}]`)
	})
	mux.HandleFunc("GET /studies/1.2/series/1.2.20/instances", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"00200037":{"vr":"DS","Value":[1,0,0,0,1,0]}}]`)
	})
	mux.HandleFunc("GET /studies/1.2/series/1.2.20", func(w http.ResponseWriter, r *http.Request) {
		// This server cannot transcode: it sends only what it stores.
		if !strings.HasSuffix(r.Header.Get("Accept"), "transfer-syntax=*") {
			http.Error(w, "cannot transcode", http.StatusNotAcceptable)
			return
		}
		mw := multipart.NewWriter(w)
		w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
		for i := range 3 {
			p, _ := mw.CreatePart(map[string][]string{"Content-Type": {"application/dicom"}})
			fmt.Fprintf(p, "instance %d", i)
		}
		mw.Close()
	})
	mux.HandleFunc("GET /studies/1.2/series/1.2.99", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html>not DICOMweb</html>")
	})
	mux.HandleFunc("POST /studies/1.2", func(w http.ResponseWriter, r *http.Request) {
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/related" || params["type"] != "application/dicom" {
			http.Error(w, "content type", http.StatusUnsupportedMediaType)
			return
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		n := 0
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil || p.Header.Get("Content-Type") != "application/dicom" {
				http.Error(w, "part", http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(p)
			if string(b) != fmt.Sprintf("file %d", n) {
				http.Error(w, "body", http.StatusBadRequest)
				return
			}
			n++
		}
		if n != 2 {
			http.Error(w, "count", http.StatusConflict)
			return
		}
		fmt.Fprint(w, `{}`)
	})
	mux.HandleFunc("GET /studies/9.9/series", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestSearchChooseRetrieveStore(t *testing.T) {
	var auth string
	srv := fakePACS(t, &auth)
	t.Setenv("COVSEG_DICOMWEB_TOKEN", "tok")
	c, err := New(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	series, err := c.SearchSeries(ctx, "1.2")
	if err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer tok" {
		t.Errorf("Authorization %q", auth)
	}
	if len(series) != 3 || series[0].Instances != 300 || series[1].Description != "axial" {
		t.Fatalf("series %+v", series)
	}
	s, err := c.ChooseCT(ctx, "1.2", series, "")
	if err != nil || s.UID != "1.2.20" {
		t.Fatalf("chose %+v (%v), want the axial 1.2.20 over the larger sagittal", s, err)
	}
	if _, err := c.ChooseCT(ctx, "1.2", series, "1.2.77"); err == nil {
		t.Fatal("a series that is not there was chosen")
	}
	dir := t.TempDir()
	n, err := c.RetrieveSeries(ctx, "1.2", "1.2.20", dir)
	if err != nil || n != 3 {
		t.Fatalf("retrieved %d (%v)", n, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "00002.dcm")); string(b) != "instance 2" {
		t.Fatalf("instance 2 holds %q", b)
	}
	if _, err := c.RetrieveSeries(ctx, "1.2", "1.2.99", dir); err == nil || !strings.Contains(err.Error(), "not multipart/related") {
		t.Fatalf("non-multipart answer: %v", err)
	}
	var files []string
	for i := range 2 {
		p := filepath.Join(dir, fmt.Sprintf("out%d.dcm", i))
		os.WriteFile(p, []byte(fmt.Sprintf("file %d", i)), 0o644)
		files = append(files, p)
	}
	if err := c.Store(ctx, "1.2", files...); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(ctx, "1.2", files[0]); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("refused store: %v", err)
	}
}

func TestAuthAndBadInput(t *testing.T) {
	var auth string
	srv := fakePACS(t, &auth)
	t.Setenv("COVSEG_DICOMWEB_TOKEN", "")
	t.Setenv("COVSEG_DICOMWEB_USER", "u")
	t.Setenv("COVSEG_DICOMWEB_PASSWORD", "p")
	c, _ := New(srv.URL)
	if _, err := c.SearchSeries(context.Background(), "1.2"); err != nil || auth != "Basic dTpw" {
		t.Fatalf("basic auth %q (%v)", auth, err)
	}
	_, err := c.SearchSeries(context.Background(), "9.9")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "COVSEG_DICOMWEB_TOKEN") {
		t.Fatalf("401: %v", err)
	}
	for _, uid := range []string{"", "1.2/../x", "1.2?x", strings.Repeat("1", 65)} {
		if _, err := c.SearchSeries(context.Background(), uid); err == nil {
			t.Errorf("UID %q accepted", uid)
		}
	}
	for _, base := range []string{"ftp://x", "http://u:p@host/dicom-web", "nohost"} {
		if _, err := New(base); err == nil {
			t.Errorf("base %q accepted", base)
		}
	}
}
