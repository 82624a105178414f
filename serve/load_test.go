package serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/procstat"
	"github.com/covseg/covseg/volume"
)

// TestLoad runs 16 concurrent clients on loopback, each uploading and
// segmenting 5 CTs of its own, against 2 workers, a queue of 4 and 4 upload
// slots: every request ends in its result or a 503 (which the client
// retries after a pause growing to 250 ms, at most 1000 times and for 3
// minutes in all), none is lost, every client gets
// the mask of its own CT, and the server's heap stays bounded.
func TestLoad(t *testing.T) {
	const clients, perClient, maxTries = 16, 5, 1000
	_, ts := newServer(t, Config{Segmenter: thresholdSegmenter(t), Workers: 2, QueueSize: 4, UploadSlots: 4})
	stop := procstat.StartPeakHeap()
	deadline := time.Now().Add(3 * time.Minute)
	var mu sync.Mutex
	statuses := map[int]int{}
	count := func(st int) {
		mu.Lock()
		statuses[st]++
		mu.Unlock()
	}
	// try repeats a request while it answers 503, and returns the last answer.
	try := func(c int, method, url, ctype string, body []byte) (int, string, []byte) {
		for n := 1; ; n++ {
			st, ct, b := do(t, method, url, ctype, body)
			count(st)
			if st != http.StatusServiceUnavailable || n == maxTries || time.Now().After(deadline) {
				return st, ct, b
			}
			time.Sleep(time.Duration(min(20*n, 250)+c*3%17) * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perClient {
				id := fmt.Sprintf("client%02d-%d", c, n)
				ct := synthCT(volume.Dims{10 + c%3, 9, 5 + n%2}, uint64(1000*c+n))
				ctype, body := slicerMultipart(map[string]string{"params": "{}"}, "file", "/tmp/"+id+".nii.gz", ctBytes(t, ct))
				if st, _, b := try(c, "PUT", ts.URL+"/datastore/", ctype, body); st != 200 {
					t.Errorf("%s: upload ended %d %s", id, st, b)
					return
				}
				st, rct, b := try(c, "POST", ts.URL+"/infer/"+DefaultModelName+"?image="+id, "", nil)
				if st != 200 {
					t.Errorf("%s: infer ended %d %s", id, st, b)
					return
				}
				r := parseInfer(t, rct, b)
				mask, ok := r.files[id+"_seg.nii.gz"]
				if !ok || len(r.files) != 1 {
					t.Errorf("%s: answer holds files %v", id, keys(r.files))
					return
				}
				if d := thresholdDiff(t, ct, readMask(t, id, mask)); d != 0 {
					t.Errorf("%s: %d voxels differ from its own CT's threshold: a mixed-up answer", id, d)
				}
			}
		}()
	}
	wg.Wait()
	peak := stop()
	t.Logf("statuses %v; peak heap %.1f MiB", statuses, float64(peak)/(1<<20))
	for st := range statuses {
		if st != 200 && st != 503 {
			t.Errorf("a request ended %d", st)
		}
	}
	if statuses[200] != 2*clients*perClient {
		t.Errorf("%d requests succeeded, want %d", statuses[200], 2*clients*perClient)
	}
	if peak > 512<<20 {
		t.Errorf("peak heap %d MiB", peak>>20)
	}
}

func keys[V any](m map[string]V) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

// serverProcessEnv makes the test binary run as a server process for
// TestKillRestart (see TestMain): the value is "DIR MODEL", the datastore
// folder and the threshold model's ONNX file.
const serverProcessEnv = "COVSEG_SERVE_TEST_PROCESS"

// TestMain runs the tests, or with serverProcessEnv set serves on a loopback
// port it prints until killed. The server's model holds some CTs forever,
// so that the kill comes in the middle of a job.
func TestMain(m *testing.M) {
	arg := os.Getenv(serverProcessEnv)
	if arg == "" {
		os.Exit(m.Run())
	}
	dir, modelPath, _ := strings.Cut(arg, " ")
	if err := serveChild(dir, modelPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func serveChild(dir, modelPath string) error {
	eng, err := infer.OpenEngine(modelPath, infer.EngineOptions{Threads: 1})
	if err != nil {
		return err
	}
	seg, err := infer.New(eng, infer.DefaultOptions())
	if err != nil {
		return err
	}
	s, err := New(Config{Dir: dir, Segmenter: holdSegmenter{seg}})
	if err != nil {
		return err
	}
	return ListenAndServe(context.Background(), "127.0.0.1:0", s.Handler(), 0, func(a net.Addr) {
		fmt.Printf("listening on http://%s/\n", a)
	})
}

// holdSegmenter never finishes a CT whose first dimension is holdDim: the
// kill of TestKillRestart comes while it runs.
type holdSegmenter struct{ *infer.Segmenter }

const holdDim = 13

func (h holdSegmenter) Segment(v *volume.Volume) (*infer.Result, error) {
	if v.Dims[0] == holdDim {
		select {}
	}
	return h.Segmenter.Segment(v)
}

// TestKillRestart kills a server process (SIGKILL) while a job runs, one
// waits in the queue and an upload is half sent, then opens its datastore
// again: no temporary or half-written file is left, the finished case is
// served as it was, and the interrupted cases are queued again and end in
// their masks.
func TestKillRestart(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serverProcessEnv+"="+dir+" "+thresholdModel(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base, err := readURL(stdout)
	if err != nil {
		t.Fatal(err)
	}
	cts := map[string]*volume.Volume{
		"done": synthCT(volume.Dims{10, 9, 5}, 1), "held": synthCT(volume.Dims{holdDim, 9, 5}, 2), "queued": synthCT(volume.Dims{11, 9, 5}, 3),
	}
	for _, id := range []string{"done", "held", "queued"} {
		ctype, body := slicerMultipart(nil, "file", id+".nii.gz", ctBytes(t, cts[id]))
		if st, _, b := do(t, "PUT", base+"/datastore/", ctype, body); st != 200 {
			t.Fatalf("upload %s: %d %s", id, st, b)
		}
	}
	if st, _, b := do(t, "POST", base+"/infer/"+DefaultModelName+"?image=done", "", nil); st != 200 {
		t.Fatalf("infer done: %d %s", st, b)
	}
	for _, id := range []string{"held", "queued"} {
		if st, _, b := do(t, "POST", base+"/api/cases/"+id+"/segment", "", nil); st != 202 {
			t.Fatalf("segment %s: %d %s", id, st, b)
		}
	}
	waitState(t, base, "held", StateRunning)
	// Half an upload: the body stops in the middle of the file.
	pr, pw := io.Pipe()
	ctype, body := slicerMultipart(nil, "file", "partial.nii.gz", ctBytes(t, synthCT(volume.Dims{40, 40, 20}, 4)))
	go func() {
		req, _ := http.NewRequest("PUT", base+"/datastore/?image=partial", pr)
		req.Header.Set("Content-Type", ctype)
		req.ContentLength = int64(len(body))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write(body[:len(body)/2])
	waitFiles(t, filepath.Join(dir, "tmp"))
	done := mustRead(t, filepath.Join(dir, "cases", "done", FileMask))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	pw.CloseWithError(errors.New("server killed"))

	_, ts := newServer(t, Config{Dir: dir, Segmenter: thresholdSegmenter(t)})
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("the restart left %d uploads in tmp/", len(tmp))
	}
	st, _, b := do(t, "GET", ts.URL+"/datastore/label?label=done", "", nil)
	if st != 200 || !bytes.Equal(b, done) {
		t.Errorf("the finished case's mask after the restart: %d, %d bytes (was %d)", st, len(b), len(done))
	}
	for _, id := range []string{"held", "queued"} {
		waitState(t, ts.URL, id, StateDone)
		_, _, m := do(t, "GET", ts.URL+"/datastore/label?label="+id, "", nil)
		if d := thresholdDiff(t, cts[id], readMask(t, id, m)); d != 0 {
			t.Errorf("%s: %d voxels off after the restart", id, d)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cases", "partial")); err == nil {
		t.Error("the half-sent upload became a case")
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary file %s left in the datastore", p)
		}
		return nil
	})
}

// readURL reads the child server's "listening on URL/" line.
func readURL(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			go io.Copy(io.Discard, r)
			return strings.TrimSuffix(u, "/"), nil
		}
	}
	return "", errors.New("the server process printed no address")
}

func waitState(t *testing.T, base, id, state string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var c Case
		getJSON(t, base+"/api/cases/"+id, &c)
		if c.State == state {
			return
		}
		if time.Now().After(deadline) || c.State == StateFailed {
			t.Fatalf("case %s is %s (%s), want %s", id, c.State, c.Error, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFiles waits until dir holds something.
func waitFiles(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if e, _ := os.ReadDir(dir); len(e) > 0 {
			return
		}
	}
	t.Fatalf("nothing appeared in %s", dir)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCloseLeavesQueued closes a server while one job runs and one waits:
// the running one finishes, the waiting one stays queued in its record and
// the next server on the datastore runs it.
func TestCloseLeavesQueued(t *testing.T) {
	dir := t.TempDir()
	g := gatedSegmenter{thresholdSegmenter(t), make(chan struct{}), make(chan struct{}, 4)}
	s, ts := newServer(t, Config{Dir: dir, Segmenter: g})
	cts := map[string]*volume.Volume{"first": synthCT(volume.Dims{6, 5, 4}, 7), "second": synthCT(volume.Dims{7, 5, 4}, 8)}
	for _, id := range []string{"first", "second"} {
		ctype, body := slicerMultipart(nil, "file", id+".nii.gz", ctBytes(t, cts[id]))
		if st, _, b := do(t, "PUT", ts.URL+"/datastore/", ctype, body); st != 200 {
			t.Fatalf("upload %s: %d %s", id, st, b)
		}
		if st, _, b := do(t, "POST", ts.URL+"/api/cases/"+id+"/segment", "", nil); st != 202 {
			t.Fatalf("segment %s: %d %s", id, st, b)
		}
	}
	<-g.started
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	for !s.stopping.Load() {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	<-closed
	for id, want := range map[string]string{"first": StateDone, "second": StateQueued} {
		if c, err := s.st.get(id); err != nil || c.State != want {
			t.Errorf("%s after Close: %+v (%v), want %s", id, c, err, want)
		}
	}
	_, ts2 := newServer(t, Config{Dir: dir, Segmenter: thresholdSegmenter(t)})
	waitState(t, ts2.URL, "second", StateDone)
	_, _, m := do(t, "GET", ts2.URL+"/datastore/label?label=second", "", nil)
	if d := thresholdDiff(t, cts["second"], readMask(t, "second", m)); d != 0 {
		t.Errorf("%d voxels off", d)
	}
}
