package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/volio"
)

// infoReport is what `covseg info` prints.
type infoReport struct {
	Path     string        `json:"path"`
	Format   volio.Format  `json:"format"`
	Datatype string        `json:"datatype"`
	Shape    []int         `json:"shape"`
	Dims     *volume.Dims  `json:"dims,omitempty"`
	Spacing  [3]float64    `json:"spacing_mm"`
	AxCodes  string        `json:"axcodes"`
	Affine   volume.Affine `json:"affine_ras"`
	Stats    *jsonStats    `json:"stats,omitempty"`
	Series   *seriesReport `json:"series,omitempty"`
	Note     string        `json:"note,omitempty"`
}

type seriesReport struct {
	UID              string   `json:"uid"`
	Description      string   `json:"description"`
	Modality         string   `json:"modality"`
	Slices           int      `json:"slices"`
	TransferSyntaxes []string `json:"transfer_syntaxes"`
}

// jsonStats holds voxel statistics; NaN (no finite voxel) becomes null.
type jsonStats struct {
	Min       *float64 `json:"min"`
	Max       *float64 `json:"max"`
	Mean      *float64 `json:"mean"`
	SD        *float64 `json:"sd"`
	Sum       float64  `json:"sum"`
	NonFinite int      `json:"nonfinite"`
}

func finiteOrNil(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func newInfoCmd() *cobra.Command {
	var asJSON bool
	var series string
	cmd := &cobra.Command{
		Use:   "info [--json] PATH",
		Short: "Describe a CT or mask: dims, spacing, orientation, datatype, affine, voxel statistics",
		Long: `Describe a NIfTI file (.nii, .nii.gz) or a folder holding a DICOM series:
dims, voxel spacing (mm), orientation codes (RAS+ convention: the letter is the
direction each voxel axis points to), datatype on disk, the voxel-to-world
affine in RAS+ millimetres, and voxel statistics. NIfTI time series (4D) are
described without statistics. A NIfTI file is streamed: its statistics take a
few MiB of memory whatever its size.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := describe(args[0], series)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printInfo(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&series, "series", "", "DICOM SeriesInstanceUID to read when the folder holds several")
	return cmd
}

func describe(path, series string) (*infoReport, error) {
	src, s, err := volio.ReadStats(path, volio.Options{SeriesUID: series})
	if err != nil {
		return nil, err
	}
	r := &infoReport{Path: path, Format: src.Format, Datatype: src.Datatype, Shape: src.Shape,
		Spacing: src.AffineOnDisk.Spacing(), AxCodes: src.AffineOnDisk.AxCodes(), Affine: noNegativeZero(src.AffineOnDisk)}
	if s != nil {
		d := volume.Dims{1, 1, 1}
		copy(d[:], src.Shape)
		r.Dims = &d
		r.Stats = &jsonStats{Min: finiteOrNil(s.Min), Max: finiteOrNil(s.Max), Mean: finiteOrNil(s.Mean),
			SD: finiteOrNil(s.SD), Sum: s.Sum, NonFinite: s.NonFinite}
	} else {
		r.Note = fmt.Sprintf("%d-dimensional image: covseg's commands need a 3D volume", len(src.Shape))
	}
	if s := src.Series; s != nil {
		r.Series = &seriesReport{UID: s.UID, Description: s.Description, Modality: s.Modality,
			Slices: s.Slices, TransferSyntaxes: s.TransferSyntaxes}
	}
	return r, nil
}

func printInfo(w io.Writer, r *infoReport) {
	fmt.Fprintf(w, "path:        %s\n", r.Path)
	fmt.Fprintf(w, "format:      %s\n", r.Format)
	if s := r.Series; s != nil {
		fmt.Fprintf(w, "series:      %s (%s %q, %d slices)\n", s.UID, s.Modality, s.Description, s.Slices)
		fmt.Fprintf(w, "transfer:    %v\n", s.TransferSyntaxes)
	}
	fmt.Fprintf(w, "datatype:    %s\n", r.Datatype)
	fmt.Fprintf(w, "shape:       %v\n", r.Shape)
	fmt.Fprintf(w, "spacing:     %.6g x %.6g x %.6g mm\n", r.Spacing[0], r.Spacing[1], r.Spacing[2])
	fmt.Fprintf(w, "orientation: %s (voxel axes point to; RAS+ world)\n", r.AxCodes)
	fmt.Fprintf(w, "affine:\n")
	for _, row := range r.Affine {
		fmt.Fprintf(w, "  %12.6f %12.6f %12.6f %12.6f\n", row[0], row[1], row[2], row[3])
	}
	if st := r.Stats; st != nil {
		f := func(p *float64) string {
			if p == nil {
				return "n/a"
			}
			return fmt.Sprintf("%.6g", *p)
		}
		fmt.Fprintf(w, "voxels:      min %s  max %s  mean %s  sd %s  non-finite %d\n",
			f(st.Min), f(st.Max), f(st.Mean), f(st.SD), st.NonFinite)
	}
	if r.Note != "" {
		fmt.Fprintf(w, "note:        %s\n", r.Note)
	}
}

// noNegativeZero turns -0 entries (from LPS→RAS negation) into 0 for display.
func noNegativeZero(a volume.Affine) volume.Affine {
	for r := range a {
		for c := range a[r] {
			a[r][c] += 0
		}
	}
	return a
}
