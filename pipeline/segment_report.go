package pipeline

import (
	"fmt"
	"io"
	"strings"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// writeCaseReport writes the severity report of a segmented case (the same
// as `covseg report`): lungs are segmented from the CT, the infiltrate is
// the mask's voxels of every class but the background and a lung class
// (infer.InfiltrateMask). path is the JSON file; the Markdown goes beside it
// with the extension .md.
func writeCaseReport(path, name string, ct *volume.Volume, mask *volume.Label, classNames []string) error {
	r, err := severity.Compute(ct, infer.InfiltrateMask(mask, classNames), nil, severity.Options{Version: Version, Lungs: lungs.DefaultOptions()})
	if err != nil {
		return fmt.Errorf("report %s: %w", name, err)
	}
	js, err := r.JSON()
	if err != nil {
		return fmt.Errorf("report %s: %w", name, err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := w.Write(js); return err }); err != nil {
		return err
	}
	md := strings.TrimSuffix(path, ".json") + ".md"
	return atomicfile.Write(md, func(w io.Writer) error { _, err := io.WriteString(w, r.Markdown()); return err })
}
