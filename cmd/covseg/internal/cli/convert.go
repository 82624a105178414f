package cli

import (
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

func newConvertCmd() *cobra.Command {
	var series, dtype string
	cmd := &cobra.Command{
		Use:   "convert IN OUT.nii.gz",
		Short: "Convert a NIfTI file or a DICOM series folder to NIfTI, keeping its geometry",
		Long: `Convert IN (a NIfTI file or a folder holding a DICOM series) to a NIfTI file
(gzip-compressed when OUT ends in .gz). Voxels keep their order and the
affine is written exactly (sform and qform). DICOM becomes Hounsfield units.

--dtype auto stores integers (int16, or the input's NIfTI datatype) when
every voxel fits exactly, and float32 otherwise.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := guardOutputs(args[1:2], args[:1]); err != nil {
				return err
			}
			v, src, err := volio.Read(args[0], volio.Options{SeriesUID: series, Copies: volio.CopiesConvert})
			if err != nil {
				return err
			}
			dt, err := chooseDatatype(dtype, v, src)
			if err != nil {
				return err
			}
			if err := nifti.WriteVolume(args[1], v, nifti.WriteOptions{Datatype: dt}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %v voxels, %s, %s\n", args[1], v.Dims, dt, v.Affine.AxCodes())
			return nil
		},
	}
	cmd.Flags().StringVar(&series, "series", "", "DICOM SeriesInstanceUID to read when the folder holds several")
	cmd.Flags().StringVar(&dtype, "dtype", "auto", "stored datatype: auto, float32, float64, int16, uint8, int8, uint16, int32, uint32")
	return cmd
}

var datatypeNames = map[string]nifti.Datatype{
	"float32": nifti.Float32, "float64": nifti.Float64, "int16": nifti.Int16, "uint8": nifti.Uint8,
	"int8": nifti.Int8, "uint16": nifti.Uint16, "int32": nifti.Int32, "uint32": nifti.Uint32,
}

// chooseDatatype picks the stored datatype: the one named, or for "auto" the
// input's own integer type (DICOM: int16) when every voxel fits it exactly.
func chooseDatatype(name string, v *volume.Volume, src *volio.Source) (nifti.Datatype, error) {
	if name != "auto" {
		dt, ok := datatypeNames[name]
		if !ok {
			return 0, fmt.Errorf("--dtype %q: want auto or one of float32, float64, int16, uint8, int8, uint16, int32, uint32", name)
		}
		return dt, nil
	}
	want := nifti.Int16
	if src.NIfTI != nil {
		want = src.NIfTI.Datatype
	}
	lo, hi, ok := integerRange(want)
	if !ok {
		return nifti.Float32, nil
	}
	for _, x := range v.Data {
		if f := float64(x); f != math.Trunc(f) || f < lo || f > hi {
			return nifti.Float32, nil
		}
	}
	return want, nil
}

func integerRange(dt nifti.Datatype) (lo, hi float64, ok bool) {
	switch dt {
	case nifti.Uint8:
		return 0, math.MaxUint8, true
	case nifti.Int8:
		return math.MinInt8, math.MaxInt8, true
	case nifti.Int16:
		return math.MinInt16, math.MaxInt16, true
	case nifti.Uint16:
		return 0, math.MaxUint16, true
	case nifti.Int32:
		return math.MinInt32, math.MaxInt32, true
	case nifti.Uint32:
		return 0, math.MaxUint32, true
	}
	return 0, 0, false
}
