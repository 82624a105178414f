package train

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/covseg/covseg/internal/atomicfile"
)

// writeMetrics rewrites metrics.jsonl, metrics.csv and curves.png in dir
// from the epoch history (each atomically), so that they always match the
// checkpoint a run resumes from.
func writeMetrics(dir string, history []EpochRecord) error {
	err := atomicfile.Write(filepath.Join(dir, FileMetricsJSON), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range history {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	err = atomicfile.Write(filepath.Join(dir, FileMetricsCSV), func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"epoch", "phase", "phase_epoch", "train_loss", "val_loss", "val_dice", "val_cases", "lr", "steps", "seconds", "best"})
		for _, r := range history {
			cw.Write([]string{
				strconv.Itoa(r.Epoch), r.Phase, strconv.Itoa(r.PhaseEpoch), fmtFloat(r.TrainLoss),
				fmtOpt(r.ValLoss), fmtOpt(r.ValDice), strconv.Itoa(r.ValCases), fmtFloat(r.LR),
				strconv.FormatInt(r.Steps, 10), strconv.FormatFloat(r.Seconds, 'f', 3, 64), strconv.FormatBool(r.Best),
			})
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := writeCurves(filepath.Join(dir, FileCurves), history); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func fmtOpt(x *float64) string {
	if x == nil {
		return ""
	}
	return fmtFloat(*x)
}

// writeCurves draws the training and validation loss (top) and the
// validation Dice (bottom) against the epoch as a PNG.
func writeCurves(path string, history []EpochRecord) error {
	var train, val, dice plotter.XYs
	for _, r := range history {
		x := float64(r.Epoch)
		if finite(r.TrainLoss) {
			train = append(train, plotter.XY{X: x, Y: r.TrainLoss})
		}
		if r.ValLoss != nil {
			val = append(val, plotter.XY{X: x, Y: *r.ValLoss})
		}
		if r.ValDice != nil {
			dice = append(dice, plotter.XY{X: x, Y: *r.ValDice})
		}
	}
	lossPlot := plot.New()
	lossPlot.Title.Text = "Loss"
	lossPlot.X.Label.Text = "epoch"
	lossPlot.Legend.Top = true
	if err := addLine(lossPlot, "train", train, color.RGBA{R: 31, G: 119, B: 180, A: 255}); err != nil {
		return err
	}
	if err := addLine(lossPlot, "validation", val, color.RGBA{R: 255, G: 127, B: 14, A: 255}); err != nil {
		return err
	}
	dicePlot := plot.New()
	dicePlot.Title.Text = "Validation Dice (per-case mean)"
	dicePlot.X.Label.Text = "epoch"
	dicePlot.Y.Min, dicePlot.Y.Max = 0, 1
	if err := addLine(dicePlot, "", dice, color.RGBA{R: 44, G: 160, B: 44, A: 255}); err != nil {
		return err
	}

	img := vgimg.New(8*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	plots := [][]*plot.Plot{{lossPlot}, {dicePlot}}
	canvases := plot.Align(plots, tiles, dc)
	lossPlot.Draw(canvases[0][0])
	dicePlot.Draw(canvases[1][0])
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	})
}

// addLine adds a line with points to p (nothing when xy is empty).
func addLine(p *plot.Plot, name string, xy plotter.XYs, c color.Color) error {
	if len(xy) == 0 {
		return nil
	}
	l, pts, err := plotter.NewLinePoints(xy)
	if err != nil {
		return err
	}
	l.Color, pts.Color = c, c
	pts.Radius = vg.Points(2)
	p.Add(l, pts)
	if name != "" {
		p.Legend.Add(name, l, pts)
	}
	return nil
}

// stepLog appends StepRecords to steps.jsonl.
type stepLog struct {
	f *os.File
	w *bufio.Writer
}

// openStepLog opens dir/steps.jsonl for appending, first dropping the
// records after step keep (those of batches a resumed run will train
// again). keep < 0 starts a new file.
func openStepLog(dir string, keep int64) (*stepLog, error) {
	path := filepath.Join(dir, FileSteps)
	if keep >= 0 {
		if err := truncateSteps(path, keep); err != nil {
			return nil, err
		}
	} else if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("train: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return &stepLog{f: f, w: bufio.NewWriter(f)}, nil
}

// truncateSteps rewrites path keeping the records of steps ≤ keep.
func truncateSteps(path string, keep int64) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	var kept [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r StepRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			break // a line cut short by a crash ends the usable log
		}
		if r.Step <= keep {
			kept = append(kept, append([]byte(nil), sc.Bytes()...))
		}
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		for _, line := range kept {
			if _, err := w.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *stepLog) add(r StepRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = l.w.Write(append(b, '\n'))
	return err
}

func (l *stepLog) flush() error {
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("train: %s: %w", l.f.Name(), err)
	}
	return nil
}

// close flushes and closes the log; later calls do nothing.
func (l *stepLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.flush()
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("train: %w", cerr)
	}
	l.f = nil
	return err
}
