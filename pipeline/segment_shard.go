package pipeline

import (
	"fmt"
	"io"
	"os"

	"github.com/covseg/covseg/internal/shard"
)

// shardCases keeps the cases of this worker's shard (--shard K/N, see
// package shard: sorted by case name, every N-th from the K-th).
func shardCases(cases []segCase, spec string) ([]segCase, error) {
	s, err := shard.Parse(spec)
	if err != nil || s == shard.All {
		return cases, err
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	var picked []segCase
	for _, i := range s.Select(names) {
		picked = append(picked, cases[i])
	}
	return picked, nil
}

// skipFinished drops the cases whose outputs (the mask, and the montage
// and report when asked for) all exist already. Every output is written
// to a temporary file and renamed, so one that exists is complete.
func skipFinished(log io.Writer, cases []segCase, o SegmentOptions) (todo []segCase, skipped []string) {
	for _, c := range cases {
		outs := []string{c.mask}
		if o.PNG {
			outs = append(outs, c.stem+"_mask.png")
		}
		if o.Report {
			outs = append(outs, c.stem+"_report.json")
		}
		done := true
		for _, p := range outs {
			if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
				done = false
			}
		}
		if done {
			fmt.Fprintf(log, "%s: outputs exist, skipped\n", c.name)
			skipped = append(skipped, c.name)
		} else {
			todo = append(todo, c)
		}
	}
	return todo, skipped
}
