package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/internal/fsguard"
	"github.com/covseg/covseg/internal/membudget"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/volio"
)

// addMemBudgetFlag adds --mem-budget to every command and applies it (or
// COVSEG_MEM_BUDGET) before the command runs.
func addMemBudgetFlag(root *cobra.Command) {
	var budget string
	root.PersistentFlags().StringVar(&budget, "mem-budget", "",
		fmt.Sprintf("most memory for volumes and their working copies: 8G, 512M, 50%% of RAM, or off (default: $%s, else %.0f%% of RAM)",
			membudget.Env, membudget.DefaultShare*100))
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		membudget.Reset()
		if budget == "" {
			if _, err := membudget.FromEnv(); err != nil {
				return err
			}
		} else {
			b, err := membudget.Parse(budget)
			if err != nil {
				return fmt.Errorf("--mem-budget: %w", err)
			}
			membudget.Set(b)
		}
		membudget.ApplyToRuntime()
		return nil
	}
}

// guardOutputs refuses, before any work, outputs that are one of the inputs
// (by file identity, through links) and outputs that cannot be written.
func guardOutputs(outputs, inputs []string) error {
	if err := fsguard.RefuseSame(outputs, inputs); err != nil {
		return err
	}
	return fsguard.CheckOutputs(outputs...)
}

// nonFinite deals with NaN and ±Inf voxels of a CT read from path: an error
// with --strict, otherwise a warning on w and the voxels set to
// volio.NonFiniteHU (air, the lower bound of the HU windows).
func nonFinite(w io.Writer, path string, src *volio.Source, v *volume.Volume, strict bool) error {
	if src == nil || src.NonFinite == 0 {
		return nil
	}
	if strict {
		return fmt.Errorf("%s: %d voxels are NaN or infinite (--strict)", path, src.NonFinite)
	}
	n := volio.ReplaceNonFinite(v, volio.NonFiniteHU)
	fmt.Fprintf(w, "warning: %s: %d voxels are NaN or infinite; they are read as %d HU (air); --strict makes this an error\n",
		path, n, volio.NonFiniteHU)
	return nil
}
