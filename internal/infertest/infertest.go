// Package infertest makes small models and volumes for the tests of
// covseg's inference (package infer and `covseg segment`). Nothing outside
// tests imports it.
package infertest

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// Width is the width multiplier of the test networks: a stem of 4 channels.
const Width = 1.0 / 16

// Config is a narrow network (Width) with the paper's preprocessing on a
// small grid, D×H×W.
func Config(grid [3]int) model.Config {
	cfg := model.DefaultConfig()
	cfg.Width = Width
	cfg.Preprocess.Grid = grid
	return cfg
}

// Narrow returns a freshly initialised narrow network with random BatchNorm
// statistics (see RandomizeBN).
func Narrow(t testing.TB, cfg model.Config, seed uint64) *context.Context {
	t.Helper()
	ctx, err := model.NewContext(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	RandomizeBN(t, ctx, cfg, seed)
	return ctx
}

// RandomizeBN gives every BatchNorm of ctx random affine parameters and
// running statistics: fresh ones are the identity and the ResBlock's last γ
// is 0, which would leave the head's output blind to most of the network
// and hide mistakes.
func RandomizeBN(t testing.TB, ctx *context.Context, cfg model.Config, seed uint64) {
	t.Helper()
	specs, err := model.ParamSpecs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, s := range specs {
		var f func() float64
		switch s.Kind {
		case model.KindBNWeight:
			f = func() float64 { return 0.5 + rng.Float64() }
		case model.KindBNBias, model.KindRunningMean:
			f = func() float64 { return 0.2 * rng.NormFloat64() }
		case model.KindRunningVar:
			f = func() float64 { return 0.5 + rng.Float64() }
		default:
			continue
		}
		data := make([]float32, s.Size())
		for i := range data {
			data[i] = float32(f())
		}
		if err := model.SetFloat32Value(ctx, s.Name, data, s.Shape); err != nil {
			t.Fatal(err)
		}
	}
}

// ExportNarrow writes the network of ctx to dir/name as ONNX and returns the
// path.
func ExportNarrow(t testing.TB, dir, name string, cfg model.Config, ctx *context.Context) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := onnx.Export(path, cfg, ctx, "test", onnx.Options{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// SaveNarrow writes the model of ctx to dir/name as a covseg model file and
// returns the path.
func SaveNarrow(t testing.TB, dir, name string, cfg model.Config, ctx *context.Context) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := model.Save(path, cfg, ctx); err != nil {
		t.Fatal(err)
	}
	return path
}

// Steepness is the slope of the threshold and gradient models' logits per
// unit of windowed intensity: a voxel half a HU from the threshold already
// gets a probability beyond 0.9. A power of two, so that products with it
// are exact and equal inputs give logits of exactly 0, whatever order an
// engine sums in.
const Steepness = 1 << 13

// ThresholdONNX writes an ONNX model whose two logits at each voxel are
// ∓Steepness·(x − t), x the windowed input and t the window value of hu HU:
// its mask is "HU > hu" voxel by voxel, whatever the geometry, which makes
// where a mask lands checkable against the CT itself. cfg's preprocessing
// and class names go into the metadata (its architecture entry describes the
// U-Net although the graph is one 1×1×1 convolution; engines do not mind).
func ThresholdONNX(t testing.TB, dir, name string, cfg model.Config, hu float64) string {
	t.Helper()
	p := cfg.Preprocess
	if p.Normalize != model.NormNone {
		t.Fatalf("ThresholdONNX: normalisation %q; the threshold model expects none", p.Normalize)
	}
	thr := float32((hu - p.WindowLow) / (p.WindowHigh - p.WindowLow))
	w := map[string]onnx.Tensor{
		"t.weight": {Shape: []int{2, 1, 1, 1, 1}, Data: []float32{-Steepness, Steepness}},
		"t.bias":   {Shape: []int{2}, Data: []float32{Steepness * thr, -Steepness * thr}},
	}
	spec := model.ConvSpec{In: 1, Out: 2, Kernel: [3]int{1, 1, 1}, Stride: [3]int{1, 1, 1}, Bias: true}
	return export(t, dir, name, cfg, w, func(o model.Ops[string], x string) string { return o.Conv3d("t", x, spec) })
}

// GradientONNX writes an ONNX model that looks along one network axis (0 =
// D, 1 = H, 2 = W): its logits at a voxel are ∓Steepness·(x[+1] − x[−1]),
// the central difference of the windowed input along that axis with zeros
// beyond the edges. Its mask marks where intensity grows along the axis, so
// it tells which voxel axis the network's D, H and W are.
func GradientONNX(t testing.TB, dir, name string, cfg model.Config, axis int) string {
	t.Helper()
	spec := model.ConvSpec{In: 1, Out: 2, Kernel: [3]int{1, 1, 1}, Stride: [3]int{1, 1, 1}}
	spec.Kernel[axis], spec.Padding[axis] = 3, 1
	w := map[string]onnx.Tensor{
		"g.weight": {Shape: []int{2, 1, spec.Kernel[0], spec.Kernel[1], spec.Kernel[2]},
			Data: []float32{Steepness, 0, -Steepness, -Steepness, 0, Steepness}},
	}
	return export(t, dir, name, cfg, w, func(o model.Ops[string], x string) string { return o.Conv3d("g", x, spec) })
}

func export(t testing.TB, dir, name string, cfg model.Config, w map[string]onnx.Tensor, net onnx.Net) string {
	t.Helper()
	arch, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := json.Marshal(cfg.Preprocess)
	if err != nil {
		t.Fatal(err)
	}
	meta := onnx.Metadata{Version: "test", Architecture: arch, Preprocessing: pre, Classes: cfg.ClassNames}
	m, err := onnx.Build(net, 1, w, meta, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := onnx.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

// WorldEqual compares two label maps that cover the same voxels in
// different voxel orders (a reoriented copy): every voxel of b must land on
// a voxel of a through the affines, with the same label. It returns the
// number of voxels that differ, and fails the test when the grids do not
// match.
func WorldEqual(t testing.TB, a, b *volume.Label) int {
	t.Helper()
	if a.Dims.Len() != b.Dims.Len() {
		t.Fatalf("grids of %v and %v voxels cannot cover the same voxels", a.Dims, b.Dims)
	}
	inv, err := a.Affine.Inverse()
	if err != nil {
		t.Fatal(err)
	}
	m := inv.Mul(b.Affine) // b's voxel indices to a's
	diff := 0
	for k := range b.Dims[2] {
		for j := range b.Dims[1] {
			for i := range b.Dims[0] {
				p := m.Apply([3]float64{float64(i), float64(j), float64(k)})
				var q [3]int
				for ax := range 3 {
					r := int(p[ax] + 0.5)
					if p[ax] < -0.5 || r >= a.Dims[ax] || abs(p[ax]-float64(r)) > 1e-3 {
						t.Fatalf("voxel %d,%d,%d of the copy lands at %v, not on a voxel of the original", i, j, k, p)
					}
					q[ax] = r
				}
				if a.At(q[0], q[1], q[2]) != b.At(i, j, k) {
					diff++
				}
			}
		}
	}
	return diff
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// WriteRandomCT writes a small CT of uniformly random HU (−1000..400,
// whole numbers) as int16 NIfTI: voxels of 1.5×1.5×3 mm, axis-aligned.
func WriteRandomCT(t testing.TB, path string, d volume.Dims, seed uint64) {
	t.Helper()
	v, err := volume.New(d, volume.Diag([3]float64{1.5, 1.5, 3}, [3]float64{-30, 10, 50}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	for i := range v.Data {
		v.Data[i] = float32(math.Round(-1000 + 1400*rng.Float64()))
	}
	if err := nifti.WriteVolume(path, v, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		t.Fatal(err)
	}
}
