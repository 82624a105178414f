// Command covseg segments COVID-19 pulmonary infiltrates in chest CT with a
// 3D U-Net (Bressem et al. 2021), trains it, evaluates it and reports
// severity. Run `covseg --help` for the subcommands.
package main

import (
	"os"

	"github.com/covseg/covseg/cmd/covseg/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
