package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// syntheticNote is said at the start of the demo and in everything it
// writes: no figure of the demo is about patients.
const syntheticNote = "SYNTHETIC DATA: every CT in this demo is a computer-generated chest phantom, not patient data; its figures say nothing about clinical performance"

// DefaultDemoMinutes is the demo's default time budget: the 5 minutes it
// must fit in on a 2-core machine.
const DefaultDemoMinutes = 5

// ErrNoEpoch is returned when the budget ran out before one epoch ended.
var ErrNoEpoch = errors.New("demo: the time budget ran out before the first training epoch ended: give it more --minutes")

// demoDirs are the demo's output paths under its folder.
type demoDirs struct {
	root, phantoms, run, seg string
}

func newDemoDirs(root string) demoDirs {
	return demoDirs{
		root:     root,
		phantoms: filepath.Join(root, "phantoms"),
		run:      filepath.Join(root, "run"),
		seg:      filepath.Join(root, "segmentation"),
	}
}

// prepareDemoDir creates the folder, refusing one that holds a finished or
// interrupted demo run (its training run folder would be refused later,
// after minutes of work).
func prepareDemoDir(d demoDirs) error {
	if _, err := os.Stat(filepath.Join(d.run, "last.ckpt")); err == nil {
		return fmt.Errorf("demo: %s already holds a demo run: remove it or choose another folder with -o", d.root)
	}
	for _, p := range []string{d.root, d.phantoms, d.seg} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}
