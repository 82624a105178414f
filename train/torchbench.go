package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
)

// TorchSummary is the summary line of tools/torch_train_bench.py: PyTorch's
// training step of the paper's network, the reference covseg's CPU
// training is measured against.
type TorchSummary struct {
	Engine         string  `json:"engine"`
	Threads        int     `json:"threads"`
	StepMedianS    float64 `json:"step_median_s"`
	StepCPUMedianS float64 `json:"step_cpu_median_s"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
}

// TorchBench runs script (tools/torch_train_bench.py) with python on the
// CPU: steps training steps at 1x1xDxHxW with threads threads. It returns
// the script's summary, or an error with its output (e.g. when torch is
// not installed: apt-get install python3-torch python3-torchvision).
func TorchBench(python, script string, shape [3]int, steps, threads int) (*TorchSummary, error) {
	cmd := exec.Command(python, script, "--device", "cpu", "--steps", strconv.Itoa(steps),
		"--threads", strconv.Itoa(threads),
		"--shape", strconv.Itoa(shape[0]), strconv.Itoa(shape[1]), strconv.Itoa(shape[2]))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("train: PyTorch reference %s %s: %w\n%s", python, script, err, stderr.Bytes())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var ev struct {
			Event string `json:"event"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "summary" {
			var s TorchSummary
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				return nil, fmt.Errorf("train: PyTorch reference summary: %w", err)
			}
			return &s, nil
		}
	}
	return nil, fmt.Errorf("train: PyTorch reference %s printed no summary:\n%s%s", script, out, stderr.Bytes())
}

// Comparison is covseg's training step over PyTorch's, measured in the
// same run.
type Comparison struct {
	Event string `json:"event"` // "compare"
	// StepRatio and CPURatio are covseg's median wall and CPU seconds per
	// step over PyTorch's; RSSRatio is the peak resident memory's ratio.
	StepRatio float64      `json:"x_torch"`
	CPURatio  float64      `json:"cpu_x_torch"`
	RSSRatio  float64      `json:"rss_x_torch"`
	Torch     TorchSummary `json:"torch"`
}

// Compare returns covseg's summary against PyTorch's.
func Compare(s *BenchSummary, t *TorchSummary) Comparison {
	c := Comparison{Event: "compare", Torch: *t}
	if t.StepMedianS > 0 {
		c.StepRatio = s.StepMedianS / t.StepMedianS
	}
	if t.StepCPUMedianS > 0 {
		c.CPURatio = s.StepCPUMedianS / t.StepCPUMedianS
	}
	if t.PeakRSSMB > 0 {
		c.RSSRatio = s.PeakRSSMB / t.PeakRSSMB
	}
	return c
}
