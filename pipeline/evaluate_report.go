package pipeline

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/covseg/covseg/eval/metrics"
	"github.com/covseg/covseg/internal/atomicfile"
)

// EvaluateReport is what Evaluate found: per-case results and the
// summary. Its JSON (WriteJSON) is one object with taus_mm, label, cases
// (metrics.CaseResult) and summary.
type EvaluateReport struct {
	Taus    []float64            `json:"taus_mm"`
	Label   int                  `json:"label"` // 0: voxels > 0
	Cases   []metrics.CaseResult `json:"cases"`
	Summary EvaluateSummary      `json:"summary"`
}

// EvaluateSummary is the report's summary: counts, pooled Dice and
// per-figure statistics (mean, sample SD, median, min, max, n) over the
// evaluated cases, under the keys of metrics.CaseResult (dice, hd95_mm,
// nsd_<τ>mm, volume_diff_ml, ...).
type EvaluateSummary struct {
	Cases       int           `json:"cases"`
	Evaluated   int           `json:"evaluated"`
	Failed      int           `json:"failed"`
	EmptyTruths int           `json:"empty_truths"`
	EmptyPreds  int           `json:"empty_preds"`
	BothEmpty   int           `json:"both_empty"`
	PooledDice  metrics.Value `json:"pooled_dice"`
	Dice        metrics.Stat  `json:"dice"`
	IoU         metrics.Stat  `json:"iou"`
	Sensitivity metrics.Stat  `json:"sensitivity"`
	Precision   metrics.Stat  `json:"precision"`
	HD95        metrics.Stat  `json:"hd95_mm"`
	HD          metrics.Stat  `json:"hd_mm"`
	// NSD holds one statistic per tolerance of Taus: keys nsd_<τ>mm.
	Taus    []float64      `json:"-"`
	NSD     []metrics.Stat `json:"-"`
	TruthML metrics.Stat   `json:"truth_ml"`
	PredML  metrics.Stat   `json:"pred_ml"`
	DiffML  metrics.Stat   `json:"volume_diff_ml"`
}

// evaluateSummaryFields is EvaluateSummary without its methods.
type evaluateSummaryFields EvaluateSummary

// MarshalJSON writes the summary with one nsd_<τ>mm key per tolerance.
func (s EvaluateSummary) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(evaluateSummaryFields(s))
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(s.Taus))
	for i := range s.Taus {
		vals[i] = s.NSD[i]
	}
	return metrics.AppendNSDKeys(b, s.Taus, vals)
}

func newReport(cases []evalCase, results []metrics.CaseResult, o EvaluateOptions) *EvaluateReport {
	rep := &EvaluateReport{Taus: o.Taus, Label: o.Label, Cases: results}
	var ok []*metrics.Result
	for _, r := range results {
		if r.Result != nil {
			ok = append(ok, r.Result)
		}
	}
	s := metrics.Summarize(ok)
	rep.Summary = EvaluateSummary{
		Cases: len(results), Evaluated: len(ok), Failed: len(results) - len(ok),
		EmptyTruths: s.EmptyTruths, EmptyPreds: s.EmptyPreds, BothEmpty: s.BothEmpty,
		PooledDice: s.PooledDice, Dice: s.Dice, IoU: s.IoU, Sensitivity: s.Sensitivity,
		Precision: s.Precision, HD95: s.HD95, HD: s.HD,
		Taus:    o.Taus,
		TruthML: s.TruthML, PredML: s.PredML, DiffML: s.DiffML,
	}
	for i := range o.Taus {
		st := metrics.Describe(nil)
		if i < len(s.NSD) {
			st = s.NSD[i]
		}
		rep.Summary.NSD = append(rep.Summary.NSD, st)
	}
	return rep
}

// Err says how many cases failed, or is nil when every case was
// evaluated.
func (rep *EvaluateReport) Err() error {
	if n := rep.Summary.Failed; n > 0 {
		return fmt.Errorf("evaluate: %d of %d cases failed", n, len(rep.Cases))
	}
	return nil
}

// tauKey names a tolerance in JSON keys and column headers: "1", "2.5".
func tauKey(tau float64) string { return strconv.FormatFloat(tau, 'g', -1, 64) }

// writeFile writes path atomically with fill.
func writeFile(path string, fill func(io.Writer) error) error {
	if err := atomicfile.Write(path, fill); err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	return nil
}

// WriteJSON writes the report as one indented JSON object.
func (rep *EvaluateReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// fmtValue formats a figure with the given decimals, "" when undefined.
func fmtValue(v metrics.Value, decimals int) string {
	if !v.Defined() {
		return ""
	}
	return strconv.FormatFloat(float64(v), 'f', decimals, 64)
}

// columns returns the per-case column headers and a row formatter; full
// precision (-1 decimals) for CSV, rounded for tables.
func (rep *EvaluateReport) columns(dist, score, ml int) ([]string, func(metrics.CaseResult) []string) {
	head := []string{"dice", "iou", "sensitivity", "precision", "hd95_mm", "hd_mm"}
	for _, t := range rep.Taus {
		head = append(head, metrics.NSDKey(t))
	}
	head = append(head, "truth_ml", "pred_ml", "volume_diff_ml")
	row := func(c metrics.CaseResult) []string {
		r := []string{fmtValue(c.Dice, score), fmtValue(c.IoU, score), fmtValue(c.Sensitivity, score),
			fmtValue(c.Precision, score), fmtValue(c.HD95, dist), fmtValue(c.HD, dist)}
		for _, t := range rep.Taus {
			r = append(r, fmtValue(c.NSDAt(t), score))
		}
		return append(r, fmtValue(c.TruthML, ml), fmtValue(c.PredML, ml), fmtValue(c.DiffML, ml))
	}
	return head, row
}

// WriteCSV writes one row per case: case, paths, figures at full
// precision (empty where undefined), voxel counts and the error if any.
func (rep *EvaluateReport) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head, row := rep.columns(-1, -1, -1)
	cw.Write(append(append([]string{"case", "pred", "truth"}, head...), "truth_voxels", "pred_voxels", "error"))
	for _, c := range rep.Cases {
		tv, pv := "", ""
		if c.TruthVoxels != nil {
			tv, pv = strconv.Itoa(*c.TruthVoxels), strconv.Itoa(*c.PredVoxels)
		}
		cw.Write(append(append([]string{c.Case, c.Pred, c.Truth}, row(c)...), tv, pv, c.Error))
	}
	cw.Flush()
	return cw.Error()
}

// statRows returns the summary as rows: figure, mean ± SD, median, min,
// max, n.
func (rep *EvaluateReport) statRows() [][]string {
	s := rep.Summary
	type named struct {
		name     string
		st       metrics.Stat
		decimals int
	}
	list := []named{{"Dice", s.Dice, 4}, {"IoU", s.IoU, 4}, {"sensitivity", s.Sensitivity, 4},
		{"precision", s.Precision, 4}, {"HD95 (mm)", s.HD95, 2}, {"HD (mm)", s.HD, 2}}
	for i, t := range rep.Taus {
		list = append(list, named{"NSD at " + tauKey(t) + " mm", s.NSD[i], 4})
	}
	list = append(list, named{"truth (ml)", s.TruthML, 2}, named{"prediction (ml)", s.PredML, 2},
		named{"pred − truth (ml)", s.DiffML, 2})
	var rows [][]string
	for _, n := range list {
		f := func(v metrics.Value) string { return orNA(fmtValue(v, n.decimals)) }
		rows = append(rows, []string{n.name, f(n.st.Mean) + " ± " + f(n.st.SD), f(n.st.Median),
			f(n.st.Min), f(n.st.Max), strconv.Itoa(n.st.N)})
	}
	return rows
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// countsLine says how many cases were evaluated, failed and empty.
func (rep *EvaluateReport) countsLine() string {
	s := rep.Summary
	return fmt.Sprintf("%d cases: %d evaluated, %d failed; empty truths %d, empty predictions %d, both empty %d; pooled Dice %s",
		s.Cases, s.Evaluated, s.Failed, s.EmptyTruths, s.EmptyPreds, s.BothEmpty, orNA(fmtValue(s.PooledDice, 4)))
}

// WriteTable prints the cases, failures and summary for a terminal.
func (rep *EvaluateReport) WriteTable(w io.Writer) error {
	head, row := rep.columns(2, 4, 2)
	rows := [][]string{append([]string{"case"}, head...)}
	for _, c := range rep.Cases {
		if c.Error == "" {
			cells := row(c)
			for i := range cells {
				cells[i] = orNA(cells[i])
			}
			rows = append(rows, append([]string{c.Case}, cells...))
		}
	}
	writeAligned(w, rows)
	for _, c := range rep.Cases {
		if c.Error != "" {
			fmt.Fprintf(w, "FAILED %s: %s\n", c.Case, c.Error)
		}
	}
	fmt.Fprintf(w, "\n%s\n", rep.countsLine())
	writeAligned(w, append([][]string{{"", "mean ± SD", "median", "min", "max", "n"}}, rep.statRows()...))
	_, err := fmt.Fprintln(w, "SD: sample standard deviation (n − 1); mean, SD and median over the cases where a figure is defined.")
	return err
}

// writeAligned prints rows as columns two spaces apart, the first column
// left-aligned and the others right-aligned.
func writeAligned(w io.Writer, rows [][]string) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// WriteMarkdown writes the cases and the summary as Markdown tables.
func (rep *EvaluateReport) WriteMarkdown(w io.Writer) error {
	head, row := rep.columns(2, 4, 2)
	fmt.Fprintf(w, "# covseg evaluate\n\n%s.\n\n", rep.countsLine())
	mdRow(w, append([]string{"case"}, head...))
	mdRow(w, append([]string{"---"}, strings.Split(strings.Repeat("---:,", len(head)-1)+"---:", ",")...))
	for _, c := range rep.Cases {
		if c.Error == "" {
			cells := row(c)
			for i := range cells {
				cells[i] = orNA(cells[i])
			}
			mdRow(w, append([]string{mdEscape(c.Case)}, cells...))
		}
	}
	if rep.Summary.Failed > 0 {
		fmt.Fprintf(w, "\n## Failed cases\n\n")
		for _, c := range rep.Cases {
			if c.Error != "" {
				fmt.Fprintf(w, "- %s: %s\n", mdEscape(c.Case), mdEscape(c.Error))
			}
		}
	}
	fmt.Fprintf(w, "\n## Summary\n\n")
	mdRow(w, []string{"figure", "mean ± SD", "median", "min", "max", "n"})
	mdRow(w, []string{"---", "---:", "---:", "---:", "---:", "---:"})
	for _, r := range rep.statRows() {
		mdRow(w, r)
	}
	_, err := fmt.Fprintf(w, "\nSD is the sample standard deviation (n − 1). Masks read as voxels %s; "+
		"definitions as in covseg's metrics package (HD95: max of the directed 95th percentiles).\n", rep.labelRule())
	return err
}

func (rep *EvaluateReport) labelRule() string {
	if rep.Label == 0 {
		return "> 0"
	}
	return "= " + strconv.Itoa(rep.Label)
}

func mdRow(w io.Writer, cells []string) {
	fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
}

// mdEscape keeps a cell's text from breaking the table.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
