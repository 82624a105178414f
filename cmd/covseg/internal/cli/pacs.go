package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/progress"
	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/pipeline/pacs"
	"github.com/covseg/covseg/volume/dicomweb"
)

// pacsFlags are the options of "covseg pacs".
type pacsFlags struct {
	study, series, studies, keep, modelPath, engine string
	threads                                         int
	noSEG, noSC                                     bool
}

func newPACSCmd() *cobra.Command {
	var f pacsFlags
	cmd := &cobra.Command{
		Use:   "pacs URL (--study UID | --studies FILE) --model MODEL",
		Short: "Segment CT studies from a PACS over DICOMweb and store SEG and report SC back",
		Long: `For each study, at the DICOMweb service URL (e.g. http://pacs:8042/dicom-web):
find the study's series (QIDO-RS) and take the CT series with the most
instances (or --series UID), fetch it (WADO-RS), segment it as covseg segment
does, and store a DICOM Segmentation (infiltrate, right and left lung) and the
severity report as a Secondary Capture back into the same study (STOW-RS).

--studies FILE lists studies one per line: STUDY_UID, optionally followed by a
SERIES_UID; blank lines and lines starting with # are skipped. A study that
fails is reported and skipped; the exit status is 1 when any failed.

Credentials come from the environment only: COVSEG_DICOMWEB_TOKEN (a bearer
token), or COVSEG_DICOMWEB_USER and COVSEG_DICOMWEB_PASSWORD (basic auth).
DIMSE (C-FIND/C-MOVE/C-STORE) is not supported: use the PACS's DICOMweb.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPACS(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.study, "study", "", "StudyInstanceUID to process")
	fl.StringVar(&f.series, "series", "", "SeriesInstanceUID of the CT (default: the CT series with the most instances)")
	fl.StringVar(&f.studies, "studies", "", "file listing studies, one per line: STUDY_UID [SERIES_UID]")
	fl.StringVar(&f.modelPath, "model", "", "model: ONNX file (covseg model export) or model file (.ckpt)")
	fl.StringVar(&f.engine, "engine", infer.EngineORT, "inference engine: ort (ONNX Runtime) or gomlx (pure Go, slow)")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime threads (default: one per physical core)")
	fl.StringVar(&f.keep, "keep", "", "keep each study's fetched series and outputs in KEEP/STUDY_UID/")
	fl.BoolVar(&f.noSEG, "no-seg", false, "do not store the DICOM Segmentation")
	fl.BoolVar(&f.noSC, "no-sc", false, "do not store the report Secondary Capture")
	return cmd
}

func runPACS(ctx context.Context, stdout, stderr io.Writer, url string, f pacsFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.modelPath == "" {
		return errors.New("pacs: --model is required")
	}
	if f.noSEG && f.noSC {
		return errors.New("pacs: --no-seg and --no-sc leave nothing to store")
	}
	jobs, err := pacsJobs(f)
	if err != nil {
		return fmt.Errorf("pacs: %w", err)
	}
	client, err := dicomweb.New(url)
	if err != nil {
		return fmt.Errorf("pacs: %w", err)
	}
	eng, err := pipeline.OpenEngine(f.modelPath, f.engine, f.threads, stderr)
	if err != nil {
		return fmt.Errorf("pacs: %w", err)
	}
	defer eng.Close()
	seg, err := infer.New(eng, infer.DefaultOptions())
	if err != nil {
		return fmt.Errorf("pacs: %w", err)
	}
	opt := pacs.Options{SEG: !f.noSEG, SC: !f.noSC, Keep: f.keep, Version: Version}
	bar := progress.New(stderr, "pacs", len(jobs))
	var failed []string
	for i, j := range jobs {
		bar.SetSuffix(j.Study)
		opt.Stage = func(step string) {
			bar.SetSuffix(j.Study + ": " + step)
			bar.Add(0)
		}
		res, err := pacs.Run(ctx, client, seg, j, opt)
		if err != nil {
			failed = append(failed, j.Study)
			bar.Println(fmt.Sprintf("[%d/%d] %s FAILED: %v", i+1, len(jobs), j.Study, err))
		} else {
			bar.Println(fmt.Sprintf("[%d/%d] %s", i+1, len(jobs), res.Line()))
		}
		bar.Add(1)
	}
	bar.Finish()
	fmt.Fprintf(stdout, "processed %d of %d stud(ies) at %s\n", len(jobs)-len(failed), len(jobs), url)
	if len(failed) > 0 {
		return fmt.Errorf("pacs: %d of %d stud(ies) failed: %s", len(failed), len(jobs), strings.Join(failed, ", "))
	}
	return nil
}

// pacsJobs reads the studies to process from the flags.
func pacsJobs(f pacsFlags) ([]pacs.Job, error) {
	if (f.study == "") == (f.studies == "") {
		return nil, errors.New("give one of --study UID or --studies FILE")
	}
	if f.study != "" {
		return []pacs.Job{{Study: f.study, Series: f.series}}, nil
	}
	if f.series != "" {
		return nil, errors.New("--series goes with --study; in --studies FILE put it after the study UID")
	}
	file, err := os.Open(f.studies)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var jobs []pacs.Job
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		w := strings.Fields(line)
		if len(w) > 2 {
			return nil, fmt.Errorf("%s:%d: want STUDY_UID [SERIES_UID], got %q", f.studies, n, line)
		}
		j := pacs.Job{Study: w[0]}
		if len(w) == 2 {
			j.Series = w[1]
		}
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.studies, err)
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("%s lists no study", f.studies)
	}
	return jobs, nil
}
