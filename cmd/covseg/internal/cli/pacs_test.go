package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/orthanctest"
)

// TestPACSBatch runs covseg pacs on a studies file against a real Orthanc
// (in a private network namespace): the fixture study is processed and
// its SEG and SC stored, a study that is not there is reported and
// skipped, and the exit status says one failed.
func TestPACSBatch(t *testing.T) {
	srv := orthanctest.Start(t)
	if srv == nil {
		return
	}
	files, _ := filepath.Glob(filepath.Join(fixture(t, "ibsi_chest_ct/dicom"), "*.dcm"))
	srv.Upload(t, files...)
	var studies []string
	if err := json.Unmarshal(srv.Get(t, "/studies"), &studies); err != nil || len(studies) != 1 {
		t.Fatalf("studies %v (%v)", studies, err)
	}
	var study struct {
		MainDicomTags struct{ StudyInstanceUID string }
		Series        []string
	}
	if err := json.Unmarshal(srv.Get(t, "/studies/"+studies[0]), &study); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "studies.txt")
	body := "# test\n" + study.MainDicomTags.StudyInstanceUID + "\n\n1.2.3.4.5\n"
	if err := os.WriteFile(list, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "pacs", srv.DICOMweb, "--studies", list, "--model", thresholdModel(t))
	if code != 1 || !strings.Contains(stdout, "processed 1 of 2") || !strings.Contains(stderr, "1.2.3.4.5 FAILED") ||
		!strings.Contains(stderr, "stored 2 object(s)") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if err := json.Unmarshal(srv.Get(t, "/studies/"+studies[0]), &study); err != nil {
		t.Fatal(err)
	}
	if len(study.Series) != 3 {
		t.Fatalf("the study holds %d series after the round trip, want 3 (CT, SEG, SC)", len(study.Series))
	}
}

func TestPACSJobsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.txt")
	os.WriteFile(p, []byte("1.2.3 4.5.6\n  # c\n7.8\n"), 0o644)
	jobs, err := pacsJobs(pacsFlags{studies: p})
	if err != nil || len(jobs) != 2 || jobs[0].Series != "4.5.6" || jobs[1].Study != "7.8" {
		t.Fatalf("jobs %+v, %v", jobs, err)
	}
	os.WriteFile(p, []byte("1 2 3\n"), 0o644)
	if _, err := pacsJobs(pacsFlags{studies: p}); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("err %v", err)
	}
	if _, err := pacsJobs(pacsFlags{study: "1", studies: p}); err == nil {
		t.Fatal("both --study and --studies accepted")
	}
	_, _, code := run(t, "pacs", "http://user:pw@127.0.0.1:1/dicom-web", "--study", "1.2", "--model", "x.onnx")
	if code == 0 {
		t.Fatal("credentials in the URL accepted")
	}
}
