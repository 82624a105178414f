package onnx_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/covseg/covseg/engine/covcpu"
	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/internal/infertest"
	"github.com/covseg/covseg/internal/testutil"
	"github.com/covseg/covseg/model"
)

// gomlxBackend is covseg's default GoMLX backend (GOMLX_BACKEND may pick
// another).
var gomlxBackend = sync.OnceValue(func() backends.Backend {
	b, err := covcpu.New()
	if err != nil {
		panic(err)
	}
	return b
})

func randomData(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// compareEngines exports the model of ctx, then runs ONNX Runtime and GoMLX
// on inputs of each shape (one ORT session for all: dynamic shapes) and
// requires the logits to agree to a relative L2 error of 1e-5.
func compareEngines(t *testing.T, cfg model.Config, ctx *context.Context, shapes ...[5]int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	start := time.Now()
	if err := onnx.Export(path, cfg, ctx, "test", onnx.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("export: %v", time.Since(start).Round(time.Millisecond))
	if *keep != "" {
		if err := onnx.Export(filepath.Join(*keep, t.Name()+".onnx"), cfg, ctx, "test", onnx.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := ort.Open(path, ort.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	runner, err := model.NewRunner(gomlxBackend(), ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, shape := range shapes {
		n := shape[0] * shape[1] * shape[2] * shape[3] * shape[4]
		x := randomData(uint64(100+i), n)
		var s64 [5]int64
		for j, d := range shape {
			s64[j] = int64(d)
		}
		start := time.Now()
		got, gotShape, err := sess.Run(x, s64)
		if err != nil {
			t.Fatal(err)
		}
		tORT := time.Since(start)
		start = time.Now()
		y, err := runner.Run(tensors.FromFlatDataAndDimensions(x, shape[:]...))
		if err != nil {
			t.Fatal(err)
		}
		tGo := time.Since(start)
		want, err := tensors.CopyFlatData[float32](y)
		if err != nil {
			t.Fatal(err)
		}
		wantShape := y.Shape().Dimensions
		for j := range 5 {
			if int(gotShape[j]) != wantShape[j] {
				t.Fatalf("input %v: ORT output %v, GoMLX %v", shape, gotShape, wantShape)
			}
		}
		e := relL2(t, toVol(got), toVol(want))
		t.Logf("input %v: rel L2 error ORT vs GoMLX %.2e (ORT %v, GoMLX %v)", shape, e, tORT.Round(time.Millisecond), tGo.Round(time.Millisecond))
		if !(e <= 1e-5) {
			t.Errorf("input %v: rel L2 error %.3e > 1e-5", shape, e)
		}
	}
}

func toVol(x []float32) *vol {
	v := &vol{data: make([]float64, len(x))}
	for i, f := range x {
		v.data[i] = float64(f)
	}
	return v
}

// TestORTMatchesGoMLXFullWidth: the paper's network at full width with
// random weights and BatchNorm statistics, at 1x1x5x17x19 (10 GFLOP, some
// seconds for GoMLX on two cores); with COVSEG_ONNX_LARGE=1 also at
// 1x1x7x45x53 (77 GFLOP, minutes).
func TestORTMatchesGoMLXFullWidth(t *testing.T) {
	testutil.Long(t)
	shapes := [][5]int{{1, 1, 5, 17, 19}}
	if os.Getenv("COVSEG_ONNX_LARGE") != "" {
		shapes = append(shapes, [5]int{1, 1, 7, 45, 53})
	}
	cfg := model.DefaultConfig()
	ctx, err := model.NewContext(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	infertest.RandomizeBN(t, ctx, cfg, 7)
	compareEngines(t, cfg, ctx, shapes...)
}

// TestORTMatchesGoMLXPretrained: the encoder from torchvision's r3d_18
// state_dict (../shared/fixtures/r3d18, random weights and BatchNorm
// statistics in the real format; the RGB stem summed to one channel), a
// random decoder, odd shapes and a batch of two.
func TestORTMatchesGoMLXPretrained(t *testing.T) {
	testutil.Long(t)
	cfg := model.DefaultConfig()
	cfg.Classes, cfg.ClassNames = 3, model.DefaultClassNames(3)
	ctx, err := model.NewContext(cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	infertest.RandomizeBN(t, ctx, cfg, 8)
	if err := model.LoadPretrainedEncoder(ctx, &cfg, testutil.Shared(t, "fixtures", "r3d18", "r3d_18.pth")); err != nil {
		t.Fatal(err)
	}
	compareEngines(t, cfg, ctx, [5]int{1, 1, 5, 11, 13}, [5]int{2, 1, 3, 9, 11})
}
