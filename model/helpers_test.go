package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/sbinet/npyio"

	"github.com/covseg/covseg/engine/covcpu"
	"github.com/covseg/covseg/internal/testutil"
)

// testBackend is covseg's default backend (the pure-Go adapter unless
// GOMLX_BACKEND says otherwise), which can also train.
var testBackend = sync.OnceValue(func() backends.Backend {
	b, err := covcpu.New()
	if err != nil {
		panic(err)
	}
	return b
})

// fixtureDir returns the directory named by env (a relative path is taken
// from the repository root), else sharedRel under the shared fixtures
// folder (../shared beside the repository, or $COVSEG_SHARED, as
// testutil.Shared finds it). It fails the test when the directory is
// missing.
func fixtureDir(t testing.TB, env string, sharedRel ...string) string {
	t.Helper()
	dir := os.Getenv(env)
	switch {
	case dir == "" && len(sharedRel) == 0:
		t.Fatalf("%s is not set", env)
	case dir == "":
		dir = testutil.Shared(t, sharedRel...)
	case !filepath.IsAbs(dir):
		dir = filepath.Join(testutil.RepoRoot(t), dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("fixture directory %s (env %s) is missing: %v", dir, env, err)
	}
	return dir
}

// readNpy reads a float32 C-order .npy file.
func readNpy(path string) ([]float32, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r, err := npyio.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	d := r.Header.Descr
	if d.Type != "<f4" || d.Fortran {
		return nil, nil, fmt.Errorf("%s: dtype %s fortran=%v, want little-endian float32 in C order", path, d.Type, d.Fortran)
	}
	var data []float32
	if err := r.Read(&data); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) != numel(d.Shape) {
		return nil, nil, fmt.Errorf("%s: %d values for shape %v", path, len(data), d.Shape)
	}
	return data, slices.Clone(d.Shape), nil
}

// readMeta reads a fixture's meta.json.
func readMeta(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// relL2 is ‖got − want‖ / ‖want‖ in float64.
func relL2(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

// flat copies a float32 tensor out.
func flat(t testing.TB, x *tensors.Tensor) []float32 {
	data, err := tensors.CopyFlatData[float32](x)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// randomInput is a reproducible N(0,1) tensor.
func randomInput(seed uint64, dims ...int) *tensors.Tensor {
	data := make([]float32, numel(dims))
	s := seed*0x9e3779b97f4a7c15 + 1
	for i := range data {
		// Box-Muller on a xorshift stream: reproducible, no global state.
		next := func() float64 {
			s ^= s << 13
			s ^= s >> 7
			s ^= s << 17
			return (float64(s>>11) + 0.5) / (1 << 53)
		}
		data[i] = float32(math.Sqrt(-2*math.Log(next())) * math.Cos(2*math.Pi*next()))
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// numel is the number of elements of a shape.
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
