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
	"math"
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
	items, err := c.qido(ctx, "/studies/"+study+"/series?includefield=00201209&includefield=0008103E")
	if err != nil {
		return nil, err
	}
	var out []Series
	for _, it := range items {
		n, _ := strconv.Atoi(it.str("00201209"))
		out = append(out, Series{UID: it.str("0020000E"), Modality: it.str("00080060"),
			Description: it.str("0008103E"), Number: it.str("00200011"), Instances: n})
	}
	return out, nil
}

// attribute is one attribute of the DICOM JSON model (PS3.18 F.2).
type attribute struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

// dataset is one object of a QIDO-RS answer, by tag (8 hex digits).
type dataset map[string]attribute

// str is an attribute's first value as text ("" when absent).
func (d dataset) str(tag string) string {
	a, ok := d[tag]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) == nil {
		return s
	}
	return strings.Trim(string(a.Value[0]), `"`)
}

// qido runs a QIDO-RS query (path and query below Base).
func (c *Client) qido(ctx context.Context, path string) ([]dataset, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
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
	items, err := decodeDatasets(io.LimitReader(resp.Body, maxJSONBytes))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: %s: QIDO-RS answer is not DICOM JSON: %w", req.URL.Redacted(), err)
	}
	return items, nil
}

// decodeDatasets reads a QIDO-RS answer: a JSON array of datasets.
func decodeDatasets(r io.Reader) ([]dataset, error) {
	var items []dataset
	if err := json.NewDecoder(r).Decode(&items); err != nil {
		return nil, err
	}
	return items, nil
}

// ChooseCT picks the series to segment: the series uid when it is not
// empty, else the axial CT series with the most instances (the thin axial
// reconstruction, as a rule). A series is axial when the orientation of
// one of its instances (QIDO-RS, instance level) has its slice normal
// within about 25° of the patient's feet-head axis; one whose orientation
// the server does not report counts as axial.
func (c *Client) ChooseCT(ctx context.Context, study string, series []Series, uid string) (Series, error) {
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
	for _, s := range ct {
		iop, err := c.orientation(ctx, study, s.UID)
		if err != nil {
			return Series{}, err
		}
		if iop == nil || isAxial(iop) {
			return s, nil
		}
	}
	return Series{}, fmt.Errorf("the study holds no axial CT series (%d CT series, none axial); name one with --series", len(ct))
}

// isAxial reports whether ImageOrientationPatient's slice normal lies
// within about 25° of the z axis.
func isAxial(iop []float64) bool {
	nz := iop[0]*iop[4] - iop[1]*iop[3]
	return math.Abs(nz) > 0.9
}

// orientation asks for one instance's ImageOrientationPatient; nil when
// the server does not give it.
func (c *Client) orientation(ctx context.Context, study, series string) ([]float64, error) {
	items, err := c.qido(ctx, "/studies/"+study+"/series/"+series+"/instances?limit=1&includefield=00200037")
	if err != nil || len(items) == 0 {
		return nil, err
	}
	return items[0].orientation(), nil
}

// orientation is the dataset's ImageOrientationPatient (numbers, or
// decimal strings as some servers send DS); nil when absent or unreadable.
func (d dataset) orientation() []float64 {
	a, ok := d["00200037"]
	if !ok || len(a.Value) != 6 {
		return nil
	}
	iop := make([]float64, 6)
	for i, v := range a.Value {
		if err := json.Unmarshal(v, &iop[i]); err != nil {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil
			}
			if iop[i], err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
				return nil
			}
		}
	}
	return iop
}

// RetrieveSeries fetches every instance of a series (WADO-RS) into dir as
// NNNNN.dcm and returns how many it wrote. It asks for explicit VR little
// endian first, so that a server that can transcode sends compressed
// archives (JPEG 2000...) decompressed, and for the stored transfer
// syntax when the server answers 406 Not Acceptable.
func (c *Client) RetrieveSeries(ctx context.Context, study, series, dir string) (int, error) {
	if err := checkUID(study); err != nil {
		return 0, err
	}
	if err := checkUID(series); err != nil {
		return 0, err
	}
	n, err := c.retrieve(ctx, study, series, dir, explicitVRLittleEndian)
	if errors.Is(err, errNotAcceptable) {
		n, err = c.retrieve(ctx, study, series, dir, "*")
	}
	return n, err
}

const explicitVRLittleEndian = "1.2.840.10008.1.2.1"

var errNotAcceptable = errors.New("not acceptable")

func (c *Client) retrieve(ctx context.Context, study, series, dir, syntax string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/studies/"+study+"/series/"+series, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=`+syntax)
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotAcceptable && syntax != "*" {
		return 0, errNotAcceptable
	}
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
