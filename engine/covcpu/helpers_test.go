package covcpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// arr is a float64 tensor in host memory for tests.
type arr struct {
	data []float64
	dims []int
}

// randArr returns an arr of normal random values.
func randArr(rng *rand.Rand, dims ...int) arr {
	a := arr{data: make([]float64, size(dims)), dims: dims}
	for i := range a.data {
		a.data[i] = rng.NormFloat64()
	}
	return a
}

// roundF32 rounds a's values to float32, so that exact comparisons hold
// in both dtypes.
func (a arr) roundF32() arr {
	for i, v := range a.data {
		a.data[i] = float64(float32(v))
	}
	return a
}

func (a arr) clone() arr {
	return arr{data: append([]float64(nil), a.data...), dims: a.dims}
}

// tensor makes a fresh tensor of dtype (Float32 or Float64) from a.
func (a arr) tensor(f32 bool) *tensors.Tensor {
	if f32 {
		d := make([]float32, len(a.data))
		for i, v := range a.data {
			d[i] = float32(v)
		}
		return tensors.FromFlatDataAndDimensions(d, a.dims...)
	}
	return tensors.FromFlatDataAndDimensions(append([]float64(nil), a.data...), a.dims...)
}

// fromTensor converts a float32 or float64 tensor to an arr.
func fromTensor(t *testing.T, x *tensors.Tensor) arr {
	t.Helper()
	dims := x.Shape().Dimensions
	switch x.DType() {
	case dtypes.Float32:
		f := tensors.MustCopyFlatData[float32](x)
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return arr{data: out, dims: dims}
	case dtypes.Float64:
		return arr{data: tensors.MustCopyFlatData[float64](x), dims: dims}
	}
	t.Fatalf("unexpected dtype %s", x.DType())
	return arr{}
}

// newAdapter returns the adapter with default options.
func newAdapter(t testing.TB) backends.Backend {
	t.Helper()
	b, err := NewAdapter("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newSimplego returns plain simplego.
func newSimplego(t testing.TB) backends.Backend {
	t.Helper()
	b, err := simplego.New("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// execArrs runs fn once on backend with the inputs converted to tensors.
func execArrs(t *testing.T, backend backends.Backend, f32 bool, fn func(inputs []*graph.Node) []*graph.Node, inputs ...arr) []arr {
	t.Helper()
	e, err := graph.NewExec(backend, fn)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in.tensor(f32)
	}
	outs, err := e.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([]arr, len(outs))
	for i, o := range outs {
		res[i] = fromTensor(t, o)
	}
	return res
}

// maxAbs returns the largest absolute value in v.
func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}

// assertClose fails unless got and want have equal dims and every element
// differs by at most tol·max(|want|).
func assertClose(t *testing.T, what string, got, want arr, tol float64) {
	t.Helper()
	if len(got.dims) != len(want.dims) {
		t.Fatalf("%s: dims %v, want %v", what, got.dims, want.dims)
	}
	for i := range got.dims {
		if got.dims[i] != want.dims[i] {
			t.Fatalf("%s: dims %v, want %v", what, got.dims, want.dims)
		}
	}
	scale := max(maxAbs(want.data), 1e-300)
	for i := range got.data {
		if d := math.Abs(got.data[i] - want.data[i]); d > tol*scale || math.IsNaN(got.data[i]) {
			t.Fatalf("%s: element %d = %.10g, want %.10g (|diff| %.3g > %.3g·%.3g)",
				what, i, got.data[i], want.data[i], d, tol, scale)
		}
	}
}
