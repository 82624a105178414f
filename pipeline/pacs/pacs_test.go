package pacs

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/internal/orthanctest"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume/dicomweb"
)

// TestOrthancRoundTrip seeds a real Orthanc with the IBSI CT series, runs
// the DICOMweb round trip (QIDO-RS, WADO-RS, segmentation with a threshold
// model, STOW-RS) and checks through Orthanc's REST API that the study now
// holds a SEG series and an SC series whose files pass dciodvfy.
func TestOrthancRoundTrip(t *testing.T) {
	srv := orthanctest.Start(t)
	if srv == nil {
		return // ran in a private network namespace
	}
	series := testutil.IO(t, "ibsi_chest_ct", "dicom")
	files, _ := filepath.Glob(filepath.Join(series, "*.dcm"))
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

	cfg := model.DefaultConfig()
	cfg.Preprocess.Grid = [3]int{24, 48, 48}
	onnx := infertest.ThresholdONNX(t, t.TempDir(), "thr.onnx", cfg, -500.5)
	eng, err := infer.OpenEngine(onnx, infer.EngineOptions{Kind: infer.EngineORT, Threads: 1})
	if err != nil {
		t.Fatal(err) // ONNX Runtime's library comes from scripts/setup, as for every ORT test
	}
	defer eng.Close()
	seg, err := infer.New(eng, infer.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	c, err := dicomweb.New(srv.DICOMweb)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), c, seg, Job{Study: study.MainDicomTags.StudyInstanceUID}, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Line())
	if res.Slices != len(files) || len(res.Stored) != 2 {
		t.Fatalf("result %+v", res)
	}

	// A bad study is an error, not a crash.
	if _, err := Run(context.Background(), c, seg, Job{Study: "1.2.3.4"}, Options{}); err == nil {
		t.Fatal("a study that is not there gave no error")
	}

	if err := json.Unmarshal(srv.Get(t, "/studies/"+studies[0]), &study); err != nil {
		t.Fatal(err)
	}
	modalities := map[string]string{}
	for _, s := range study.Series {
		var info struct {
			MainDicomTags struct{ Modality string }
			Instances     []string
		}
		if err := json.Unmarshal(srv.Get(t, "/series/"+s), &info); err != nil {
			t.Fatal(err)
		}
		modalities[info.MainDicomTags.Modality] = info.Instances[0]
	}
	for _, m := range []string{"CT", "SEG", "OT"} {
		if modalities[m] == "" {
			t.Fatalf("the study holds no %s series after the round trip: %v", m, modalities)
		}
	}
	tool := testutil.Tool(t, "dciodvfy", "dicom3tools")
	for _, m := range []string{"SEG", "OT"} {
		p := filepath.Join(t.TempDir(), m+".dcm")
		if err := os.WriteFile(p, srv.Get(t, "/instances/"+modalities[m]+"/file"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(tool, p).CombinedOutput()
		if strings.Contains(string(out), "Error") {
			t.Fatalf("dciodvfy on the %s stored in Orthanc:\n%s", m, out)
		}
	}
}
