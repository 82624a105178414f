// Package dicomweb is a small DICOMweb client (PS3.18): QIDO-RS to find a
// study's series, WADO-RS to fetch a series' instances, STOW-RS to store
// instances into a study. It uses only net/http and mime/multipart.
//
// Credentials come from the environment, never from a command line:
// COVSEG_DICOMWEB_TOKEN (sent as "Authorization: Bearer TOKEN"), or
// COVSEG_DICOMWEB_USER and COVSEG_DICOMWEB_PASSWORD (HTTP basic auth).
package dicomweb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits on what a server may send, so that a wrong URL or a broken server
// cannot fill the disk or memory.
const (
	MaxInstanceBytes = 1 << 30 // one instance
	MaxSeriesBytes   = 8 << 30 // one series
	maxJSONBytes     = 64 << 20
)

// Client talks to one DICOMweb service.
type Client struct {
	// Base is the service root, e.g. http://pacs:8042/dicom-web.
	Base string
	HTTP *http.Client
	// token or user/password authenticate each request (from the
	// environment, see the package comment).
	token, user, password string
}

// New returns a client for the service at base, with credentials from the
// environment.
func New(base string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dicomweb: %q is not an http(s) URL", base)
	}
	if u.User != nil {
		return nil, fmt.Errorf("dicomweb: put credentials in COVSEG_DICOMWEB_USER/COVSEG_DICOMWEB_PASSWORD or COVSEG_DICOMWEB_TOKEN, not in the URL")
	}
	return &Client{
		Base:     strings.TrimRight(base, "/"),
		HTTP:     &http.Client{Timeout: 10 * time.Minute},
		token:    os.Getenv("COVSEG_DICOMWEB_TOKEN"),
		user:     os.Getenv("COVSEG_DICOMWEB_USER"),
		password: os.Getenv("COVSEG_DICOMWEB_PASSWORD"),
	}, nil
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dicomweb: %w", err)
	}
	return resp, nil
}

// statusError reads a failed response into an error naming the request.
func statusError(req *http.Request, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	msg := strings.TrimSpace(string(b))
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		msg += " (set COVSEG_DICOMWEB_TOKEN, or COVSEG_DICOMWEB_USER and COVSEG_DICOMWEB_PASSWORD)"
	}
	return fmt.Errorf("dicomweb: %s %s: %s %s", req.Method, req.URL.Redacted(), resp.Status, msg)
}

// Series is one series a QIDO-RS search found.
type Series struct {
	UID         string // SeriesInstanceUID
	Modality    string
	Description string
	Number      string
	Instances   int // NumberOfSeriesRelatedInstances (0 when the server omits it)
}

// SearchSeries lists a study's series (QIDO-RS).
func (c *Client) SearchSeries(ctx context.Context, study string) ([]Series, error) {
	if err := checkUID(study); err != nil {
		return nil, err
	}
	u := c.Base + "/studies/" + study + "/series?includefield=00201209&includefield=0008103E"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(req, resp)
	}
	var items []map[string]struct {
		VR    string            `json:"vr"`
		Value []json.RawMessage `json:"Value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBytes)).Decode(&items); err != nil {
		return nil, fmt.Errorf("dicomweb: %s: QIDO-RS answer is not DICOM JSON: %w", req.URL.Redacted(), err)
	}
	var out []Series
	for _, it := range items {
		str := func(tag string) string {
			a, ok := it[tag]
			if !ok || len(a.Value) == 0 {
				return ""
			}
			var s string
			if json.Unmarshal(a.Value[0], &s) == nil {
				return s
			}
			return strings.Trim(string(a.Value[0]), `"`)
		}
		n, _ := strconv.Atoi(str("00201209"))
		out = append(out, Series{UID: str("0020000E"), Modality: str("00080060"), Description: str("0008103E"), Number: str("00200011"), Instances: n})
	}
	return out, nil
}

// ChooseCT picks the CT series with the most instances (the thin axial
// reconstruction, as a rule), or the series uid when it is not empty.
func ChooseCT(series []Series, uid string) (Series, error) {
	if uid != "" {
		for _, s := range series {
			if s.UID == uid {
				return s, nil
			}
		}
		return Series{}, fmt.Errorf("the study holds no series %s", uid)
	}
	var ct []Series
	for _, s := range series {
		if s.Modality == "CT" {
			ct = append(ct, s)
		}
	}
	if len(ct) == 0 {
		return Series{}, fmt.Errorf("the study holds no CT series (%d series)", len(series))
	}
	sort.SliceStable(ct, func(a, b int) bool { return ct[a].Instances > ct[b].Instances })
	return ct[0], nil
}

// RetrieveSeries fetches every instance of a series (WADO-RS) into dir as
// NNNNN.dcm and returns how many it wrote.
func (c *Client) RetrieveSeries(ctx context.Context, study, series, dir string) (int, error) {
	if err := checkUID(study); err != nil {
		return 0, err
	}
	if err := checkUID(series); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/studies/"+study+"/series/"+series, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, statusError(req, resp)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, "multipart/related") || params["boundary"] == "" {
		return 0, fmt.Errorf("dicomweb: %s: answer is %q, not multipart/related", req.URL.Redacted(), resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(io.LimitReader(resp.Body, MaxSeriesBytes), params["boundary"])
	n := 0
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("dicomweb: %s: part %d: %w", req.URL.Redacted(), n+1, err)
		}
		if err := savePart(part, filepath.Join(dir, fmt.Sprintf("%05d.dcm", n))); err != nil {
			return n, fmt.Errorf("dicomweb: %s: part %d: %w", req.URL.Redacted(), n+1, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("dicomweb: %s: no instances", req.URL.Redacted())
	}
	return n, nil
}

// savePart writes one instance, refusing one larger than MaxInstanceBytes.
func savePart(part io.Reader, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(part, MaxInstanceBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > MaxInstanceBytes {
		err = fmt.Errorf("instance larger than %d bytes", MaxInstanceBytes)
	}
	return err
}

// Store sends DICOM files to the service (STOW-RS) into the study.
func (c *Client) Store(ctx context.Context, study string, files ...string) error {
	if err := checkUID(study); err != nil {
		return err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	if err := mw.SetBoundary("covseg-" + hex.EncodeToString(rnd[:])); err != nil {
		return err
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("dicomweb: %w", err)
		}
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+"/studies/"+study, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// 202: some instances were refused (the answer says which).
		return statusError(req, resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJSONBytes))
	return nil
}

// checkUID refuses what is not a DICOM UID, so that nothing but a UID
// becomes part of a URL path.
func checkUID(uid string) error {
	if uid == "" || len(uid) > 64 {
		return fmt.Errorf("dicomweb: %q is not a DICOM UID", uid)
	}
	for _, r := range uid {
		if r != '.' && (r < '0' || r > '9') {
			return fmt.Errorf("dicomweb: %q is not a DICOM UID (digits and dots only)", uid)
		}
	}
	return nil
}
