package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/internal/atomicfile"
)

// reproduceResult is the outcome of covseg reproduce: the table and what it
// was computed with.
type reproduceResult struct {
	Version     string             `json:"version"`
	Manifest    string             `json:"manifest"`
	Model       string             `json:"model"`
	ONNX        string             `json:"onnx,omitempty"`
	ModelConfig string             `json:"model_config"`
	Preprocess  string             `json:"preprocess"`
	Training    *reproduceTraining `json:"training"`
	Engine      string             `json:"engine"`
	Mode        string             `json:"mode"`
	TTA         bool               `json:"tta"`
	TauMM       float64            `json:"nsd_tau_mm"`
	Rows        []*reproduceRow    `json:"rows"`
	Seconds     float64            `json:"seconds"`
	Files       map[string]string  `json:"files"`
}

// reproduceRow is one data set's line of the table.
type reproduceRow struct {
	Dataset string `json:"dataset"`
	Name    string `json:"name"`
	Split   string `json:"split"`
	Cases   int    `json:"cases"`
	Failed  int    `json:"failed"`
	// PaperDice is the paper's mean Dice on this data set.
	PaperDice float64               `json:"paper_dice"`
	Dice      metrics.Stat          `json:"dice"`
	NSD       metrics.Stat          `json:"nsd"`
	HD95      metrics.Stat          `json:"hd95_mm"`
	PerCase   []reproduceCaseResult `json:"per_case"`
}

// reproduceCaseResult is one segmented case.
type reproduceCaseResult struct {
	Case    string        `json:"case"`
	Split   string        `json:"split"`
	Image   string        `json:"image"`
	Truth   string        `json:"truth"`
	Pred    string        `json:"pred,omitempty"`
	Dice    metrics.Value `json:"dice"`
	NSD     metrics.Value `json:"nsd"`
	HD95    metrics.Value `json:"hd95_mm"`
	TruthML float64       `json:"truth_ml"`
	PredML  float64       `json:"pred_ml"`
	Error   string        `json:"error,omitempty"`
	result  *metrics.Result
}

// reproduceOrder is the paper's order of the table's rows.
var reproduceOrder = []string{dataset.RICORD, dataset.Coronacases, dataset.MosMed}

// row returns the row of a data set, adding it in the paper's order.
func (r *reproduceResult) row(name string) *reproduceRow {
	for _, row := range r.Rows {
		if row.Dataset == name {
			return row
		}
	}
	row := &reproduceRow{Dataset: name, Name: name, Split: string(dataset.Test), PaperDice: paperDice[name]}
	switch name {
	case dataset.RICORD:
		row.Name, row.Split = "RICORD (tuning)", string(dataset.Val)
	case dataset.Coronacases:
		row.Name = "Coronacases"
	case dataset.MosMed:
		row.Name = "MosMedData"
	}
	r.Rows = append(r.Rows, row)
	rank := func(n string) int {
		for i, o := range reproduceOrder {
			if o == n {
				return i
			}
		}
		return len(reproduceOrder)
	}
	for i := len(r.Rows) - 1; i > 0 && rank(r.Rows[i].Dataset) < rank(r.Rows[i-1].Dataset); i-- {
		r.Rows[i], r.Rows[i-1] = r.Rows[i-1], r.Rows[i]
	}
	return row
}

// summarize computes the row's statistics over its evaluated cases.
func (row *reproduceRow) summarize() {
	var rs []*metrics.Result
	for _, c := range row.PerCase {
		if c.result != nil {
			rs = append(rs, c.result)
		} else {
			row.Failed++
		}
	}
	row.Cases = len(rs)
	s := metrics.Summarize(rs)
	row.Dice, row.HD95 = s.Dice, s.HD95
	if len(s.NSD) > 0 {
		row.NSD = s.NSD[0]
	}
}

// meanSD formats mean ± SD.
func meanSD(s metrics.Stat, decimals int) string {
	if !s.Mean.Defined() {
		return "n/a"
	}
	out := fmtValue(s.Mean, decimals)
	if s.SD.Defined() {
		out += " ± " + fmtValue(s.SD, decimals)
	}
	return out
}

// tableRows returns the table's header and rows.
func (r *reproduceResult) tableRows() [][]string {
	rows := [][]string{{"dataset", "cases", "paper mean Dice", "covseg mean Dice ± SD", fmt.Sprintf("NSD (%g mm)", r.TauMM), "HD95 (mm)"}}
	for _, row := range r.Rows {
		cases := fmt.Sprint(row.Cases)
		if row.Failed > 0 {
			cases += fmt.Sprintf(" (+%d failed)", row.Failed)
		}
		paper := "n/a"
		if row.PaperDice > 0 {
			paper = fmt.Sprintf("%.3f", row.PaperDice)
		}
		rows = append(rows, []string{row.Name, cases, paper, meanSD(row.Dice, 3), meanSD(row.NSD, 3), meanSD(row.HD95, 1)})
	}
	return rows
}

// settings are the lines under the table that say how it was made.
func (r *reproduceResult) settings() []string {
	s := []string{
		"model: " + r.Model + " (" + r.ModelConfig + ")",
		"preprocessing: " + r.Preprocess,
		fmt.Sprintf("segmentation: %s mode, TTA %v, engine %s", r.Mode, r.TTA, r.Engine),
	}
	if t := r.Training; t != nil {
		if t.Skipped != "" {
			s = append(s, "training: skipped ("+t.Skipped+")")
		} else {
			line := fmt.Sprintf("training: %s; run %s (config %s); best tuning Dice %.3f at epoch %d", t.Phases, t.Run, t.Config, t.BestDice, t.BestEpoch)
			if t.Resumed {
				line += "; resumed"
			}
			s = append(s, line)
		}
	}
	s = append(s, "data: "+r.Manifest+" (RICORD split by patient; Coronacases without the radiopaedia volumes; MosMedData studies with masks)")
	s = append(s, "paper: Bressem et al. 2021, arXiv:2101.09976, mean Dice per data set")
	return s
}

// write prints the table (or the JSON) and writes results.md,
// results.json and cases.csv.
func (r *reproduceResult) write(f reproduceFlags, stdout io.Writer) error {
	r.Files = map[string]string{
		"markdown": filepath.Join(f.out, "results.md"),
		"json":     filepath.Join(f.out, "results.json"),
		"cases":    filepath.Join(f.out, "cases.csv"),
	}
	if err := atomicfile.Write(r.Files["markdown"], r.writeMarkdown); err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	if err := writeJSONFile(r.Files["json"], r); err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	if err := atomicfile.Write(r.Files["cases"], r.writeCSV); err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	if f.json {
		return encodeJSON(stdout, r)
	}
	fmt.Fprintln(stdout)
	writeAligned(stdout, r.tableRows())
	fmt.Fprintln(stdout)
	for _, s := range r.settings() {
		fmt.Fprintln(stdout, s)
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %s\n", r.Files["markdown"], r.Files["json"], r.Files["cases"])
	return nil
}

func (r *reproduceResult) writeMarkdown(w io.Writer) error {
	fmt.Fprintln(w, "# covseg reproduce: Bressem et al. 2021, table 2")
	fmt.Fprintln(w)
	rows := r.tableRows()
	for i, row := range rows {
		cells := make([]string, len(row))
		for j, c := range row {
			cells[j] = mdEscape(c)
		}
		mdRow(w, cells)
		if i == 0 {
			mdRow(w, []string{"---", "---:", "---:", "---:", "---:", "---:"})
		}
	}
	fmt.Fprintln(w)
	for _, s := range r.settings() {
		fmt.Fprintln(w, "- "+mdEscape(s))
	}
	return nil
}

func (r *reproduceResult) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"dataset", "split", "case", "dice", "nsd", "hd95_mm", "truth_ml", "pred_ml", "image", "truth", "pred", "error"}); err != nil {
		return err
	}
	for _, row := range r.Rows {
		for _, c := range row.PerCase {
			rec := []string{row.Dataset, c.Split, c.Case, fmtValue(c.Dice, 6), fmtValue(c.NSD, 6), fmtValue(c.HD95, 4),
				fmt.Sprintf("%.3f", c.TruthML), fmt.Sprintf("%.3f", c.PredML), c.Image, c.Truth, c.Pred, strings.ReplaceAll(c.Error, "\n", " ")}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
