package dataset

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
)

// SplitConfig chooses how AssignSplits divides cases into train, val and
// test.
type SplitConfig struct {
	// Val and Test are the fractions of each data set's groups that go to
	// validation and test; the rest is training.
	Val, Test float64
	// Seed picks the permutation; the same seed and names give the same
	// splits on every machine.
	Seed uint64
	// Whole puts every labelled case of the named data sets into one split
	// (an external test set, say), ignoring the fractions.
	Whole map[string]Split
}

// DefaultSplit holds out a fifth of each data set for validation and a
// fifth for testing.
var DefaultSplit = SplitConfig{Val: 0.2, Test: 0.2, Seed: 1}

// AssignSplits sets the split of every labelled entry (those with a mask;
// unlabelled entries keep Unlabelled). Each data set is split on its own,
// so every data set is represented in each split, and the unit of the split
// is the group (Entry.SplitGroup): a patient's several series never straddle
// splits. Within a data set the groups are ordered by a hash of (seed, data
// set, group name); the first round(n·Test) groups are test, the next
// round(n·Val) val, the rest train. A non-zero fraction gets at least one
// group when that leaves at least one for training. The result depends only
// on the names, the seed and the fractions, not on the entries' order.
func AssignSplits(es []Entry, cfg SplitConfig) error {
	if err := cfg.check(); err != nil {
		return err
	}
	byDataset := map[string]map[string][]int{}
	for i, e := range es {
		if e.Mask == "" {
			es[i].Split = Unlabelled
			continue
		}
		if byDataset[e.Dataset] == nil {
			byDataset[e.Dataset] = map[string][]int{}
		}
		g := e.SplitGroup()
		byDataset[e.Dataset][g] = append(byDataset[e.Dataset][g], i)
	}
	for ds, groups := range byDataset {
		names := make([]string, 0, len(groups))
		for g := range groups {
			names = append(names, g)
		}
		order := splitOrder(cfg.Seed, ds, names)
		nTest, nVal := splitCounts(len(order), cfg.Test, cfg.Val)
		for rank, g := range order {
			s := Train
			switch whole, ok := cfg.Whole[ds]; {
			case ok:
				s = whole
			case rank < nTest:
				s = Test
			case rank < nTest+nVal:
				s = Val
			}
			for _, i := range groups[g] {
				es[i].Split = s
			}
		}
	}
	return nil
}

func (cfg SplitConfig) check() error {
	ok := func(f float64) bool { return f >= 0 && f <= 1 }
	if !ok(cfg.Val) || !ok(cfg.Test) || !(cfg.Val+cfg.Test <= 1) {
		return fmt.Errorf("dataset: split fractions val %g, test %g: each must be in [0, 1] and their sum at most 1", cfg.Val, cfg.Test)
	}
	for ds, s := range cfg.Whole {
		if s != Train && s != Val && s != Test {
			return fmt.Errorf("dataset: data set %s: whole split %q must be train, val or test", ds, s)
		}
	}
	return nil
}

// splitCounts returns how many of n groups go to test and val.
func splitCounts(n int, test, val float64) (nTest, nVal int) {
	nTest = int(math.Round(float64(n) * test))
	nVal = int(math.Round(float64(n) * val))
	if test > 0 && nTest == 0 && n-nVal >= 2 {
		nTest = 1
	}
	if val > 0 && nVal == 0 && n-nTest >= 2 {
		nVal = 1
	}
	// Rounding both up can leave nothing to train on; give it back, from
	// the larger held-out part first, unless everything was meant to be
	// held out.
	for nTest+nVal >= n && test+val < 1 && nTest+nVal > 0 {
		if nVal >= nTest {
			nVal--
		} else {
			nTest--
		}
	}
	return min(nTest, n), min(nVal, n-min(nTest, n))
}

// splitOrder sorts group names by their seeded hash.
func splitOrder(seed uint64, ds string, names []string) []string {
	keys := make(map[string]uint64, len(names))
	for _, g := range names {
		keys[g] = splitKey(seed, ds, g)
	}
	sort.Slice(names, func(a, b int) bool {
		ka, kb := keys[names[a]], keys[names[b]]
		if ka != kb {
			return ka < kb
		}
		return names[a] < names[b]
	})
	return names
}

// splitKey hashes (seed, data set, group) with FNV-1a and a SplitMix64
// finaliser, so that similar names scatter.
func splitKey(seed uint64, ds, group string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(ds))
	h.Write([]byte{0})
	h.Write([]byte(group))
	return mix64(h.Sum64())
}

// mix64 is SplitMix64's finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
