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
	var a Accumulator
	a.Add(data)
	return a.Stats()
}

// Accumulator computes Stats over data that arrives in chunks, so that a
// volume can be described without holding it. Each chunk's mean and sum of
// squared deviations are computed in two passes and merged with Chan et
// al.'s pairwise formula, which keeps the SD as accurate as a two-pass
// computation over the whole data.
type Accumulator struct {
	n             int
	nonFinite     int
	min, max      float64
	sum, mean, m2 float64
	started       bool
}

// Add accumulates one chunk.
func (a *Accumulator) Add(data []float32) {
	if !a.started {
		a.min, a.max, a.started = math.Inf(1), math.Inf(-1), true
	}
	var n int
	var sum float64
	lo, hi := a.min, a.max
	for _, x := range data {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			a.nonFinite++
			continue
		}
		n++
		sum += f
		lo = math.Min(lo, f)
		hi = math.Max(hi, f)
	}
	a.min, a.max = lo, hi
	if n == 0 {
		return
	}
	mean := sum / float64(n)
	var m2 float64
	for _, x := range data {
		if f := float64(x); !math.IsNaN(f) && !math.IsInf(f, 0) {
			m2 += (f - mean) * (f - mean)
		}
	}
	if a.n == 0 {
		a.n, a.sum, a.mean, a.m2 = n, sum, mean, m2
		return
	}
	total := a.n + n
	d := mean - a.mean
	a.m2 += m2 + d*d*float64(a.n)*float64(n)/float64(total)
	a.mean += d * float64(n) / float64(total)
	a.sum += sum
	a.n = total
}

// Stats returns the statistics of everything added so far; Min, Max, Mean
// and SD are NaN when no value was finite.
func (a *Accumulator) Stats() Stats {
	s := Stats{Finite: a.n, NonFinite: a.nonFinite, Sum: a.sum}
	if a.n == 0 {
		s.Min, s.Max, s.Mean, s.SD = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		return s
	}
	s.Min, s.Max = a.min, a.max
	s.Mean = a.sum / float64(a.n)
	s.SD = math.Sqrt(a.m2 / float64(a.n))
	return s
}
