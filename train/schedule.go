package train

import "math"

// OneCycle evaluates fastai's fit_one_cycle schedule for one phase.
type OneCycle struct {
	ScheduleConfig
	LRMax float64
}

// cosineRamp is fastai's SchedCos: start at pos 0, end at pos 1, along half
// a cosine.
func cosineRamp(start, end, pos float64) float64 {
	return start + (1+math.Cos(math.Pi*(1-pos)))*(end-start)/2
}

// At returns the learning rate and β1 at pos ∈ [0, 1], the fraction of the
// phase's updates already done. Below PctStart the learning rate rises from
// LRMax/Div to LRMax while β1 falls from Beta1Max to Beta1Min; after it the
// learning rate falls to LRMax/DivFinal and β1 climbs back, both along
// cosines.
func (s OneCycle) At(pos float64) (lr, beta1 float64) {
	pos = min(max(pos, 0), 1)
	if pos < s.PctStart {
		p := pos / s.PctStart
		return cosineRamp(s.LRMax/s.Div, s.LRMax, p), cosineRamp(s.Beta1Max, s.Beta1Min, p)
	}
	p := (pos - s.PctStart) / (1 - s.PctStart)
	return cosineRamp(s.LRMax, s.LRMax/s.DivFinal, p), cosineRamp(s.Beta1Min, s.Beta1Max, p)
}

// UpdatesPerEpoch is the number of optimiser updates in an epoch of n
// batches with gradients accumulated over acc batches: ⌈n/acc⌉ (a last,
// shorter window at the end of the epoch is updated too).
func UpdatesPerEpoch(n, acc int) int {
	return (n + acc - 1) / acc
}

// position is the schedule position of update u (0-based) of a phase of
// total updates: u/total, as fastai's ParamScheduler computes it before
// each batch.
func position(u, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(u) / float64(total)
}
