package metrics

import (
	"math"
	"slices"
)

// Stat summarises one figure over the cases where it is defined.
type Stat struct {
	N      int   `json:"n"` // cases where the figure is defined
	Mean   Value `json:"mean"`
	SD     Value `json:"sd"` // sample SD (denominator N − 1); undefined for N < 2
	Median Value `json:"median"`
	Min    Value `json:"min"`
	Max    Value `json:"max"`
}

// Summary aggregates the Results of several cases.
type Summary struct {
	Cases       int `json:"cases"`
	EmptyTruths int `json:"empty_truths"` // cases whose truth is empty (including both empty)
	EmptyPreds  int `json:"empty_preds"`  // cases whose prediction is empty (including both empty)
	BothEmpty   int `json:"both_empty"`
	// PooledDice is the micro-averaged Dice 2·Σ|P∩T| / Σ(|P|+|T|); 1 when
	// every mask is empty, undefined without cases.
	PooledDice  Value     `json:"pooled_dice"`
	Dice        Stat      `json:"dice"`
	IoU         Stat      `json:"iou"`
	Sensitivity Stat      `json:"sensitivity"`
	Precision   Stat      `json:"precision"`
	HD95        Stat      `json:"hd95_mm"`
	HD          Stat      `json:"hd_mm"`
	Taus        []float64 `json:"taus_mm"`
	NSD         []Stat    `json:"nsd"` // one per tau
	TruthML     Stat      `json:"truth_ml"`
	PredML      Stat      `json:"pred_ml"`
	DiffML      Stat      `json:"volume_diff_ml"`
}

// Summarize aggregates results, which must share their Taus (those of the
// first result are used; a result with other taus is ignored for NSD).
func Summarize(results []*Result) Summary {
	s := Summary{Cases: len(results)}
	var inter, total int
	for _, r := range results {
		inter += r.IntersectionVoxels
		total += r.TruthVoxels + r.PredVoxels
		if r.TruthVoxels == 0 {
			s.EmptyTruths++
		}
		if r.PredVoxels == 0 {
			s.EmptyPreds++
		}
		if r.TruthVoxels == 0 && r.PredVoxels == 0 {
			s.BothEmpty++
		}
	}
	switch {
	case len(results) == 0:
		s.PooledDice = Undefined()
	case total == 0:
		s.PooledDice = 1
	default:
		s.PooledDice = Value(float64(2*inter) / float64(total))
	}
	field := func(get func(*Result) Value) Stat {
		v := make([]float64, 0, len(results))
		for _, r := range results {
			v = append(v, float64(get(r)))
		}
		return Describe(v)
	}
	s.Dice = field(func(r *Result) Value { return r.Dice })
	s.IoU = field(func(r *Result) Value { return r.IoU })
	s.Sensitivity = field(func(r *Result) Value { return r.Sensitivity })
	s.Precision = field(func(r *Result) Value { return r.Precision })
	s.HD95 = field(func(r *Result) Value { return r.HD95 })
	s.HD = field(func(r *Result) Value { return r.HD })
	s.TruthML = field(func(r *Result) Value { return Value(r.TruthML) })
	s.PredML = field(func(r *Result) Value { return Value(r.PredML) })
	s.DiffML = field(func(r *Result) Value { return Value(r.DiffML) })
	if len(results) > 0 {
		s.Taus = append([]float64(nil), results[0].Taus...)
	}
	for i := range s.Taus {
		s.NSD = append(s.NSD, field(func(r *Result) Value {
			if !slices.Equal(r.Taus, s.Taus) {
				return Undefined()
			}
			return r.NSD[i]
		}))
	}
	return s
}

// Describe summarises the defined (finite) values among v.
func Describe(v []float64) Stat {
	x := make([]float64, 0, len(v))
	for _, f := range v {
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			x = append(x, f)
		}
	}
	st := Stat{N: len(x), Mean: Undefined(), SD: Undefined(), Median: Undefined(), Min: Undefined(), Max: Undefined()}
	n := len(x)
	if n == 0 {
		return st
	}
	slices.Sort(x)
	var sum float64
	for _, f := range x {
		sum += f
	}
	mean := sum / float64(n)
	st.Mean = Value(mean)
	if n > 1 {
		var ss float64
		for _, f := range x {
			ss += (f - mean) * (f - mean)
		}
		st.SD = Value(math.Sqrt(ss / float64(n-1)))
	}
	if n%2 == 1 {
		st.Median = Value(x[n/2])
	} else {
		st.Median = Value((x[n/2-1] + x[n/2]) / 2)
	}
	st.Min, st.Max = Value(x[0]), Value(x[n-1])
	return st
}
