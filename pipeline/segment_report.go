package pipeline

import (
	"fmt"
	"io"
	"strings"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// writeCaseReport writes the severity report of a segmented case (the same
// as `covseg report`): lungs are segmented from the CT, the infiltrate is
// the mask's voxels of every class but the background and a lung class
// (infiltrateMask). path is the JSON file; the Markdown goes beside it
// with the extension .md.
func writeCaseReport(path, name string, ct *volume.Volume, mask *volume.Label, classNames []string) error {
	r, err := severity.Compute(ct, infiltrateMask(mask, classNames), nil, severity.Options{Version: Version, Lungs: lungs.DefaultOptions()})
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

// isLungClass reports whether a class name is the lungs (a network trained
// with a lung class, covseg demo --realistic), not an infiltrate.
func isLungClass(name string) bool {
	n := strings.ToLower(name)
	return n == "lung" || n == "lungs"
}

// infiltrateMask returns the infiltrate of a predicted class mask: mask
// itself when every class but the background is infiltrate (the paper's
// two classes, or several kinds of infiltrate), else a copy with 1 where
// the class is neither the background nor a lung class and 0 elsewhere.
func infiltrateMask(mask *volume.Label, classNames []string) *volume.Label {
	lung := -1
	for k, n := range classNames {
		if k > 0 && isLungClass(n) {
			lung = k
		}
	}
	if lung < 0 {
		return mask
	}
	out := mask.Clone()
	for i, x := range out.Data {
		if x != 0 && int(x) != lung {
			out.Data[i] = 1
		} else {
			out.Data[i] = 0
		}
	}
	return out
}
