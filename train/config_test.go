package train

import (
	"reflect"

	"github.com/covseg/covseg/data/preprocess"
	"strings"
	"testing"
)

// TestDefaultConfigIsTheRecipe pins the defaults to the paper's recipe.
func TestDefaultConfigIsTheRecipe(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Phase{
		{Name: "frozen", Epochs: 3, LR: 1e-2, EncoderLRMult: 1, FreezeEncoder: true, TrainFrozenBN: true},
		{Name: "unfrozen", Epochs: 50, LR: 1e-3, EncoderLRMult: 1},
	}
	if !reflect.DeepEqual(c.Phases, want) {
		t.Errorf("phases %+v", c.Phases)
	}
	o, s, l := c.Optimizer, c.Schedule, c.Loss
	if o.Beta2 != 0.99 || o.Eps != 1e-5 || o.WeightDecay != 1e-4 || o.DecayBNAndBias || o.Accumulate != 1 || o.ClipGradNorm != 0 {
		t.Errorf("optimizer %+v", o)
	}
	if s.PctStart != 0.25 || s.Div != 25 || s.DivFinal != 1e5 || s.Beta1Max != 0.95 || s.Beta1Min != 0.85 {
		t.Errorf("schedule %+v", s)
	}
	if l.DiceWeight != 1 || l.CEWeight != 1 || l.DiceClass != 1 || l.DiceSmooth != 0 {
		t.Errorf("loss %+v", l)
	}
	p := c.Data.Preprocess
	if p.Mode != preprocess.ModeResize || p.Grid != (preprocess.Grid{20, 224, 224}) || p.WindowLo != -1024 || p.WindowHi != 600 ||
		p.Scaling != preprocess.ScaleWindow || c.Data.BatchSize != 1 || c.Model.Width != 1 || c.Model.Classes != 2 {
		t.Errorf("data %+v model %+v", c.Data, c.Model)
	}
}

// TestConfigYAMLRoundTrip: the printed defaults parse back to the defaults.
func TestConfigYAMLRoundTrip(t *testing.T) {
	y, err := DefaultConfig().YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"beta2: 0.99", "weight_decay: 0.0001", "pct_start: 0.25", "freeze_encoder: true", "grid: 20x224x224", "window_lo: -1024", "flip:"} {
		if !strings.Contains(string(y), key) {
			t.Errorf("printed config lacks %q:\n%s", key, y)
		}
	}
	c, err := ParseConfig(y)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, DefaultConfig()) {
		t.Errorf("round trip: %+v", c)
	}
}

// TestParseConfigOverrides: given fields override the defaults, the rest
// stay; a phases list replaces the default phases, each phase defaulting
// encoder_lr_mult to 1.
func TestParseConfigOverrides(t *testing.T) {
	c, err := ParseConfig([]byte(`
seed: 3
data:
  manifest: cases.csv
optimizer:
  accumulate: 4
  clip_grad_norm: 1.5
phases:
  - {name: only, epochs: 2, lr: 0.003}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.Seed != 3 || c.Data.Manifest != "cases.csv" || c.Data.Preprocess.Grid != d.Data.Preprocess.Grid || c.Optimizer.Accumulate != 4 ||
		c.Optimizer.ClipGradNorm != 1.5 || c.Optimizer.Beta2 != 0.99 {
		t.Errorf("overrides: %+v", c)
	}
	if len(c.Phases) != 1 || c.Phases[0] != (Phase{Name: "only", Epochs: 2, LR: 0.003, EncoderLRMult: 1}) {
		t.Errorf("phases %+v", c.Phases)
	}
	if c, err := ParseConfig(nil); err != nil || !reflect.DeepEqual(c, d) {
		t.Errorf("empty config: %v", err)
	}
}

// TestParseConfigErrors: typos and bad numbers are errors naming the field.
func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"optimiser: {beta2: 0.9}", "optimiser"},
		{"optimizer: {beta_2: 0.9}", "beta_2"},
		{"optimizer: {beta2: 1}", "beta2"},
		{"optimizer: {accumulate: 0}", "accumulate"},
		{"schedule: {pct_start: 1}", "pct_start"},
		{"phases: []", "no phases"},
		{"phases: [{name: x, epochs: 0, lr: 0.1}]", "epochs"},
		{"phases: [{name: x, epochs: 1, lr: -1}]", "lr"},
		{"phases: [{name: x, epochs: 1, lr: 1, extra: 2}]", "extra"},
		{"data: {preprocess: {grid: [20, 0, 224]}}", "grid"},
		{"data: {preprocess: {window_lo: 600, window_hi: -1024}}", "window"},
		{"data: {preprocess: {scaling: maxmin}}", "scaling"},
		{"data: {augment: {flip: {p: 2}}}", "flip"},
		{"data: {workers: -1}", "workers"},
		{"model: {width: 0.3}", "width"},
		{"model: {classes: 1}", "classes"},
		{"loss: {dice_class: 2}", "dice_class"},
		{"loss: {dice_weight: 0, ce_weight: 0}", "weights"},
		{"backend: {dtype: float16}", "dtype"},
		{"checkpoint: {keep_epochs: -2}", "keep_epochs"},
		{"batch_norm: {precise_batches: -1}", "precise_batches"},
		{"batch_norm: {precise_batches: 100000}", "precise_batches"},
		{"seed: [1", "yaml"},
	} {
		_, err := ParseConfig([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one mentioning %q", c.yaml, err, c.want)
		}
	}
}

// FuzzParseConfig: any input parses or fails with an error, never a panic,
// and what parses is valid and survives a round trip.
func FuzzParseConfig(f *testing.F) {
	y, _ := DefaultConfig().YAML()
	f.Add(y)
	f.Add([]byte("phases:\n  - {name: a, epochs: 1, lr: 0.1}\n"))
	f.Add([]byte("optimizer: {accumulate: 3, clip_grad_norm: 2}\nbackend: {dtype: bfloat16}\n"))
	f.Add([]byte("data: {preprocess: {grid: 8x32x32, window_lo: -1000, window_hi: 400, schedule: [{from_epoch: 2, grid: 8x64x64}]}}\n"))
	f.Add([]byte("data: {preprocess: {mode: patch, patch: 16x64x64, spacing: [5, 1.5, 1.5]}, augment: {noise: {p: 1, std: 0.1}}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config invalid: %v", err)
		}
		y, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(y)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %v\n%s", err, y)
		}
	})
}
