// Package cli holds covseg's cobra commands. Each command lives in its own
// file with a constructor newXxxCmd; NewRoot wires them together.
package cli

import (
	"fmt"
	"io"

	"github.com/covseg/covseg/pipeline"
	"github.com/spf13/cobra"

	"github.com/covseg/covseg/internal/iocheck"
)

// Version is covseg's version, stamped into exported models and reports.
const Version = pipeline.Version

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
	addMemBudgetFlag(root)
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
	newPACSCmd,
}

// Execute runs covseg with args and returns the process exit code. Every
// write to stdout and stderr is checked: a command whose output could not
// be written (a full disk, a closed pipe) exits 1 even when it printed
// with fmt.Fprintf and ignored the error.
func Execute(args []string, stdout, stderr io.Writer) int {
	out, errw := iocheck.New(stdout, "standard output"), iocheck.New(stderr, "standard error")
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errw)
	err := root.Execute()
	if err == nil {
		err = out.Err()
	}
	if err != nil {
		fmt.Fprintln(errw, "covseg:", err)
		return 1
	}
	if errw.Err() != nil {
		return 1
	}
	return 0
}
