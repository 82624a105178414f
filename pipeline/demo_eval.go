package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strings"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// demoEngine opens the exported ONNX model in ONNX Runtime, as covseg
// segment does. Without the ONNX Runtime library it falls back to the GoMLX
// engine on the model file, saying so.
func demoEngine(res *DemoResult, threads int, log io.Writer) (infer.Engine, error) {
	eng, err := OpenEngine(res.Paths.ONNX, infer.EngineORT, threads, io.Discard)
	if err == nil {
		return eng, nil
	}
	if !errors.Is(err, ort.ErrNoLibrary) {
		return nil, fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(log, "warning: %v\nwarning: segmenting with the GoMLX engine on %s instead (run scripts/setup for ONNX Runtime)\n", err, res.Paths.Checkpoint)
	eng, err = OpenEngine(res.Paths.Checkpoint, infer.EngineGoMLX, 0, log)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return eng, nil
}

// evaluateDemo segments every held-out phantom through covseg segment's
// code path, compares each mask with the phantom's lesions, and writes the
// severity report, its montage and a truth-versus-prediction montage of
// the first one.
func evaluateDemo(ctx context.Context, res *DemoResult, cases []demoCase, dirs demoDirs, opt DemoOptions, log io.Writer) error {
	eng, err := demoEngine(res, opt.Threads, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	segOpt := infer.DefaultOptions()
	if opt.Config.Overlap > 0 {
		segOpt.Overlap = opt.Config.Overlap
	}
	seg, err := infer.New(eng, segOpt)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	res.Engine = eng.Name()
	fmt.Fprintf(log, "segmenting the held-out SYNTHETIC phantoms with %s\n", eng.Name())
	var results []*metrics.Result
	first := true
	for _, dc := range cases {
		if dc.split != dataset.Test {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("demo: interrupted: %w", err)
		}
		sc := segCase{name: dc.name, in: dc.image, stem: filepath.Join(dirs.seg, dc.name)}
		sc.mask = sc.stem + "_mask.nii.gz"
		out, ct, _, err := segmentCase(seg, sc, outputs{})
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		truth, _, err := nifti.ReadLabel(dc.mask)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		// The lesion class alone (a network with a lung class marks the
		// rest of the lungs too).
		pred := out.Infiltrate
		m, err := metrics.Compare(truth, pred, metrics.Options{})
		if err != nil {
			return fmt.Errorf("demo: %s: %w", dc.name, err)
		}
		results = append(results, m)
		cr := metrics.NewCaseResult(dc.name, m, nil, nil)
		cr.Image, cr.Pred, cr.Truth = dc.image, sc.mask, dc.mask
		res.Cases = append(res.Cases, cr)
		fmt.Fprintf(log, "  %s: Dice %s, HD95 %s mm, truth %.1f ml, covseg %.1f ml\n", dc.name, orNA(fmtValue(m.Dice, 3)), orNA(fmtValue(m.HD95, 1)), m.TruthML, m.PredML)
		if first {
			first = false
			res.Paths.CT, res.Paths.Mask = dc.image, sc.mask
			if err := demoReport(res, dc, sc, ct, truth, pred, m); err != nil {
				return err
			}
		}
	}
	if len(results) == 0 {
		return errors.New("demo: no held-out phantoms to evaluate")
	}
	sum := metrics.Summarize(results)
	res.DiceMean = finiteOr(float64(sum.Dice.Mean), 0)
	res.DiceSD = sum.Dice.SD
	res.DiceMin = finiteOr(float64(sum.Dice.Min), 0)
	res.TargetMet = sum.Dice.N == len(results) && res.DiceMean >= res.TargetDice
	return nil
}

// demoReport writes the severity report of one segmented phantom (with
// the phantom's own lung mask) as JSON and Markdown, its montage, and a
// montage of the phantom's lesions against covseg's.
func demoReport(res *DemoResult, dc demoCase, sc segCase, ct *volume.Volume, truth, pred *volume.Label, m *metrics.Result) error {
	lungs, _, err := nifti.ReadLabel(dc.lungs)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	opt := severity.Options{Version: Version}
	r, err := severity.Compute(ct, pred, lungs, opt)
	if err != nil {
		return fmt.Errorf("demo: %s: %w", dc.name, err)
	}
	r.Inputs = severity.Inputs{CT: dc.image, Mask: sc.mask, Lungs: dc.lungs}
	r.Warnings = append([]string{syntheticNote}, r.Warnings...)
	truthRep, err := severity.Compute(ct, truth, lungs, opt)
	if err != nil {
		return fmt.Errorf("demo: %s: %w", dc.name, err)
	}
	res.Severity = DemoSeverity{
		Case: dc.name, Category: r.Category, InvolvementPct: r.InvolvementPct, InfiltrateML: r.InfiltrateML, LungML: r.LungML,
		TruthInvolPct: truthRep.InvolvementPct, TruthCategory: truthRep.Category,
	}

	p := &res.Paths
	p.ReportJSON, p.ReportMD = sc.stem+"_report.json", sc.stem+"_report.md"
	p.Montage, p.Comparison = sc.stem+"_report.png", sc.stem+"_truth_vs_covseg.png"
	js, err := r.JSON()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := atomicfile.Write(p.ReportJSON, func(w io.Writer) error { _, err := w.Write(js); return err }); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	md := "> **" + syntheticNote + ".**\n\n" + r.Markdown()
	if err := atomicfile.Write(p.ReportMD, func(w io.Writer) error { _, err := io.WriteString(w, md); return err }); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	img, err := r.Montage(ct, pred, montage.Options{Title: "SYNTHETIC phantom " + dc.name + ": " + r.Headline()})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := montage.WritePNG(p.Montage, img); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	img, err = montage.Render(ct, []montage.Overlay{
		{Label: pred, Styles: map[uint8]montage.Style{1: {Name: "covseg", Color: severity.InfiltrateColor, Fill: 0.45}}},
		{Label: truth, Styles: map[uint8]montage.Style{1: {Name: "phantom's lesions (truth)", Color: color.RGBA{60, 230, 90, 255}, Outline: true}}},
	}, montage.Options{Title: fmt.Sprintf("SYNTHETIC phantom %s: truth outlined, covseg filled, Dice %s", dc.name, fmtValue(m.Dice, 3))})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := montage.WritePNG(p.Comparison, img); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// writeDemoSummary writes demo.json (the object --json prints) and
// demo.md.
func writeDemoSummary(res *DemoResult) error {
	if err := writeJSONFile(res.Paths.Summary, res); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return atomicfile.Write(res.Paths.SummaryMD, func(w io.Writer) error {
		_, err := io.WriteString(w, demoMarkdown(res))
		return err
	})
}

// demoMarkdown renders the demo's result for people.
func demoMarkdown(r *DemoResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# covseg demo\n\n> **%s.**\n\n", r.Note)
	fmt.Fprintf(&b, "Mean Dice on %d held-out synthetic phantoms: **%.3f**", len(r.Cases), r.DiceMean)
	if r.DiceSD.Defined() {
		fmt.Fprintf(&b, " ± %.3f", float64(r.DiceSD))
	}
	fmt.Fprintf(&b, " (target ≥ %.2f: %s).\n\n", r.TargetDice, map[bool]string{true: "met", false: "not met"}[r.TargetMet])
	burden := map[string]float64{}
	for _, c := range r.Phantoms.Burden.Cases {
		burden[c.Case] = c.Pct
	}
	mdRow(&b, []string{"phantom", "lungs involved (%)", "Dice", "IoU", "HD95 (mm)", "truth (ml)", "covseg (ml)"})
	mdRow(&b, []string{"---", "---:", "---:", "---:", "---:", "---:", "---:"})
	for _, c := range r.Cases {
		mdRow(&b, []string{c.Case, fmt.Sprintf("%.1f", burden[c.Case]), fmtValue(c.Dice, 3), fmtValue(c.IoU, 3), fmtValue(c.HD95, 1), fmtValue(c.TruthML, 1), fmtValue(c.PredML, 1)})
	}
	bu := r.Phantoms.Burden
	fmt.Fprintf(&b, "\nLesion burden of the held-out phantoms: mean %.1f %% of the lungs involved (min %.1f, max %.1f).\n", bu.MeanPct, bu.MinPct, bu.MaxPct)
	t := r.Training
	input := fmt.Sprintf("input %dx%dx%d", t.Grid[0], t.Grid[1], t.Grid[2])
	if t.Patch != nil {
		input = fmt.Sprintf("trained on %dx%dx%d patches and run as a sliding window", t.Patch[0], t.Patch[1], t.Patch[2])
	}
	fmt.Fprintf(&b, "\nNetwork: the paper's R3D-18 U-Net at width %g (%d parameters), %s, trained from a random initialisation (%s) on %s: %s; %d of at most %d epochs done (%d steps), best validation Dice %.3f at epoch %d, epoch %d kept.\n",
		t.Width, t.Params, input, "no Kinetics-400 weights", t.Backend, t.Phases, t.EpochsDone, t.Epochs, t.Steps, t.BestValDice, t.BestEpoch, t.Kept)
	fmt.Fprintf(&b, "\nSegmentation engine: %s. Total time %.0f s", r.Engine, r.Seconds)
	if r.CPUSeconds != nil {
		fmt.Fprintf(&b, " (CPU %.0f s)", *r.CPUSeconds)
	}
	fmt.Fprintf(&b, ".\n\nFiles: phantoms `%s`, model `%s` and `%s`, mask `%s`, report `%s`, montages `%s` and `%s`.\n",
		r.Paths.Manifest, r.Paths.Checkpoint, r.Paths.ONNX, r.Paths.Mask, r.Paths.ReportMD, r.Paths.Montage, r.Paths.Comparison)
	return b.String()
}
