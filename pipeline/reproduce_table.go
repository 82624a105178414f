package pipeline

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/internal/atomicfile"
)

// ReproduceResult is the outcome of Reproduce: the table and what it was
// computed with, as results.json holds it.
type ReproduceResult struct {
	Version     string             `json:"version"`
	Manifest    string             `json:"manifest"`
	Model       string             `json:"model"`
	ONNX        string             `json:"onnx,omitempty"`
	ModelConfig string             `json:"model_config"`
	Preprocess  string             `json:"preprocess"`
	Training    *ReproduceTraining `json:"training"`
	Engine      string             `json:"engine"`
	Mode        string             `json:"mode"`
	TTA         bool               `json:"tta"`
	TauMM       float64            `json:"nsd_tau_mm"`
	Rows        []*ReproduceRow    `json:"rows"`
	Seconds     float64            `json:"seconds"`
	Files       map[string]string  `json:"files"`
}

// ReproduceRow is one data set's line of the table. Its JSON has the keys
// of metrics.CaseResult for its statistics: dice, nsd_<τ>mm, hd95_mm.
type ReproduceRow struct {
	Dataset string `json:"dataset"`
	Name    string `json:"name"`
	Split   string `json:"split"`
	Cases   int    `json:"cases"`
	Failed  int    `json:"failed"`
	// PaperDice is the paper's mean Dice on this data set.
	PaperDice float64      `json:"paper_dice"`
	Dice      metrics.Stat `json:"dice"`
	HD95      metrics.Stat `json:"hd95_mm"`
	// NSD is the mean normalised surface Dice at TauMM: key nsd_<τ>mm.
	NSD     metrics.Stat         `json:"-"`
	TauMM   float64              `json:"-"`
	PerCase []metrics.CaseResult `json:"per_case"`
}

// reproduceRowFields is ReproduceRow without its methods.
type reproduceRowFields ReproduceRow

// MarshalJSON writes the row with its NSD under nsd_<τ>mm.
func (row ReproduceRow) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(reproduceRowFields(row))
	if err != nil {
		return nil, err
	}
	return metrics.AppendNSDKeys(b, []float64{row.TauMM}, []any{row.NSD})
}

// reproduceOrder is the paper's order of the table's rows.
var reproduceOrder = []string{dataset.RICORD, dataset.Coronacases, dataset.MosMed}

// row returns the row of a data set, adding it in the paper's order.
func (r *ReproduceResult) row(name string) *ReproduceRow {
	for _, row := range r.Rows {
		if row.Dataset == name {
			return row
		}
	}
	row := &ReproduceRow{Dataset: name, Name: name, Split: string(dataset.Test), PaperDice: paperDice[name], TauMM: r.TauMM}
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
func (row *ReproduceRow) summarize() {
	var rs []*metrics.Result
	for _, c := range row.PerCase {
		if c.Result != nil {
			rs = append(rs, c.Result)
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
func (r *ReproduceResult) tableRows() [][]string {
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
func (r *ReproduceResult) settings() []string {
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

// writeFiles writes results.md, results.json and cases.csv into dir.
func (r *ReproduceResult) writeFiles(dir string) error {
	r.Files = map[string]string{
		"markdown": filepath.Join(dir, "results.md"),
		"json":     filepath.Join(dir, "results.json"),
		"cases":    filepath.Join(dir, "cases.csv"),
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
	return nil
}

// WriteJSON writes the result as results.json holds it.
func (r *ReproduceResult) WriteJSON(w io.Writer) error { return encodeJSON(w, r) }

// WriteTable prints the table, the settings it was made with and the
// files written, for a terminal.
func (r *ReproduceResult) WriteTable(w io.Writer) error {
	fmt.Fprintln(w)
	writeAligned(w, r.tableRows())
	fmt.Fprintln(w)
	for _, s := range r.settings() {
		fmt.Fprintln(w, s)
	}
	_, err := fmt.Fprintf(w, "wrote %s, %s and %s\n", r.Files["markdown"], r.Files["json"], r.Files["cases"])
	return err
}

func (r *ReproduceResult) writeMarkdown(w io.Writer) error {
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

func (r *ReproduceResult) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"dataset", "split", "case", "dice", metrics.NSDKey(r.TauMM), "hd95_mm", "truth_ml", "pred_ml", "image", "truth", "pred", "error"}); err != nil {
		return err
	}
	for _, row := range r.Rows {
		for _, c := range row.PerCase {
			rec := []string{row.Dataset, c.Split, c.Case, fmtValue(c.Dice, 6), fmtValue(c.NSDAt(r.TauMM), 6), fmtValue(c.HD95, 4),
				fmtValue(c.TruthML, 3), fmtValue(c.PredML, 3), c.Image, c.Truth, c.Pred, strings.ReplaceAll(c.Error, "\n", " ")}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
