package volio

import "math"

// Stats summarises voxel values; non-finite values (NaN, ±Inf) are counted
// apart and left out of the other figures.
type Stats struct {
	Min, Max, Mean, SD float64
	Sum                float64
	Finite, NonFinite  int
}

// Compute returns the statistics of data (float64 accumulation).
func Compute(data []float32) Stats {
	s := Stats{Min: math.Inf(1), Max: math.Inf(-1)}
	for _, x := range data {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			s.NonFinite++
			continue
		}
		s.Finite++
		s.Sum += f
		s.Min = math.Min(s.Min, f)
		s.Max = math.Max(s.Max, f)
	}
	if s.Finite == 0 {
		s.Min, s.Max = math.NaN(), math.NaN()
		s.Mean, s.SD = math.NaN(), math.NaN()
		return s
	}
	s.Mean = s.Sum / float64(s.Finite)
	var ss float64
	for _, x := range data {
		f := float64(x)
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			ss += (f - s.Mean) * (f - s.Mean)
		}
	}
	s.SD = math.Sqrt(ss / float64(s.Finite))
	return s
}
