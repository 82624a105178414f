// Package shard splits a batch of cases among the N workers of a cluster
// job (a Kubernetes Indexed Job, a Slurm job array) deterministically, with
// no coordination between them: every worker lists the same inputs, sorts
// their names, and takes every N-th one starting at its own.
//
// Worker K of N (1 ≤ K ≤ N) takes the cases at sorted positions K−1,
// K−1+N, K−1+2N, ...: the shards are disjoint, cover the batch, and differ
// in size by at most one case. The split depends on the whole list, so every
// worker must see the same inputs: shard first, then skip the cases whose
// outputs exist (so that a retried worker does the same cases, minus those
// it finished).
package shard

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Spec is worker K of N.
type Spec struct {
	K, N int
}

// All is the whole batch: worker 1 of 1.
var All = Spec{1, 1}

// Parse reads "K/N" with 1 ≤ K ≤ N; "" is All.
func Parse(s string) (Spec, error) {
	if s == "" {
		return All, nil
	}
	ks, ns, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(strings.TrimSpace(ks))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 1 || k > n {
		return Spec{}, fmt.Errorf("shard %q: want K/N with 1 ≤ K ≤ N (Kubernetes: $((JOB_COMPLETION_INDEX+1))/N; Slurm with --array=1-N: $SLURM_ARRAY_TASK_ID/N)", s)
	}
	return Spec{k, n}, nil
}

func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.K, s.N) }

// Select returns the indices into names of this shard's cases, in the
// names' sorted order. Equal names keep their order in names.
func (s Spec) Select(names []string) []int {
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return names[order[a]] < names[order[b]] })
	var picked []int
	for pos, i := range order {
		if pos%s.N == s.K-1 {
			picked = append(picked, i)
		}
	}
	return picked
}
