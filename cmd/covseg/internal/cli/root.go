// Package cli holds covseg's cobra commands. Each command lives in its own
// file with a constructor newXxxCmd; NewRoot wires them together.
package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Version is covseg's version, stamped into exported models and reports.
const Version = "0.1.0-dev"

// NewRoot builds the covseg command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "covseg",
		Short:         "Segment COVID-19 pulmonary infiltrates in chest CT with a 3D U-Net",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands lists the constructors of the top-level subcommands, one per line
// so that adding a command touches one line.
var commands = []func() *cobra.Command{
	newInfoCmd,
	newConvertCmd,
	newDataCmd,
	newEvaluateCmd,
	newLungsCmd,
	newReportCmd,
	newModelCmd,
	newTrainCmd,
	newSegmentCmd,
	newServeCmd,
	newBenchCmd,
	newDemoCmd,
	newReproduceCmd,
}

// Execute runs covseg with args and returns the process exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "covseg:", err)
		return 1
	}
	return 0
}
