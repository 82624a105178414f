// Package orthanctest runs a real PACS for tests: Debian's Orthanc with
// its DICOMweb plugin, with its own configuration and storage in a
// temporary folder, inside a private network namespace (unshare -n, or
// unshare -rn when not root; then lo brought up) so that nothing outside the machine can reach it:
// Orthanc 1.10 cannot bind 127.0.0.1 alone.
//
// A test calls Start first thing. Outside the namespace Start re-runs that
// one test in a fresh namespace, reports its outcome and returns nil (the
// caller then returns); inside, it starts Orthanc and returns it. Missing
// Orthanc, plugin or unshare fail the test under CI (CI set) and skip it
// elsewhere.
package orthanctest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/covseg/covseg/internal/testutil"
)

// Plugin is where Debian's orthanc-dicomweb puts the DICOMweb plugin.
const Plugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

const netnsEnv = "COVSEG_ORTHANC_NETNS"

// Server is a running Orthanc.
type Server struct {
	URL      string // REST root, e.g. http://127.0.0.1:8042
	DICOMweb string // DICOMweb root
}

// Start returns a running Orthanc inside the test's network namespace, or
// nil after running the test in one (see the package comment).
func Start(t *testing.T) *Server {
	t.Helper()
	orthanc := testutil.Tool(t, "Orthanc", "orthanc")
	if _, err := os.Stat(Plugin); err != nil {
		testutil.Missing(t, "the Orthanc DICOMweb plugin "+Plugin, "orthanc-dicomweb")
	}
	if os.Getenv(netnsEnv) != "1" {
		rerun(t)
		return nil
	}
	return start(t, orthanc)
}

// rerun runs this test alone in a new user and network namespace whose
// only interface is loopback.
func rerun(t *testing.T) {
	t.Helper()
	unshare := testutil.Tool(t, "unshare", "util-linux")
	testutil.Tool(t, "ip", "iproute2")
	// root may unshare the network alone; others need a user namespace
	// (-r) to own the new network namespace.
	ns := "-rn"
	if os.Geteuid() == 0 {
		ns = "-n"
	}
	args := []string{ns, "sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0],
		"-test.run", "^" + t.Name() + "$", "-test.count", "1", "-test.v"}
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a private network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s (in a private network namespace): %v", t.Name(), err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s did not pass in the namespace", t.Name())
	}
}

// start writes Orthanc's configuration, starts it and waits until it
// answers.
func start(t *testing.T, orthanc string) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{
  "Name": "covseg-test",
  "StorageDirectory": %q,
  "IndexDirectory": %q,
  "HttpServerEnabled": true,
  "HttpPort": 8042,
  "DicomServerEnabled": false,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "Plugins": [%q],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}
}`, filepath.Join(dir, "db"), filepath.Join(dir, "db"), Plugin)
	cfgPath := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(orthanc, cfgPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Orthanc: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s := &Server{URL: "http://127.0.0.1:8042", DICOMweb: "http://127.0.0.1:8042/dicom-web"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/system")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Orthanc did not answer within 30 s: %v\n%s", err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Upload stores DICOM files through Orthanc's REST API (POST /instances).
func (s *Server) Upload(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(s.URL+"/instances", "application/dicom", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("uploading %s: %s %s", f, resp.Status, body)
		}
	}
}

// Get fetches a REST path and returns its body.
func (s *Server) Get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b
}
