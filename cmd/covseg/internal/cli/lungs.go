package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

func newLungsCmd() *cobra.Command {
	var out, png, series, dicomSEG string
	var strict bool
	opt := lungs.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "lungs IN -o LUNGS.nii.gz",
		Short: "Segment the lungs of a chest CT: 1 = the patient's right lung, 2 = the left",
		Long: `Segment the lungs of a chest CT (a NIfTI file in HU, or a folder holding a
DICOM series) with covseg's classical method: air threshold, removal of the
air around the patient, of the trachea and main bronchi, a split of right
from left along the midline where the lungs touch, hole filling, and a
closing on the costal side that keeps dense lung (consolidation) at the
pleura inside the mask. See the documentation of package lungs for each
step and its trade-offs.

The mask (uint8: 0 background, 1 right lung, 2 left lung) is written on the
input's own grid: same dims, same affine, whatever the orientation.
--png draws a montage of axial slices in the radiological view (patient's
right on the image's left, anterior up) with the lungs outlined.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("lungs: -o LUNGS.nii.gz is required")
			}
			if err := guardOutputs([]string{out, png, dicomSEG}, args[:1]); err != nil {
				return err
			}
			v, vsrc, err := volio.Read(args[0], volio.Options{SeriesUID: series, Copies: volio.CopiesLungs})
			if err != nil {
				return err
			}
			if err := nonFinite(cmd.ErrOrStderr(), args[0], vsrc, v, strict); err != nil {
				return err
			}
			res, err := lungs.Segment(v, opt)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := nifti.WriteLabel(out, res.Mask); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s: right lung %.1f ml, left lung %.1f ml\n", out, res.RightML, res.LeftML)
			fmt.Fprintf(w, "airway removed %.1f ml; midline x = %.1f mm (from the %s); lungs %s\n",
				res.AirwayML, res.MidlineX, res.MidlineFrom, splitWords(res.Split))
			warnLungs(cmd.ErrOrStderr(), res)
			if dicomSEG != "" {
				sw, err := writeLungsSEG(dicomSEG, args[0], vsrc, res.Mask)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "wrote %s (DICOM SEG, %d frames)\n", dicomSEG, sw.Frames)
			}
			if png != "" {
				img, err := montage.Render(v, []montage.Overlay{{Label: res.Mask, Styles: map[uint8]montage.Style{
					lungs.Right: {Name: "right lung", Color: severity.RightColor, Outline: true, Fill: 0.15},
					lungs.Left:  {Name: "left lung", Color: severity.LeftColor, Outline: true, Fill: 0.15},
				}}}, montage.Options{Title: fmt.Sprintf("%s: right lung %.0f ml, left lung %.0f ml", args[0], res.RightML, res.LeftML)})
				if err != nil {
					return err
				}
				if err := montage.WritePNG(png, img); err != nil {
					return err
				}
				fmt.Fprintf(w, "wrote %s\n", png)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "lung mask to write (.nii or .nii.gz)")
	f.StringVar(&png, "png", "", "also draw a montage of axial slices with the lungs outlined (PNG)")
	f.StringVar(&dicomSEG, "dicom-seg", "", "DICOM input: also write the lungs as a DICOM Segmentation file (right and left lung segments)")
	f.StringVar(&series, "series", "", "DICOM SeriesInstanceUID to read when the folder holds several")
	f.BoolVar(&strict, "strict", false, "refuse a CT with NaN or infinite voxels (default: warn and read them as -1024 HU)")
	addLungsFlags(f, &opt)
	return cmd
}

// addLungsFlags adds the settings of the lung method to a command.
func addLungsFlags(f flagSet, opt *lungs.Options) {
	f.Float64Var(&opt.AirHU, "air-hu", opt.AirHU, "voxels below are air")
	f.Float64Var(&opt.AirwayHU, "airway-hu", opt.AirwayHU, "regions whose median is below are pure gas (airways, outside air)")
	f.Float64Var(&opt.ClosingRadiusMM, "closing-radius", opt.ClosingRadiusMM, "radius in mm of the closing that keeps dense lung at the pleura (0: off)")
	f.Float64Var(&opt.BridgeMM, "bridge", opt.BridgeMM, "longest chord in mm across the mouth of a bite of dense lung at the pleura that is bridged (0: off)")
	f.Float64Var(&opt.CostalBandMM, "costal-band", opt.CostalBandMM, "how far in mm from the rib cage the closing may add")
}

// flagSet is the part of pflag.FlagSet addLungsFlags uses.
type flagSet interface {
	Float64Var(p *float64, name string, value float64, usage string)
}

// splitWords says how right and left were separated.
func splitWords(split string) string {
	switch split {
	case "separate":
		return "were apart"
	case "one side":
		return "found on one side only"
	case "none":
		return "not found"
	case "midline plane":
		return "touched and were cut at the midline plane"
	}
	return "touched and were separated by " + split
}

// warnLungs tells about results that need a look.
func warnLungs(w io.Writer, res *lungs.Result) {
	switch {
	case res.RightML == 0 && res.LeftML == 0:
		fmt.Fprintln(w, "warning: no lungs found (is the input a chest CT in HU?)")
	case res.RightML == 0:
		fmt.Fprintln(w, "warning: no right lung found (a scan cropped to the left side?)")
	case res.LeftML == 0:
		fmt.Fprintln(w, "warning: no left lung found (a scan cropped to the right side?)")
	}
}
