package cli

import (
	"fmt"
	"io"

	"github.com/covseg/covseg/eval/dicomreport"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomout"
	"github.com/covseg/covseg/volume/volio"
)

// writeLungsSEG writes a lung mask as a DICOM SEG (right and left lung)
// for covseg lungs --dicom-seg.
func writeLungsSEG(path, in string, vsrc *volio.Source, mask *volume.Label) (*dicomout.Written, error) {
	src, err := pipeline.DICOMSource(in, vsrc)
	if err != nil {
		return nil, err
	}
	return dicomout.WriteSEG(path, src, dicomout.LungSegments(mask, Version), dicomout.SEGOptions{
		Equipment:          dicomout.Equipment{SoftwareVersion: Version},
		SeriesDescription:  "covseg lungs - " + dicomreport.NotForDiagnosis,
		ContentDescription: "right and left lung by covseg lungs " + Version,
	})
}

// writeReportDICOM writes covseg report's --dicom-seg and --dicom-sc files
// (none when both are empty), naming them on w.
func writeReportDICOM(w io.Writer, in string, vsrc *volio.Source, ct *volume.Volume, mask *volume.Label, r *severity.Report, segPath, scPath string) error {
	if segPath == "" && scPath == "" {
		return nil
	}
	src, err := pipeline.DICOMSource(in, vsrc)
	if err != nil {
		return err
	}
	if segPath != "" {
		sw, err := dicomreport.WriteSEG(segPath, src, mask, r.Lungs, Version)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s (DICOM SEG, %d frames)\n", segPath, sw.Frames)
	}
	if scPath != "" {
		if _, err := dicomreport.WriteSC(scPath, src, ct, mask, r, Version); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s (DICOM Secondary Capture)\n", scPath)
	}
	return nil
}
