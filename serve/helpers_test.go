package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// thresholdHU is the threshold model's: its mask is HU > thresholdHU.
const thresholdHU = -500.5

// testSpacing is the synthetic CTs' voxel size, and the sliding model's,
// so that the model's mask is the CT's threshold voxel for voxel.
var testSpacing = [3]float64{1.5, 1.25, 2}

// thresholdSegmenter is a real ONNX Runtime segmenter with the threshold
// network of package infertest on a small patch.
func thresholdSegmenter(t testing.TB) *infer.Segmenter {
	t.Helper()
	e, err := infer.OpenEngine(thresholdModel(t), infer.EngineOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	s, err := infer.New(e, infer.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// thresholdModel writes the threshold network of package infertest, on a
// small patch at the synthetic CTs' spacing, and returns its path.
func thresholdModel(t testing.TB) string {
	t.Helper()
	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{8, 16, 16}
	cfg.Preprocess.Mode = model.ModeSpacing
	cfg.Preprocess.Spacing = [3]float64{testSpacing[2], testSpacing[1], testSpacing[0]}
	return infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, thresholdHU)
}

// synthCT is a small CT of random whole HU with an oblique-free affine that
// is not the identity.
func synthCT(d volume.Dims, seed uint64) *volume.Volume {
	a := volume.Diag(testSpacing, [3]float64{-17.5, 40.25, -120})
	a[0][0] = -testSpacing[0] // LAS: i runs to the patient's left
	v, _ := volume.New(d, a)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range v.Data {
		v.Data[i] = float32(math.Round(-1000 + 1500*rng.Float64()))
	}
	return v
}

// writeCT writes v as a NIfTI file and returns its bytes.
func ctBytes(t testing.TB, v *volume.Volume) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ct.nii.gz")
	if err := nifti.WriteVolume(p, v, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newServer starts a Server on a loopback httptest server.
func newServer(t testing.TB, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler()) // 127.0.0.1
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

// slicerBoundary is the boundary Slicer's MONAILabelClient writes.
const slicerBoundary = "----------lImIt_of_THE_fIle_eW_$"

// slicerMultipart encodes fields and one file part as Slicer's
// MONAILabelClient.encode_multipart_formdata does: its own boundary, CRLF
// lines, the file part's filename the path the client was given.
func slicerMultipart(fields map[string]string, part, filename string, data []byte) (string, []byte) {
	var b bytes.Buffer
	for k, v := range fields {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", slicerBoundary, k, v)
	}
	if part != "" {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n", slicerBoundary, part, filename)
		b.Write(data)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", slicerBoundary)
	return "multipart/form-data; boundary=" + slicerBoundary, b.Bytes()
}

// do sends a request and returns the status, the content type and the body.
func do(t testing.TB, method, url, ctype string, body []byte, header ...string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// getJSON GETs url and decodes a 200 answer.
func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	st, ct, b := do(t, "GET", url, "", nil)
	if st != 200 || !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: %d %s: %s", url, st, ct, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// inferReply is an /infer answer read as Slicer's client reads it
// (cgi.FieldStorage): fields without a filename by name, file parts by
// filename.
type inferReply struct {
	form  map[string]string
	files map[string][]byte
}

func parseInfer(t testing.TB, ctype string, body []byte) inferReply {
	t.Helper()
	mt, p, err := mime.ParseMediaType(ctype)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("infer answered %q, want multipart/form-data", ctype)
	}
	r := inferReply{form: map[string]string{}, files: map[string][]byte{}}
	mr := multipart.NewReader(bytes.NewReader(body), p["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return r
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		if part.FileName() != "" {
			r.files[part.FileName()] = b
		} else {
			r.form[part.FormName()] = string(b)
		}
	}
}

// readMask decodes a NIfTI mask from bytes.
func readMask(t testing.TB, name string, b []byte) *volume.Label {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mask.nii.gz")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := nifti.ReadLabel(p)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// thresholdDiff counts the voxels where m is not v's threshold, after
// checking that m lies on v's grid.
func thresholdDiff(t testing.TB, v *volume.Volume, m *volume.Label) int {
	t.Helper()
	if m.Dims != v.Dims {
		t.Fatalf("mask dims %v, CT dims %v", m.Dims, v.Dims)
	}
	for i := range 3 {
		for j := range 4 {
			if math.Abs(m.Affine[i][j]-v.Affine[i][j]) > 1e-4 {
				t.Fatalf("mask affine %v, CT affine %v", m.Affine, v.Affine)
			}
		}
	}
	diff := 0
	for i, x := range v.Data {
		want := uint8(0)
		if float64(x) > thresholdHU {
			want = 1
		}
		if m.Data[i] != want {
			diff++
		}
	}
	return diff
}

var httpClient = http.DefaultClient

func newRequest(method, url string) (*http.Request, error) { return http.NewRequest(method, url, nil) }
