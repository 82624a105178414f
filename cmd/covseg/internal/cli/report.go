package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/volio"
)

func newReportCmd() *cobra.Command {
	var ctPath, maskPath, lungsPath, mdPath, pngPath, series, dicomSEG, dicomSC string
	var asJSON, strict bool
	opt := lungs.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "report --ct CT --mask MASK [--lungs LUNGS]",
		Short: "Severity of a COVID-19 CT: lung and infiltrate volumes, percent involved, MosMedData category",
		Long: `Measure how much of the lungs an infiltrate mask involves.

CT is a NIfTI file in HU or a folder holding a DICOM series; MASK is the
infiltrate mask (NIfTI, any integer labels: every voxel > 0 counts); LUNGS
is a lung mask with 1 = right lung and 2 = left lung (as covseg lungs writes
it). Without --lungs the lungs are segmented from the CT. All three must lie
on one grid (dims and affine within 1e-3 mm).

The report gives lung volume (ml, total and per lung), infiltrate inside
the lungs (ml, per lung), percent of lung involved (total and per lung),
the MosMedData category (CT-0: no infiltrate; CT-1: < 25 %; CT-2: 25 % to
< 50 %; CT-3: 50 % to < 75 %; CT-4: >= 75 %; boundaries belong to the higher
category), and the infiltrate outside the lung mask as a quality flag.

Standard output gets the report as Markdown, or with --json as JSON only.
--markdown and --png write it to files; the PNG shows axial slices in the
radiological view (patient's right on the image's left, anterior up), the
lungs outlined and the infiltrate filled, window -1350..150 HU.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ctPath == "" || maskPath == "" {
				return fmt.Errorf("report: --ct CT and --mask MASK are required")
			}
			if err := guardOutputs([]string{mdPath, pngPath, dicomSEG, dicomSC}, []string{ctPath, maskPath, lungsPath}); err != nil {
				return err
			}
			ct, ctSrc, err := volio.Read(ctPath, volio.Options{SeriesUID: series, Copies: volio.CopiesReport})
			if err != nil {
				return err
			}
			if err := nonFinite(cmd.ErrOrStderr(), ctPath, ctSrc, ct, strict); err != nil {
				return err
			}
			mask, _, err := volio.ReadLabel(maskPath)
			if err != nil {
				return err
			}
			var lungMask *volume.Label
			if lungsPath != "" {
				if lungMask, _, err = volio.ReadLabel(lungsPath); err != nil {
					return err
				}
			}
			r, err := severity.Compute(ct, mask, lungMask, severity.Options{Version: Version, Lungs: opt})
			if err != nil {
				return fmt.Errorf("%s, %s: %w", ctPath, maskPath, err)
			}
			r.Inputs = severity.Inputs{CT: ctPath, Mask: maskPath, Lungs: lungsPath, LungsComputed: lungsPath == ""}
			if err := writeReportDICOM(cmd.ErrOrStderr(), ctPath, ctSrc, ct, mask, r, dicomSEG, dicomSC); err != nil {
				return err
			}
			return writeReport(cmd.OutOrStdout(), r, ct, mask, asJSON, mdPath, pngPath)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ctPath, "ct", "", "CT in HU: NIfTI file or DICOM series folder")
	f.StringVar(&maskPath, "mask", "", "infiltrate mask (NIfTI; voxels > 0 are infiltrate)")
	f.StringVar(&lungsPath, "lungs", "", "lung mask (NIfTI; 1 right, 2 left); computed from the CT when not given")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (only) to standard output")
	f.StringVar(&mdPath, "markdown", "", "write the report as Markdown to this file")
	f.StringVar(&pngPath, "png", "", "write a montage of axial slices to this PNG file")
	f.StringVar(&series, "series", "", "DICOM SeriesInstanceUID to read when the folder holds several")
	f.StringVar(&dicomSEG, "dicom-seg", "", "DICOM CT: also write the infiltrate and lungs as a DICOM Segmentation file")
	f.StringVar(&dicomSC, "dicom-sc", "", "DICOM CT: also write the montage with the figures as a DICOM Secondary Capture file")
	f.BoolVar(&strict, "strict", false, "refuse a CT with NaN or infinite voxels (default: warn and read them as -1024 HU)")
	addLungsFlags(f, &opt)
	return cmd
}

// writeReport prints the report and writes the files asked for.
func writeReport(w io.Writer, r *severity.Report, ct *volume.Volume, mask *volume.Label, asJSON bool, mdPath, pngPath string) error {
	md := r.Markdown()
	if asJSON {
		b, err := r.JSON()
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	} else {
		fmt.Fprint(w, md)
	}
	if mdPath != "" {
		if err := atomicfile.Write(mdPath, func(f io.Writer) error {
			_, err := io.WriteString(f, md)
			return err
		}); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if pngPath != "" {
		img, err := r.Montage(ct, mask, montage.Options{})
		if err != nil {
			return err
		}
		if err := montage.WritePNG(pngPath, img); err != nil {
			return err
		}
	}
	return nil
}
