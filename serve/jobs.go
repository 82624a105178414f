package serve

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/covseg/covseg/eval/dicomreport"
	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomout"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

// Job kinds.
const (
	// jobSegment runs the model and then the analysis.
	jobSegment = "segment"
	// jobAnalyse computes lungs, report and montage for the mask there is
	// (a label a client saved).
	jobAnalyse = "analyse"
)

// ErrBusy is returned when the job queue is full; the HTTP answer is 503
// with Retry-After.
var ErrBusy = errors.New("serve: the job queue is full; try again later")

// errStopping ends the jobs still queued when the server closes.
var errStopping = errors.New("serve: the server is shutting down; the case stays queued for its next start")

// errConflict is returned when a case already has a job of another kind.
var errConflict = errors.New("serve: the case is being processed; try again when it is done")

// job is one case's work. done is closed when it ends; err is its result.
type job struct {
	id, kind string
	done     chan struct{}
	err      error
}

// queue holds jobs for the workers; inflight maps a case to its queued or
// running job, so that a second request for the same case waits for the
// first one's job instead of queueing another.
type queue struct {
	ch       chan *job
	mu       sync.Mutex
	inflight map[string]*job
	wg       sync.WaitGroup
}

// submit queues a job for a case, or returns the job it already has.
func (s *Server) submit(id, kind string) (*job, error) {
	q := &s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if j, ok := q.inflight[id]; ok {
		if j.kind != kind {
			return nil, errConflict
		}
		return j, nil
	}
	if len(q.ch) == cap(q.ch) {
		return nil, ErrBusy
	}
	j := &job{id: id, kind: kind, done: make(chan struct{})}
	if _, err := s.st.update(id, func(c *Case) { c.State, c.Error, c.Job = StateQueued, "", kind }); err != nil {
		return nil, err
	}
	q.ch <- j // cannot block: len < cap under q.mu, and only submit sends
	q.inflight[id] = j
	return j, nil
}

// work runs jobs until the queue is closed.
func (s *Server) work() {
	defer s.q.wg.Done()
	for j := range s.q.ch {
		if s.stopping.Load() {
			// Left queued in its record: the next start runs it.
			j.err = errStopping
		} else {
			j.err = s.runJob(j)
		}
		s.q.mu.Lock()
		delete(s.q.inflight, j.id)
		s.q.mu.Unlock()
		close(j.done)
	}
}

// runJob runs one job and records its outcome in the case's record. A panic
// fails the job, not the server.
func (s *Server) runJob(j *job) (err error) {
	timing := map[string]float64{}
	var at *[3]float64
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
			s.logf("case %s: panic: %v\n%s", j.id, p, debug.Stack())
		}
		state, msg := StateDone, ""
		if err != nil {
			state, msg = StateFailed, err.Error()
			s.logf("case %s: %s failed: %v", j.id, j.kind, err)
		} else {
			s.logf("case %s: %s done %v", j.id, j.kind, timing)
		}
		s.st.update(j.id, func(c *Case) {
			c.State, c.Error, c.Timing, c.Focus = state, msg, timing, at
			if err == nil && j.kind == jobSegment {
				c.MaskFrom = "model"
			}
		})
	}()
	if _, err := s.st.update(j.id, func(c *Case) { c.State = StateRunning }); err != nil {
		return err
	}
	at, err = s.process(j, timing)
	return err
}

// process reads the case's CT, segments it (jobSegment) or reads its mask
// (jobAnalyse), and writes the lung mask, the report and the montage.
func (s *Server) process(j *job, timing map[string]float64) (*[3]float64, error) {
	step := func(name string, start time.Time) { timing[name] = time.Since(start).Seconds() }
	t := time.Now()
	ct, _, err := nifti.ReadVolume(s.st.path(j.id, FileImage))
	if err != nil {
		return nil, err
	}
	step("read", t)
	var mask *volume.Label
	if j.kind == jobSegment {
		if s.cfg.Segmenter == nil {
			return nil, errors.New("no model loaded (covseg serve --model)")
		}
		t = time.Now()
		s.model.Lock()
		res, err := s.cfg.Segmenter.Segment(ct)
		s.model.Unlock()
		if err != nil {
			return nil, err
		}
		step("segment", t)
		// The infiltrate: the case's mask is what the viewer edits and the
		// report, SEG and SC count (a model's lung class left out).
		mask = res.Infiltrate
		if err := nifti.WriteLabel(s.st.path(j.id, FileMask), mask); err != nil {
			return nil, err
		}
	} else if mask, _, err = nifti.ReadLabel(s.st.path(j.id, FileMask)); err != nil {
		return nil, err
	}
	lungMask, rep, err := s.analyse(j.id, ct, mask, timing)
	if err != nil {
		return nil, err
	}
	if s.st.hasDICOM(j.id) {
		t = time.Now()
		if err := s.writeDICOM(j.id, ct, mask, lungMask, rep); err != nil {
			return nil, fmt.Errorf("DICOM SEG and SC: %w", err)
		}
		step("dicom", t)
	}
	return focus(mask), nil
}

// writeDICOM writes a DICOM case's SEG (infiltrate, right and left lung on
// the series' own frames) and its report as a Secondary Capture, in the
// source's study.
func (s *Server) writeDICOM(id string, ct *volume.Volume, mask, lungMask *volume.Label, rep *severity.Report) error {
	_, vsrc, err := volio.Read(s.st.path(id, dirDICOM), volio.Options{})
	if err != nil {
		return err
	}
	if vsrc.Series == nil {
		return errors.New("the case's DICOM folder holds no series")
	}
	src, err := dicomout.NewSource(vsrc.Series)
	if err != nil {
		return err
	}
	if _, err := dicomreport.WriteSEG(s.st.path(id, FileSEG), src, mask, lungMask, s.cfg.Version); err != nil {
		return err
	}
	_, err = dicomreport.WriteSC(s.st.path(id, FileSC), src, ct, mask, rep, s.cfg.Version)
	return err
}

// analyse writes the lung mask (computed once per case), the severity
// report and the montage, and returns the lung mask and the report.
func (s *Server) analyse(id string, ct *volume.Volume, mask *volume.Label, timing map[string]float64) (*volume.Label, *severity.Report, error) {
	t := time.Now()
	var lungMask *volume.Label
	if s.st.exists(id, FileLungs) {
		l, _, err := nifti.ReadLabel(s.st.path(id, FileLungs))
		if err == nil && l.Dims == ct.Dims {
			lungMask = l
		}
	}
	computed := lungMask == nil
	if computed {
		res, err := lungs.Segment(ct, lungs.DefaultOptions())
		if err != nil {
			return nil, nil, fmt.Errorf("lung mask: %w", err)
		}
		lungMask = res.Mask
		if err := nifti.WriteLabel(s.st.path(id, FileLungs), lungMask); err != nil {
			return nil, nil, err
		}
		timing["lungs"] = time.Since(t).Seconds()
	}
	t = time.Now()
	rep, err := severity.Compute(ct, mask, lungMask, severity.Options{Version: s.cfg.Version})
	if err != nil {
		return nil, nil, fmt.Errorf("report: %w", err)
	}
	rep.Inputs = severity.Inputs{CT: FileImage, Mask: FileMask, Lungs: FileLungs, LungsComputed: true}
	b, err := rep.JSON()
	if err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(s.st.path(id, FileReport), func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return nil, nil, err
	}
	img, err := rep.Montage(ct, mask, montage.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("montage: %w", err)
	}
	if err := atomicfile.Write(s.st.path(id, FileMontage), func(w io.Writer) error { return montage.Encode(w, img) }); err != nil {
		return nil, nil, err
	}
	timing["report"] = time.Since(t).Seconds()
	return lungMask, rep, nil
}

// resume queues again the cases that were queued or running when the
// server stopped; those that do not fit in the queue are marked failed.
func (s *Server) resume() error {
	cases, err := s.st.list()
	if err != nil {
		return err
	}
	for _, c := range cases {
		if c.State != StateQueued && c.State != StateRunning {
			continue
		}
		kind := c.Job
		if kind != jobAnalyse {
			kind = jobSegment
		}
		if _, err := s.submit(c.ID, kind); err != nil {
			s.st.update(c.ID, func(c *Case) {
				c.State, c.Error = StateFailed, "interrupted by a restart and not queued again: "+err.Error()
			})
		} else {
			s.logf("case %s: queued again after a restart", c.ID)
		}
	}
	return nil
}
