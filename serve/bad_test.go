package serve

import (
	"archive/zip"
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/volume"
)

// TestBadInput sends hostile and broken uploads: each gets its status and
// a message naming the problem, nothing lands outside the datastore, and the
// server goes on serving.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	s, ts := newServer(t, Config{Dir: dir, Segmenter: thresholdSegmenter(t), MaxUpload: 1 << 20})
	good := ctBytes(t, synthCT(volume.Dims{9, 8, 5}, 2))
	var zipNoDICOM bytes.Buffer
	zw := zip.NewWriter(&zipNoDICOM)
	w, _ := zw.Create("../../notes.txt")
	w.Write([]byte("not a DICOM file"))
	zw.Close()
	big := bytes.Repeat([]byte{0x1f}, 2<<20)
	for _, c := range []struct {
		name, query, filename string
		data                  []byte
		status                int
		says                  string
	}{
		{"truncated NIfTI", "?image=trunc", "t.nii.gz", good[:len(good)/2], 400, "not a readable NIfTI"},
		{"text file", "?image=txt", "notes.txt", []byte("hello, this is not a CT at all"), 400, "expected a NIfTI file"},
		{"zip without DICOM", "?image=zip", "series.zip", zipNoDICOM.Bytes(), 400, "no readable DICOM series"},
		{"oversized", "?image=big", "big.nii.gz", big, 413, "limit of 1048576 bytes"},
		{"traversal ID", "?image=" + url.QueryEscape("../../evil"), "x.nii.gz", good, 400, "image"},
		{"NUL in ID", "?image=a%00b", "x.nii.gz", good, 400, "NUL"},
		{"dot ID", "?image=..", "x.nii.gz", good, 400, "no usable case ID"},
		{"hidden file name", "", ".nii.gz", good, 400, "no usable case ID"},
		{"long name", "", strings.Repeat("A", 5000) + ".nii.gz", good, 200, ""},
		{"traversal file name", "", "../../../escaped.nii.gz", good, 200, `"escaped"`},
	} {
		ctype, body := slicerMultipart(nil, "file", c.filename, c.data)
		st, _, b := do(t, "PUT", ts.URL+"/datastore/"+c.query, ctype, body)
		if st != c.status || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: %d %s; want %d saying %q", c.name, st, b, c.status, c.says)
		}
	}
	if st, _, b := do(t, "PUT", ts.URL+"/datastore/?image=x", "application/json", []byte("{}")); st != 400 || !strings.Contains(string(b), "multipart") {
		t.Errorf("JSON body: %d %s", st, b)
	}
	if st, _, b := do(t, "POST", ts.URL+"/infer/"+DefaultModelName+"?image=nosuch", "", nil); st != 404 {
		t.Errorf("infer of a missing image: %d %s", st, b)
	}
	if st, _, _ := do(t, "POST", ts.URL+"/infer/other?image=escaped", "", nil); st != 404 {
		t.Errorf("infer with an unknown model: %d", st)
	}
	// Only case folders with safe names, and nothing else, in the datastore.
	err := filepath.WalkDir(filepath.Dir(dir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !strings.HasPrefix(p, dir) && d.Name() == "escaped" {
			t.Errorf("%s escaped the datastore", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := s.st.ids()
	if len(ids) != 2 || ids[1] != "escaped" || len(ids[0]) != maxIDLen {
		t.Errorf("cases %q, want the long name's safe ID and \"escaped\"", ids)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("%d uploads left in tmp/", len(tmp))
	}
	var info map[string]any
	getJSON(t, ts.URL+"/info/", &info) // still serving
}

// gatedSegmenter holds every Segment call until the gate opens, so that a
// test can fill the queue deterministically.
type gatedSegmenter struct {
	*infer.Segmenter
	gate    chan struct{}
	started chan struct{}
}

func (g gatedSegmenter) Segment(v *volume.Volume) (*infer.Result, error) {
	g.started <- struct{}{}
	<-g.gate
	return g.Segmenter.Segment(v)
}

// TestQueueFull fills one worker and a queue of one: the next request gets
// 503 with Retry-After, and the held ones still end in their masks.
func TestQueueFull(t *testing.T) {
	g := gatedSegmenter{thresholdSegmenter(t), make(chan struct{}), make(chan struct{}, 4)}
	_, ts := newServer(t, Config{Segmenter: g, QueueSize: 1, Workers: 1})
	cts := map[string]*volume.Volume{}
	for i, id := range []string{"a", "b", "c"} {
		cts[id] = synthCT(volume.Dims{6, 5, 4}, uint64(10+i))
		ctype, body := slicerMultipart(nil, "file", id+".nii.gz", ctBytes(t, cts[id]))
		if st, _, b := do(t, "PUT", ts.URL+"/datastore/", ctype, body); st != 200 {
			t.Fatalf("upload %s: %d %s", id, st, b)
		}
	}
	var wg sync.WaitGroup
	results := map[string]int{}
	var mu sync.Mutex
	infer := func(id string) {
		defer wg.Done()
		st, ct, b := do(t, "POST", ts.URL+"/infer/"+DefaultModelName+"?image="+id, "", nil)
		mu.Lock()
		results[id] = st
		mu.Unlock()
		if st == 200 {
			r := parseInfer(t, ct, b)
			if d := thresholdDiff(t, cts[id], readMask(t, id, r.files[id+"_seg.nii.gz"])); d != 0 {
				t.Errorf("%s: %d voxels off", id, d)
			}
		}
	}
	wg.Add(1)
	go infer("a")
	<-g.started // a runs
	wg.Add(1)
	go infer("b")
	deadline := time.Now().Add(10 * time.Second)
	for { // until b waits in the queue
		var c Case
		getJSON(t, ts.URL+"/api/cases/b", &c)
		if c.State == StateQueued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never queued")
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, _ := newRequest("POST", ts.URL+"/infer/"+DefaultModelName+"?image=c")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("c with a full queue: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(g.gate)
	wg.Wait()
	if results["a"] != 200 || results["b"] != 200 {
		t.Errorf("held requests ended %v, want 200", results)
	}
}

// TestInferTimeout: a job slower than InferTimeout answers 504 naming where
// its result will be; the job goes on and its mask lands in the datastore.
func TestInferTimeout(t *testing.T) {
	g := gatedSegmenter{thresholdSegmenter(t), make(chan struct{}), make(chan struct{}, 4)}
	_, ts := newServer(t, Config{Segmenter: g, InferTimeout: 100 * time.Millisecond})
	ct := synthCT(volume.Dims{6, 5, 4}, 5)
	ctype, body := slicerMultipart(nil, "file", "slow.nii.gz", ctBytes(t, ct))
	if st, _, b := do(t, "PUT", ts.URL+"/datastore/", ctype, body); st != 200 {
		t.Fatalf("upload: %d %s", st, b)
	}
	st, _, b := do(t, "POST", ts.URL+"/infer/"+DefaultModelName+"?image=slow", "", nil)
	if st != 504 || !strings.Contains(string(b), "/api/cases/slow") {
		t.Errorf("slow infer: %d %s, want 504 naming /api/cases/slow", st, b)
	}
	close(g.gate)
	waitState(t, ts.URL, "slow", StateDone)
	_, _, m := do(t, "GET", ts.URL+"/datastore/label?label=slow", "", nil)
	if d := thresholdDiff(t, ct, readMask(t, "slow", m)); d != 0 {
		t.Errorf("%d voxels off", d)
	}
}

// TestInferInlineFile sends the CT inside the /infer request (MONAI Label's
// "file" part) instead of uploading it first.
func TestInferInlineFile(t *testing.T) {
	_, ts := newServer(t, Config{Segmenter: thresholdSegmenter(t)})
	ct := synthCT(volume.Dims{7, 6, 5}, 6)
	ctype, body := slicerMultipart(map[string]string{"params": "{}"}, "file", `C:\tmp\inline.nii.gz`, ctBytes(t, ct))
	st, rct, b := do(t, "POST", ts.URL+"/infer/"+DefaultModelName, ctype, body)
	if st != 200 {
		t.Fatalf("infer with a file part: %d %s", st, b)
	}
	r := parseInfer(t, rct, b)
	if d := thresholdDiff(t, ct, readMask(t, "inline", r.files["inline_seg.nii.gz"])); d != 0 {
		t.Errorf("%d voxels off", d)
	}
}
