package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
)

// caseReport is what `covseg segment --report` writes per case.
type caseReport struct {
	Case    string        `json:"case"`
	Dims    volume.Dims   `json:"dims"`
	Spacing [3]float64    `json:"spacing_mm"`
	Classes []classReport `json:"classes"`
}

// classReport describes the voxels of one class.
type classReport struct {
	Name     string  `json:"name"`
	Voxels   int     `json:"voxels"`
	VolumeML float64 `json:"volume_ml"`
	// MeanHU is the mean CT value over the class's voxels; absent when the
	// class is empty.
	MeanHU *float64 `json:"mean_hu,omitempty"`
}

// writeCaseReport is the seam between segmentation and reporting: it takes
// the CT (HU) and its mask on the same grid and writes what is known about
// the case. Richer reports (lung involvement, severity scores, figures) are
// to be built behind this one call.
func writeCaseReport(path, name string, ct *volume.Volume, mask *volume.Label, classNames []string) error {
	if ct.Dims != mask.Dims {
		return fmt.Errorf("report %s: CT %v and mask %v differ in size", path, ct.Dims, mask.Dims)
	}
	sp := ct.Spacing()
	ml := sp[0] * sp[1] * sp[2] / 1000
	counts := make([]int, 256)
	sums := make([]float64, 256)
	for i, l := range mask.Data {
		counts[l]++
		if x := float64(ct.Data[i]); !math.IsNaN(x) && !math.IsInf(x, 0) {
			sums[l] += x
		}
	}
	r := caseReport{Case: name, Dims: ct.Dims, Spacing: sp}
	for k := 1; k < len(classNames); k++ {
		c := classReport{Name: classNames[k], Voxels: counts[k], VolumeML: float64(counts[k]) * ml}
		if counts[k] > 0 {
			m := sums[k] / float64(counts[k])
			c.MeanHU = &m
		}
		r.Classes = append(r.Classes, c)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	})
}
