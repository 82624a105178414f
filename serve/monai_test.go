package serve

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/covseg/covseg/volume"
)

// TestInfoAuthTrain checks the calls Slicer's MONAI Label extension makes
// when it connects: GET /info/ (models with type, dimension and labels; no
// top-level "config"), GET /auth/ and GET /train/?check_if_running=true.
func TestInfoAuthTrain(t *testing.T) {
	_, ts := newServer(t, Config{Segmenter: thresholdSegmenter(t), Version: "test"})
	var info map[string]any
	getJSON(t, ts.URL+"/info/", &info)
	if _, ok := info["config"]; ok {
		t.Error(`/info/ has a top-level "config": Slicer asks for a server upgrade`)
	}
	for _, k := range []string{"name", "labels", "models", "trainers", "strategies", "scoring", "train_stats", "datastore"} {
		if _, ok := info[k]; !ok {
			t.Errorf("/info/ has no %q", k)
		}
	}
	for _, k := range []string{"trainers", "strategies", "scoring", "train_stats"} {
		if m, ok := info[k].(map[string]any); !ok || len(m) != 0 {
			t.Errorf("/info/ %s = %v, want {}", k, info[k])
		}
	}
	m, ok := info["models"].(map[string]any)[DefaultModelName].(map[string]any)
	if !ok {
		t.Fatalf("/info/ models = %v, want %q", info["models"], DefaultModelName)
	}
	if m["type"] != "segmentation" || m["dimension"] != 3.0 {
		t.Errorf("model type %v dimension %v", m["type"], m["dimension"])
	}
	if labels, _ := m["labels"].(map[string]any); labels["infiltrate"] != 1.0 || len(labels) != 1 {
		t.Errorf("model labels %v, want {infiltrate: 1}", m["labels"])
	}
	if ds, _ := info["datastore"].(map[string]any); ds["total"] != 0.0 {
		t.Errorf("datastore %v", info["datastore"])
	}
	var auth map[string]any
	getJSON(t, ts.URL+"/auth/", &auth)
	if auth["enabled"] != false {
		t.Errorf("/auth/ = %v, want enabled false", auth)
	}
	// Slicer's train_status(check_if_running=True) is "status == 200".
	if st, _, b := do(t, "GET", ts.URL+"/train/?check_if_running=true", "", nil); st == 200 {
		t.Errorf("/train/?check_if_running=true answered 200 (%s): Slicer would think a training runs", b)
	}
}

// TestSlicerUploadInfer uploads a CT as Slicer's client does (a full
// client-side path as the file name, its own multipart boundary), runs
// /infer on it and reads the answer as the client does: the params part's
// label_names and a file part ending .nii.gz, the mask on the CT's grid.
func TestSlicerUploadInfer(t *testing.T) {
	_, ts := newServer(t, Config{Segmenter: thresholdSegmenter(t)})
	ct := synthCT(volume.Dims{21, 18, 7}, 1)
	data := ctBytes(t, ct)
	for _, c := range []struct{ query, filename, id string }{
		{"?image=" + url.QueryEscape("CT chest 1"), `C:\Users\me\Slicer\tmp\CT chest 1.nii.gz`, "CT_chest_1"},
		{"", "/home/me/../../etc/scan.nii.gz", "scan"},
	} {
		ctype, body := slicerMultipart(map[string]string{"params": "{}"}, "file", c.filename, data)
		st, rct, b := do(t, "PUT", ts.URL+"/datastore/"+c.query, ctype, body)
		if st != 200 || !strings.HasPrefix(rct, "application/json") {
			t.Fatalf("upload %s: %d %s", c.filename, st, b)
		}
		var up map[string]string
		if err := json.Unmarshal(b, &up); err != nil || up["image"] != c.id {
			t.Fatalf("upload %s answered %s, want image %q", c.filename, b, c.id)
		}
		ctype, body = slicerMultipart(map[string]string{"params": `{"device": "cpu"}`}, "", "", nil)
		st, rct, b = do(t, "POST", ts.URL+"/infer/"+DefaultModelName+"?image="+url.QueryEscape(c.id), ctype, body)
		if st != 200 {
			t.Fatalf("infer %s: %d %s", c.id, st, b)
		}
		r := parseInfer(t, rct, b)
		var params struct {
			LabelNames map[string]int `json:"label_names"`
		}
		if err := json.Unmarshal([]byte(r.form["params"]), &params); err != nil || params.LabelNames["infiltrate"] != 1 {
			t.Fatalf("params %q: label_names %v (%v)", r.form["params"], params.LabelNames, err)
		}
		if len(r.files) != 1 {
			t.Fatalf("infer answered %d file parts, want 1", len(r.files))
		}
		for name, mask := range r.files {
			if !strings.HasSuffix(name, ".nii.gz") || strings.ContainsAny(name, `/\`) {
				t.Errorf("file part %q: want a base name ending .nii.gz", name)
			}
			if d := thresholdDiff(t, ct, readMask(t, name, mask)); d != 0 {
				t.Errorf("%s: %d voxels differ from the CT's threshold", name, d)
			}
		}
	}
	// The mask and the image are in the datastore, under the same IDs.
	if st, _, _ := do(t, "GET", ts.URL+"/datastore/label?label=scan", "", nil); st != 200 {
		t.Errorf("GET /datastore/label?label=scan: %d", st)
	}
	var stats map[string]any
	getJSON(t, ts.URL+"/datastore/?output=stats", &stats)
	if stats["total"] != 2.0 || stats["completed"] != 2.0 {
		t.Errorf("datastore stats %v, want 2 total, 2 completed", stats)
	}
	// ?output=image answers the mask alone.
	st, _, b := do(t, "POST", ts.URL+"/infer/"+DefaultModelName+"?image=scan&output=image", "", nil)
	if st != 200 || thresholdDiff(t, ct, readMask(t, "output=image", b)) != 0 {
		t.Errorf("output=image: %d", st)
	}
}

// TestAuthToken checks a server with a token: requests without it or with a
// wrong one get 401 with a reason, /auth/ says auth is on, /auth/token
// hands the token for it as password, and the right bearer token passes.
func TestAuthToken(t *testing.T) {
	const token = "s3cret-token-0123456789"
	_, ts := newServer(t, Config{Token: token})
	var auth map[string]any
	getJSON(t, ts.URL+"/auth/", &auth)
	if auth["enabled"] != true {
		t.Errorf("/auth/ = %v, want enabled", auth)
	}
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", token}} {
		st, _, b := do(t, "GET", ts.URL+"/info/", "", nil, h...)
		if st != 401 || !strings.Contains(string(b), "token") {
			t.Errorf("header %v: %d %s, want 401 naming the token", h, st, b)
		}
	}
	for _, scheme := range []string{"Bearer ", "bearer "} { // Slicer sends the token_type it got: "bearer"
		if st, _, _ := do(t, "GET", ts.URL+"/info/", "", nil, "Authorization", scheme+token); st != 200 {
			t.Errorf("right token (%q): %d", scheme, st)
		}
	}
	if st, _, _ := do(t, "GET", ts.URL+"/auth/token/valid", "", nil, "Authorization", "bearer "+token); st != 200 {
		t.Errorf("/auth/token/valid with the token: %d", st)
	}
	if st, _, _ := do(t, "GET", ts.URL+"/auth/token/valid", "", nil, "Authorization", "bearer nope"); st != 401 {
		t.Errorf("/auth/token/valid with a wrong token: %d", st)
	}
	st, _, b := do(t, "POST", ts.URL+"/auth/token", "application/x-www-form-urlencoded", []byte("username=me&password="+token))
	var tok map[string]any
	if st != 200 || json.Unmarshal(b, &tok) != nil || tok["access_token"] != token {
		t.Errorf("/auth/token: %d %s", st, b)
	}
	if st, _, _ := do(t, "POST", ts.URL+"/auth/token", "application/x-www-form-urlencoded", []byte("username=me&password=nope")); st != 401 {
		t.Errorf("/auth/token with a wrong password: %d", st)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8000", "", true},
		{"[::1]:8000", "", true},
		{"localhost:8000", "", true},
		{":8000", "", false},
		{"0.0.0.0:8000", "", false},
		{"192.168.1.5:8000", "", false},
		{"0.0.0.0:8000", "some-long-token-123", true},
	} {
		if err := CheckAddr(c.addr, c.token); (err == nil) != c.ok {
			t.Errorf("CheckAddr(%q, %q) = %v", c.addr, c.token, err)
		}
	}
}

func TestSafeID(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"case1.nii.gz", "case1"},
		{`C:\data\Patient 7\ct.NII.GZ`, "ct"},
		{"/abs/path/x.zip", "x"},
		{"../../etc/passwd", "passwd"},
		{"a b;c$(rm)", "a_b_c__rm_"},
		{"dots..inside", "dots..inside"},
		{strings.Repeat("x", 300), strings.Repeat("x", 55) + "-"},
	} {
		got, err := SafeID(c.in)
		if err != nil || !strings.HasPrefix(got, c.want) || (len(c.in) < 100 && got != c.want) {
			t.Errorf("SafeID(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if len(got) > maxIDLen {
			t.Errorf("SafeID(%q) is %d long", c.in, len(got))
		}
	}
	for _, bad := range []string{"", ".", "..", "../", "x/..", ".hidden", "a\x00b", "/", "___"} {
		if id, err := SafeID(bad); err == nil {
			t.Errorf("SafeID(%q) = %q, want an error", bad, id)
		}
	}
}

// FuzzSafeID checks that whatever a client sends, an accepted ID is a
// plain folder name.
func FuzzSafeID(f *testing.F) {
	for _, s := range []string{"a.nii.gz", "../x", `..\..\y`, "\x00", "ü.nii"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := SafeID(s)
		if err != nil {
			return
		}
		if id == "" || id == "." || id == ".." || strings.HasPrefix(id, ".") || len(id) > maxIDLen {
			t.Fatalf("SafeID(%q) = %q", s, id)
		}
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				t.Fatalf("SafeID(%q) = %q holds %q", s, id, r)
			}
		}
	})
}

// TestGetWithStaleContentLength sends what Slicer's client sends after an
// upload: a GET with the upload's Content-Length and no body. The answer
// must come at once, not after the server waited for the body.
func TestGetWithStaleContentLength(t *testing.T) {
	_, ts := newServer(t, Config{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /datastore/?output=all HTTP/1.1\r\nHost: x\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: 106033\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a GET with a stale Content-Length: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), "objects") {
		t.Errorf("answer %d %s (%v)", resp.StatusCode, b, err)
	}
}
