package shard

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Spec
		ok   bool
	}{
		{"", All, true}, {"1/1", Spec{1, 1}, true}, {"3/8", Spec{3, 8}, true}, {" 2 / 4 ", Spec{2, 4}, true},
		{"0/4", Spec{}, false}, {"5/4", Spec{}, false}, {"1/0", Spec{}, false}, {"-1/3", Spec{}, false},
		{"2", Spec{}, false}, {"a/b", Spec{}, false}, {"1/2/3", Spec{}, false},
	} {
		got, err := Parse(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("Parse(%q) = %v, %v", c.in, got, err)
		}
	}
}

// TestSelectPartitions checks that the N shards of a batch, listed in any
// order, are disjoint, cover it, differ in size by at most one, and do not
// depend on the listing's order.
func TestSelectPartitions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 7, 25} {
		for _, cases := range []int{0, 1, 5, 24, 100} {
			names := make([]string, cases)
			for i := range names {
				names[i] = fmt.Sprintf("case%03d", rng.IntN(1000)*1000+i)
			}
			shuffled := append([]string(nil), names...)
			rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
			seen := map[string]int{}
			lo, hi := cases, 0
			for k := 1; k <= n; k++ {
				s := Spec{k, n}
				a, b := s.Select(names), s.Select(shuffled)
				if len(a) != len(b) {
					t.Fatalf("%v of %d: %d cases from one order, %d from another", s, cases, len(a), len(b))
				}
				for i := range a {
					if names[a[i]] != shuffled[b[i]] {
						t.Errorf("%v of %d: the listing's order changes the shard", s, cases)
					}
					seen[names[a[i]]]++
				}
				lo, hi = min(lo, len(a)), max(hi, len(a))
			}
			if len(seen) != cases {
				t.Errorf("%d shards of %d cases cover %d", n, cases, len(seen))
			}
			for name, c := range seen {
				if c != 1 {
					t.Errorf("%d shards: %s in %d of them", n, name, c)
				}
			}
			if cases > 0 && hi-lo > 1 {
				t.Errorf("%d shards of %d cases: sizes %d to %d", n, cases, lo, hi)
			}
		}
	}
}

func TestSelectOrder(t *testing.T) {
	names := []string{"d", "a", "c", "b", "e"}
	got := Spec{2, 2}.Select(names) // sorted a b c d e: positions 1, 3 → b, d
	if len(got) != 2 || names[got[0]] != "b" || names[got[1]] != "d" {
		t.Errorf("shard 2/2 of %v = %v", names, got)
	}
}
