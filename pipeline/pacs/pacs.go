// Package pacs runs covseg against a PACS over DICOMweb: for one study it
// finds the CT series (QIDO-RS), fetches it (WADO-RS), segments it as
// covseg segment does, and stores a DICOM Segmentation and the report's
// Secondary Capture back into the same study (STOW-RS).
package pacs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/covseg/covseg/eval/dicomreport"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/volume/dicomout"
	"github.com/covseg/covseg/volume/dicomseries"
	"github.com/covseg/covseg/volume/dicomweb"
)

// Job is one study to process; Series may be empty (the CT series with the
// most instances is taken).
type Job struct {
	Study, Series string
}

// Options control Run.
type Options struct {
	// SEG and SC choose what is stored back (both when neither is set).
	SEG, SC bool
	// Keep is a folder to keep the fetched series and the outputs in
	// (KEEP/STUDY/); empty: a temporary folder, removed afterwards.
	Keep    string
	Version string
	// Stage, when set, hears each step as it starts: "search", "fetch",
	// "segment", "write", "store" (for a progress display).
	Stage func(step string)
}

// Result is what Run did for one study.
type Result struct {
	Job
	Slices   int
	Category string
	// InvolvementPct is nil when the lungs were not found.
	InvolvementPct *float64
	Stored         []*dicomout.Written
	Elapsed        time.Duration
}

// Line is the per-study summary line.
func (r *Result) Line() string {
	p := "n/a"
	if r.InvolvementPct != nil {
		p = fmt.Sprintf("%.1f %%", *r.InvolvementPct)
	}
	return fmt.Sprintf("study %s series %s: %d slices, %s, %s involved; stored %d object(s) (%s)",
		r.Study, r.Series, r.Slices, r.Category, p, len(r.Stored), r.Elapsed.Round(10*time.Millisecond))
}

// Run processes one study.
func Run(ctx context.Context, c *dicomweb.Client, seg *infer.Segmenter, job Job, opt Options) (*Result, error) {
	start := time.Now()
	if !opt.SEG && !opt.SC {
		opt.SEG, opt.SC = true, true
	}
	stage := func(s string) {
		if opt.Stage != nil {
			opt.Stage(s)
		}
	}
	stage("search")
	series, err := c.SearchSeries(ctx, job.Study)
	if err != nil {
		return nil, err
	}
	s, err := c.ChooseCT(ctx, job.Study, series, job.Series)
	if err != nil {
		return nil, fmt.Errorf("study %s: %w", job.Study, err)
	}
	job.Series = s.UID
	dir, cleanup, err := workDir(opt.Keep, job.Study)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	in := filepath.Join(dir, "series")
	if err := os.MkdirAll(in, 0o755); err != nil {
		return nil, err
	}
	stage("fetch")
	n, err := c.RetrieveSeries(ctx, job.Study, job.Series, in)
	if err != nil {
		return nil, err
	}
	ct, info, err := dicomseries.Read(in, dicomseries.Options{SeriesUID: job.Series})
	if err != nil {
		return nil, fmt.Errorf("study %s: %w", job.Study, err)
	}
	stage("segment")
	res, err := seg.Segment(ct)
	if err != nil {
		return nil, fmt.Errorf("study %s: %w", job.Study, err)
	}
	src, err := dicomout.NewSource(info)
	if err != nil {
		return nil, err
	}
	stage("write")
	out, err := dicomreport.Write(filepath.Join(dir, "covseg"), src, ct, res.Infiltrate, nil, dicomreport.Options{
		SEG: opt.SEG, SC: opt.SC, Lungs: true, Version: opt.Version,
	})
	if err != nil {
		return nil, err
	}
	r := &Result{Job: job, Slices: n, Category: out.Report.Category, InvolvementPct: out.Report.InvolvementPct}
	var files []string
	for _, w := range []*dicomout.Written{out.SEG, out.SC} {
		if w != nil {
			files = append(files, w.Path)
			r.Stored = append(r.Stored, w)
		}
	}
	stage("store")
	if err := c.Store(ctx, job.Study, files...); err != nil {
		return nil, err
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

// workDir is KEEP/STUDY, or a temporary folder removed by cleanup.
func workDir(keep, study string) (string, func(), error) {
	if keep != "" {
		d := filepath.Join(keep, study)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
		return d, func() {}, nil
	}
	d, err := os.MkdirTemp("", "covseg-pacs-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}
