package covcpu

import (
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/graph"
)

// manySmallDots is a graph of many independent batched matrix products,
// summed: each DotGeneral is small enough for simplego's "small" kernel,
// which splits its batch over the worker pool and waits for the parts.
// With "ops_parallel" simplego v0.26.0 hangs on it within a few hundred
// runs at parallelism=1 (see simplegoConfig).
func manySmallDots(inputs []*graph.Node) []*graph.Node {
	x := inputs[0]
	var sum *graph.Node
	for i := range 32 {
		d := graph.Einsum("bij,bjk->bik", graph.AddScalar(x, float64(i)), x)
		if sum == nil {
			sum = d
		} else {
			sum = graph.Add(sum, d)
		}
	}
	return []*graph.Node{graph.ReduceAllSum(sum)}
}

// TestAdapterDoesNotHang runs manySmallDots many times on the adapter with
// its default execution mode and fails if that does not finish in a time
// far beyond what it takes (well under a second).
func TestAdapterDoesNotHang(t *testing.T) {
	for _, config := range []string{"", "parallelism=1", Unbounded} {
		b, err := NewAdapter(config)
		if err != nil {
			t.Fatal(err)
		}
		x := randArr(rand.New(rand.NewPCG(1, 2)), 8, 16, 16)
		done := make(chan error, 1)
		go func() {
			e, err := graph.NewExec(b, manySmallDots)
			if err != nil {
				done <- err
				return
			}
			defer e.Finalize()
			for range 300 {
				if _, err := e.Exec(x.tensor(true)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("config %q: %v", config, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("config %q: 300 runs of a graph of 32 small batched matrix products did not end in 60 s: the worker pool is deadlocked", config)
		}
	}
}

func TestSimplegoConfig(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, []string{"ops_sequential"}},
		{[]string{""}, []string{"", "ops_sequential"}},
		{[]string{"parallelism=4"}, []string{"parallelism=4", "ops_sequential"}},
		{[]string{"ops_parallel"}, []string{"ops_parallel"}},
		{[]string{"parallelism=2", "ops_sequential"}, []string{"parallelism=2", "ops_sequential"}},
	} {
		if got := simplegoConfig(slices.Clone(c.in)); !slices.Equal(got, c.want) {
			t.Errorf("simplegoConfig(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestAdapterKeepsStdoutClean: creating the adapter with a parallelism
// option writes nothing to standard output (simplego itself prints there).
func TestAdapterKeepsStdoutClean(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	_, errA := NewAdapter(Unbounded)
	_, errB := NewAdapter("parallelism=2")
	os.Stdout = saved
	w.Close()
	out, _ := io.ReadAll(r)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if len(out) > 0 {
		t.Errorf("creating the adapter wrote %q to standard output", out)
	}
}
