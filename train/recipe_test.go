package train

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// lossOf evaluates Loss on the given logits [B, 2, 1, 1, W] and labels.
func lossOf(t *testing.T, logits []float32, labels []uint8, b, w int, c LossConfig) (total, dice, ce float64) {
	t.Helper()
	out, err := mlctx.ExecOnceN(testBackend(), mlctx.New(), func(_ *mlctx.Context, l, y *graph.Node) []*graph.Node {
		terms := Loss(l, y, c)
		return []*graph.Node{terms.Total, terms.Dice, terms.CE}
	}, tensors.FromFlatDataAndDimensions(logits, b, 2, 1, 1, w), tensors.FromFlatDataAndDimensions(labels, b, 1, 1, w))
	if err != nil {
		t.Fatal(err)
	}
	return scalar(out[0]), scalar(out[1]), scalar(out[2])
}

// TestLossHandComputed checks the loss on logits whose softmax is exact:
// for voxels with logits (0, ln 3), (0, 0), (ln 3, 0) the probabilities of
// class 1 are 3/4, 1/2, 1/4.
func TestLossHandComputed(t *testing.T) {
	ln3 := float32(math.Log(3))
	logits := []float32{0, 0, ln3, ln3, 0, 0} // [1, 2, 1, 1, 3]: class 0 row, class 1 row
	labels := []uint8{1, 0, 1}
	// Σpt = 3/4 + 1/4 = 1, Σp = 3/2, Σt = 2: dice = 2/(7/2) = 4/7.
	// ce = (−ln 3/4 − ln 1/2 − ln 1/4)/3 = ln(32/3)/3.
	wantDice := 4.0 / 7
	wantCE := math.Log(32.0/3) / 3
	total, dice, ce := lossOf(t, logits, labels, 1, 3, LossConfig{DiceWeight: 1, CEWeight: 1, DiceClass: 1})
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"dice", dice, wantDice}, {"ce", ce, wantCE}, {"total", total, 1 - wantDice + wantCE}} {
		if e := relErr(c.got, c.want); e > 1e-6 {
			t.Errorf("%s = %.9f, want %.9f", c.name, c.got, c.want)
		}
	}
	// Smooth 1: (2 + 1)/(7/2 + 1) = 2/3; weights 2 and 0.5.
	total, dice, _ = lossOf(t, logits, labels, 1, 3, LossConfig{DiceWeight: 2, CEWeight: 0.5, DiceClass: 1, DiceSmooth: 1})
	if relErr(dice, 2.0/3) > 1e-6 || relErr(total, 2*(1-2.0/3)+0.5*wantCE) > 1e-6 {
		t.Errorf("smooth 1: dice %.9f total %.9f, want %.9f and %.9f", dice, total, 2.0/3, 2*(1-2.0/3)+0.5*wantCE)
	}

	// Batch-flattened: a second case of three background voxels predicted
	// at p1 = 1/4 adds 3/4 to Σp and nothing else: dice = 2/(17/4) = 8/17
	// (a per-case mean would be (4/7 + 0)/2). Its voxels add −ln(3/4) each
	// to the cross-entropy, now a mean over 6 voxels.
	logits2 := append(logits, ln3, ln3, ln3, 0, 0, 0)
	labels2 := append(labels, 0, 0, 0)
	_, dice, ce = lossOf(t, logits2, labels2, 2, 3, LossConfig{DiceWeight: 1, CEWeight: 1, DiceClass: 1})
	wantCE2 := (math.Log(32.0/3) + 3*math.Log(4.0/3)) / 6
	if relErr(dice, 8.0/17) > 1e-6 || relErr(ce, wantCE2) > 1e-6 {
		t.Errorf("batch of 2: dice %.9f ce %.9f, want %.9f and %.9f", dice, ce, 8.0/17, wantCE2)
	}
}

// TestDiceCounts checks the hard per-case Dice of the validation.
func TestDiceCounts(t *testing.T) {
	// Two cases of 4 voxels; class 1 wins where its logit is larger.
	logits := []float32{
		0, 0, 0, 0 /* class 1: */, 1, 1, -1, -1, // case 0: predicted 1 1 0 0
		0, 0, 0, 0, -1, -1, -1, -1, // case 1: predicted 0 0 0 0
	}
	labels := []uint8{1, 0, 1, 0, 0, 0, 0, 0}
	out, err := mlctx.ExecOnceN(testBackend(), mlctx.New(), func(_ *mlctx.Context, l, y *graph.Node) []*graph.Node {
		i, p, tr := DiceCounts(l, y, 1)
		return []*graph.Node{i, p, tr}
	}, tensors.FromFlatDataAndDimensions(logits, 2, 2, 1, 1, 4), tensors.FromFlatDataAndDimensions(labels, 2, 1, 1, 4))
	if err != nil {
		t.Fatal(err)
	}
	inter, pred, truth := tensors.MustCopyFlatData[int32](out[0]), tensors.MustCopyFlatData[int32](out[1]), tensors.MustCopyFlatData[int32](out[2])
	want := [3][]int32{{1, 0}, {2, 0}, {2, 0}}
	for k, got := range [][]int32{inter, pred, truth} {
		if got[0] != want[k][0] || got[1] != want[k][1] {
			t.Errorf("counts %d: %v, want %v", k, got, want[k])
		}
	}
	if d := Dice(1, 2, 2); d != 0.5 {
		t.Errorf("Dice(1, 2, 2) = %v", d)
	}
	if d := Dice(0, 0, 0); d != 1 {
		t.Errorf("Dice of two empty masks = %v, want 1", d)
	}
	if d := Dice(0, 3, 0); d != 0 {
		t.Errorf("Dice of a false positive case = %v, want 0", d)
	}
}

// TestOneCycle checks fastai's schedule at hand-computed points: lr 1e-2,
// div 25, div_final 1e5, 25 % warm-up, β1 0.95 → 0.85 → 0.95. Halfway
// along a cosine ramp the value is the mean of its ends.
func TestOneCycle(t *testing.T) {
	s := OneCycle{ScheduleConfig: DefaultConfig().Schedule, LRMax: 1e-2}
	for _, c := range []struct{ pos, lr, beta1 float64 }{
		{0, 4e-4, 0.95},
		{0.125, (4e-4 + 1e-2) / 2, 0.90},
		{0.25, 1e-2, 0.85},
		{0.625, (1e-2 + 1e-7) / 2, 0.90},
		{1, 1e-7, 0.95},
		// A quarter along the warm-up: start + (1 − cos(π/4))/2·(end − start).
		{0.0625, 4e-4 + (1-math.Sqrt(0.5))/2*(1e-2-4e-4), 0.95 - (1-math.Sqrt(0.5))/2*0.1},
	} {
		lr, b1 := s.At(c.pos)
		if relErr(lr, c.lr) > 1e-9 || relErr(b1, c.beta1) > 1e-12 {
			t.Errorf("At(%v) = %.10g, %.10g; want %.10g, %.10g", c.pos, lr, b1, c.lr, c.beta1)
		}
	}
	// The learning rate rises monotonically, then falls.
	prev, _ := s.At(0)
	for i := 1; i <= 100; i++ {
		lr, _ := s.At(float64(i) / 100)
		if up := float64(i)/100 <= 0.25; up != (lr >= prev) {
			t.Fatalf("lr at %v: %v after %v", float64(i)/100, lr, prev)
		}
		prev = lr
	}
	if n := UpdatesPerEpoch(7, 3); n != 3 {
		t.Errorf("UpdatesPerEpoch(7, 3) = %d, want 3", n)
	}
	if p := position(3, 12); p != 0.25 {
		t.Errorf("position(3, 12) = %v", p)
	}
}

// adamCase is a tiny optimisation problem: loss = Σ w·cw + Σ b·cb, so the
// gradients are the constants cw and cb.
type adamCase struct {
	ctx    *mlctx.Context
	w, b   *mlctx.Variable
	cw, cb []float32
	exec   *mlctx.Exec
	params []Param
}

func newAdamCase(t *testing.T, wd float64, clip float64) *adamCase {
	ctx := mlctx.New()
	a := &adamCase{ctx: ctx, cw: []float32{0.5, -4}, cb: []float32{0.25}}
	a.w = ctx.InAbsPath("/p").VariableWithValue("w", []float32{1, 3})
	a.b = ctx.InAbsPath("/p").VariableWithValue("b", []float32{-2})
	if err := InitState(ctx, []*mlctx.Variable{a.w, a.b}); err != nil {
		t.Fatal(err)
	}
	a.params = []Param{{Var: a.w, LRMult: 0.5, WeightDecay: wd}, {Var: a.b, LRMult: 2}}
	opt := AdamW{Beta2: 0.99, Eps: 1e-5}
	var err error
	a.exec, err = mlctx.NewExec(testBackend(), ctx, func(ctx *mlctx.Context, lr, beta1 *graph.Node) *graph.Node {
		g := lr.Graph()
		loss := graph.Add(
			graph.ReduceAllSum(graph.Mul(a.w.ValueGraph(g), graph.Const(g, a.cw))),
			graph.ReduceAllSum(graph.Mul(a.b.ValueGraph(g), graph.Const(g, a.cb))))
		grads := graph.Gradient(loss, a.w.ValueGraph(g), a.b.ValueGraph(g))
		norm := GlobalNorm(grads)
		if clip > 0 {
			grads = ClipByGlobalNorm(grads, norm, clip)
		}
		opt.Update(ctx, a.params, grads, lr, beta1)
		return norm
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *adamCase) values(t *testing.T) []float64 {
	var out []float64
	for _, v := range []*mlctx.Variable{a.w, a.b} {
		for _, x := range tensors.MustCopyFlatData[float32](v.MustValue()) {
			out = append(out, float64(x))
		}
	}
	return out
}

// TestAdamWFirstStep checks one update against values worked out by hand:
// w[0] = 1 with g = 0.5, lr 0.1 times the multiplier 0.5, wd 0.01: decay to
// 1 − 0.05·0.01 = 0.9995; m = 0.05, v = 0.0025, m̂ = 0.5, v̂ = 0.25, step
// 0.05·0.5/(0.5 + 1e-5) = 0.025/0.50001; b = −2 (no decay, multiplier 2)
// with g = 0.25: step 0.2·0.25/(0.25 + 1e-5).
func TestAdamWFirstStep(t *testing.T) {
	a := newAdamCase(t, 0.01, 0)
	out, err := a.exec.Exec(float32(0.1), float32(0.9))
	if err != nil {
		t.Fatal(err)
	}
	got := a.values(t)
	want := []float64{
		0.9995 - 0.025/0.50001,        // 0.949500999980
		3*0.9995 - 0.05*(-4)/(4+1e-5), // g = −4: m̂ = −4, √v̂ = 4
		-2 - 0.05/0.25001,
	}
	for i := range want {
		if e := relErr(got[i], want[i]); e > 1e-6 {
			t.Errorf("value %d = %.9f, want %.9f", i, got[i], want[i])
		}
	}
	if n := scalar(out[0]); relErr(n, math.Sqrt(0.25+16+0.0625)) > 1e-6 {
		t.Errorf("gradient norm %v, want √16.3125", n)
	}
	// The step counts of both parameters are 1.
	for _, v := range []*mlctx.Variable{a.w, a.b} {
		s := a.ctx.GetVariableByScopeAndName(ScopeStep, v.Name())
		if s == nil || s.MustValue().Value().(float32) != 1 {
			t.Errorf("step of %s is not 1", v.Name())
		}
	}
}

// TestAdamWSchedule runs several updates with a changing lr and β1 and
// compares them with a plain float64 implementation of the update rule,
// with and without weight decay.
func TestAdamWSchedule(t *testing.T) {
	for _, wd := range []float64{0, 1e-1} {
		a := newAdamCase(t, wd, 0)
		vals := a.values(t)
		grads := []float64{0.5, -4, 0.25}
		decay := []float64{wd, wd, 0}
		mult := []float64{0.5, 0.5, 2}
		m, v := make([]float64, 3), make([]float64, 3)
		sched := [][2]float64{{0.1, 0.95}, {0.3, 0.9}, {0.05, 0.85}, {0.2, 0.9}}
		for k, hp := range sched {
			if _, err := a.exec.Exec(float32(hp[0]), float32(hp[1])); err != nil {
				t.Fatal(err)
			}
			step := float64(k + 1)
			for i := range vals {
				lr, b1 := hp[0]*mult[i], hp[1]
				vals[i] *= 1 - lr*decay[i]
				m[i] = b1*m[i] + (1-b1)*grads[i]
				v[i] = 0.99*v[i] + 0.01*grads[i]*grads[i]
				vals[i] -= lr * (m[i] / (1 - math.Pow(b1, step))) / (math.Sqrt(v[i]/(1-math.Pow(0.99, step))) + 1e-5)
			}
			got := a.values(t)
			for i := range vals {
				if e := math.Abs(got[i]-vals[i]) / math.Max(1, math.Abs(vals[i])); e > 2e-6 {
					t.Errorf("wd %v step %d value %d: %.9f, want %.9f", wd, k+1, i, got[i], vals[i])
				}
			}
		}
	}
}

// TestClipGradNorm: with the global norm √16.3125 ≈ 4.04 clipped to 1 the
// gradients shrink by 1/(4.04 + 1e-6); the first Adam step does not depend
// on the gradient's scale (m̂/√v̂ = sign) except through eps, so the moments
// tell: m of w[1] is (1 − β1)·(−4)·scale.
func TestClipGradNorm(t *testing.T) {
	a := newAdamCase(t, 0, 1)
	if _, err := a.exec.Exec(float32(0.1), float32(0.9)); err != nil {
		t.Fatal(err)
	}
	m := tensors.MustCopyFlatData[float32](a.ctx.GetVariableByScopeAndName(ScopeMoment1, "w").MustValue())
	scale := 1 / (math.Sqrt(16.3125) + 1e-6)
	if e := relErr(float64(m[1]), 0.1*-4*scale); e > 1e-6 {
		t.Errorf("moment of a clipped gradient %v, want %v", m[1], 0.1*-4*scale)
	}
	// A norm under the limit is left alone.
	b := newAdamCase(t, 0, 100)
	if _, err := b.exec.Exec(float32(0.1), float32(0.9)); err != nil {
		t.Fatal(err)
	}
	m = tensors.MustCopyFlatData[float32](b.ctx.GetVariableByScopeAndName(ScopeMoment1, "w").MustValue())
	if m[1] != float32(0.1*-4) && relErr(float64(m[1]), -0.4) > 1e-6 {
		t.Errorf("unclipped moment %v, want −0.4", m[1])
	}
}
