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

// Add accumulates one chunk in one pass: squared deviations are summed
// from the chunk's first finite value, which keeps them as accurate as a
// two-pass computation for data whose spread is not many orders of
// magnitude below its values (CT in HU, masks, probabilities).
func (a *Accumulator) Add(data []float32) {
	if !a.started {
		a.min, a.max, a.started = math.Inf(1), math.Inf(-1), true
	}
	// A NaN or Inf anywhere makes the sums non-finite: only then is the
	// chunk counted and summed again, skipping them.
	c := sumsFinite(data)
	if c.sum-c.sum != 0 || c.s2-c.s2 != 0 {
		a.nonFinite += countNonFinite(data)
		c = sumsSkipping(data)
	}
	if c.n == 0 {
		return
	}
	a.min, a.max = math.Min(a.min, float64(c.lo)), math.Max(a.max, float64(c.hi))
	n := float64(c.n)
	d1 := c.sum - c.k*n
	mean := c.sum / n
	m2 := max(c.s2-d1*d1/n, 0)
	if a.n == 0 {
		a.n, a.sum, a.mean, a.m2 = c.n, c.sum, mean, m2
		return
	}
	total := a.n + c.n
	d := mean - a.mean
	a.m2 += m2 + d*d*float64(a.n)*n/float64(total)
	a.mean += d * n / float64(total)
	a.sum += c.sum
	a.n = total
}

// chunkSums are one chunk's finite count, sum, sum of squared deviations
// from k, minimum and maximum.
type chunkSums struct {
	n          int
	sum, s2, k float64
	lo, hi     float32
}

// sumsFinite computes chunkSums of data assumed to hold no NaN or Inf
// (the sums come out non-finite when it does), with
// two independent sets of accumulators so that the additions pipeline (the
// builtin min and max, which must handle NaN, are slower than the plain
// comparisons finite data allows).
func sumsFinite(data []float32) chunkSums {
	c := chunkSums{n: len(data), lo: float32(math.Inf(1)), hi: float32(math.Inf(-1))}
	if len(data) == 0 {
		return c
	}
	k := float64(data[0])
	var s0, s1, q0, q1 float64
	lo0, hi0 := data[0], data[0]
	lo1, hi1 := lo0, hi0
	i := 0
	for ; i+2 <= len(data); i += 2 {
		x0, x1 := data[i], data[i+1]
		f0, f1 := float64(x0), float64(x1)
		s0 += f0
		s1 += f1
		q0 += (f0 - k) * (f0 - k)
		q1 += (f1 - k) * (f1 - k)
		if x0 < lo0 {
			lo0 = x0
		}
		if x0 > hi0 {
			hi0 = x0
		}
		if x1 < lo1 {
			lo1 = x1
		}
		if x1 > hi1 {
			hi1 = x1
		}
	}
	if i < len(data) {
		x := data[i]
		f := float64(x)
		s0 += f
		q0 += (f - k) * (f - k)
		lo0, hi0 = min(lo0, x), max(hi0, x)
	}
	c.sum, c.s2, c.k = s0+s1, q0+q1, k
	c.lo, c.hi = min(lo0, lo1), max(hi0, hi1)
	return c
}

// sumsSkipping computes chunkSums over the finite values of data.
func sumsSkipping(data []float32) chunkSums {
	c := chunkSums{lo: float32(math.Inf(1)), hi: float32(math.Inf(-1))}
	first := true
	for _, x := range data {
		if x-x != 0 {
			continue
		}
		f := float64(x)
		if first {
			c.k, first = f, false
		}
		c.n++
		c.sum += f
		c.s2 += (f - c.k) * (f - c.k)
		c.lo = min(c.lo, x)
		c.hi = max(c.hi, x)
	}
	return c
}

// countNonFinite counts the NaN and ±Inf values of data.
func countNonFinite(data []float32) int {
	n := 0
	for _, x := range data {
		if x-x != 0 { // NaN - NaN and Inf - Inf are NaN; finite - itself is 0
			n++
		}
	}
	return n
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
