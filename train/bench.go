package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/covseg/covseg/internal/procstat"

	"github.com/gomlx/gomlx/backends"

	"github.com/covseg/covseg/model"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// Shape is the input's D, H, W (batch 1, one channel).
	Shape [3]int
	// Steps is the number of training steps, the first of which compiles.
	Steps int
	// DType is DTypeFloat32 or DTypeBFloat16.
	DType string
	// Width is the network's width multiplier (1: the paper's network).
	Width float64
	// Backend runs the steps.
	Backend backends.Backend
}

// BenchStep is one timed training step.
type BenchStep struct {
	Event   string  `json:"event"` // "step"
	Step    int     `json:"step"`
	Seconds float64 `json:"seconds"`
	Loss    float64 `json:"loss"`
}

// BenchSummary is what Bench measured.
type BenchSummary struct {
	Event   string  `json:"event"` // "summary"
	Engine  string  `json:"engine"`
	Backend string  `json:"backend"`
	DType   string  `json:"dtype"`
	Shape   []int   `json:"shape"` // N, C, D, H, W
	Width   float64 `json:"width"`
	Params  int     `json:"params"`
	Steps   int     `json:"steps"`
	// FirstStepS is the first step, compilation included; the statistics
	// cover the others.
	FirstStepS  float64 `json:"first_step_s"`
	StepMedianS float64 `json:"step_median_s"`
	StepMeanS   float64 `json:"step_mean_s"`
	StepMinS    float64 `json:"step_min_s"`
	// PeakRSSMB is the process's peak resident memory (the device memory
	// too on a CPU backend).
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// PeakDeviceMB is the accelerator's peak memory, nil where the backend
	// cannot report it (GoMLX's XLA backend does not expose PJRT's memory
	// statistics), with DeviceMemory saying why.
	PeakDeviceMB *float64 `json:"peak_device_mb"`
	DeviceMemory string   `json:"device_memory"`
	// StepCPUMedianS is the median CPU time (user + system, all threads)
	// of the steps after the first: less sensitive than the wall time to
	// other processes sharing the cores.
	StepCPUMedianS float64 `json:"step_cpu_median_s"`
	// StepFLOPs counts the convolutions' floating-point operations of a
	// step: three times the forward pass's (forward, input gradient,
	// kernel gradient; see model.ConvFLOPs). GFLOPS is StepFLOPs over the
	// median step time.
	StepFLOPs int64   `json:"step_conv_flops"`
	GFLOPS    float64 `json:"gflops"`
}

// Bench trains a randomly initialised network on random data for
// opt.Steps steps (forward, the recipe's loss, backward and an AdamW
// update each) and reports every step through emit, then the summary.
func Bench(opt BenchOptions, emit func(any)) (*BenchSummary, error) {
	if opt.Steps < 2 {
		return nil, fmt.Errorf("train: bench needs at least 2 steps (the first compiles), got %d", opt.Steps)
	}
	cfg := DefaultConfig()
	cfg.Data.Preprocess.Grid = opt.Shape
	cfg.Model.Width = opt.Width
	cfg.Backend.DType = opt.DType
	cfg.Phases = []Phase{{Name: "bench", Epochs: 1, LR: 1e-3, EncoderLRMult: 1}}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mcfg, ctx, err := NewModel(cfg)
	if err != nil {
		return nil, err
	}
	specs, err := model.ParamSpecs(mcfg)
	if err != nil {
		return nil, err
	}
	eng, err := NewEngine(opt.Backend, ctx, mcfg, cfg)
	if err != nil {
		return nil, err
	}
	b := benchBatch(opt.Shape)
	sched := OneCycle{ScheduleConfig: cfg.Schedule, LRMax: 1e-3}
	var times, cpus []float64
	for i := range opt.Steps {
		lr, beta1 := sched.At(float64(i) / float64(opt.Steps))
		start, cpu := time.Now(), procstat.CPUTime().Seconds()
		loss, _, err := eng.Step(b, lr, beta1)
		if err != nil {
			return nil, err
		}
		sec := time.Since(start).Seconds()
		times, cpus = append(times, sec), append(cpus, procstat.CPUTime().Seconds()-cpu)
		emit(BenchStep{Event: "step", Step: i + 1, Seconds: sec, Loss: loss})
	}
	s := &BenchSummary{
		Event: "summary", Engine: "covseg", Backend: opt.Backend.String(), DType: opt.DType,
		Shape: []int{1, 1, opt.Shape[0], opt.Shape[1], opt.Shape[2]}, Width: opt.Width,
		Params: model.CountParams(specs).Total, Steps: opt.Steps, FirstStepS: times[0],
		PeakRSSMB:    float64(procstat.PeakRSS()) / (1 << 20),
		DeviceMemory: "n/a: GoMLX's backends do not report device memory; on a GPU sample nvidia-smi",
	}
	rest := slices.Clone(times[1:])
	slices.Sort(rest)
	s.StepMinS = rest[0]
	s.StepMedianS = median(rest)
	for _, t := range rest {
		s.StepMeanS += t / float64(len(rest))
	}
	s.StepCPUMedianS = median(cpus[1:])
	if flops, err := model.ConvFLOPs(mcfg, 1, opt.Shape[0], opt.Shape[1], opt.Shape[2]); err == nil {
		s.StepFLOPs = 3 * flops
		s.GFLOPS = float64(s.StepFLOPs) / s.StepMedianS / 1e9
	}
	emit(s)
	return s, nil
}

// median returns the median of v (not empty).
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// benchBatch is a reproducible random case: intensities in [0, 1] and a
// lesion mask of about a fifth of the voxels, in blobs.
func benchBatch(shape [3]int) Batch {
	rng := rand.New(rand.NewPCG(1, 2))
	n := shape[0] * shape[1] * shape[2]
	b := Batch{Shape: [4]int{1, shape[0], shape[1], shape[2]}, Image: make([]float32, n), Mask: make([]uint8, n)}
	fz, fy, fx := rng.Float64()*3, rng.Float64()*3, rng.Float64()*3
	for z := range shape[0] {
		for y := range shape[1] {
			for x := range shape[2] {
				i := (z*shape[1]+y)*shape[2] + x
				s := math.Sin(float64(z)/3+fz) * math.Sin(float64(y)/7+fy) * math.Sin(float64(x)/7+fx)
				b.Image[i] = float32(0.5 + 0.3*s + 0.1*rng.NormFloat64())
				if s > 0.3 {
					b.Mask[i] = 1
				}
			}
		}
	}
	return b
}
