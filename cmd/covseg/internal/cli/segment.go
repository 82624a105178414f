package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/pipeline"
)

// segmentFlags are the options of "covseg segment".
type segmentFlags struct {
	out, modelPath, engine, mode, spacing, series string
	shard                                         string
	skipExisting                                  bool
	overlap                                       float64
	threads                                       int
	tta, probs, png, report, json                 bool
	dicomSEG, dicomSC, strict                     bool
}

func newSegmentCmd() *cobra.Command {
	var f segmentFlags
	cmd := &cobra.Command{
		Use:   "segment IN... -o OUT --model MODEL",
		Short: "Segment CTs (NIfTI files or DICOM folders) into masks on their own grids",
		Long: `Segment each CT with the model and write a uint8 mask NIfTI with exactly the
CT's dims and affine (0 = background, 1.. = the model's classes).

IN is a NIfTI file, a folder holding one DICOM series, or a folder of cases:
a folder that holds NIfTI files, or only subfolders (two or more), is a batch
whose cases are its NIfTI files and its subfolders (each a DICOM series). Files
named *_mask.nii[.gz] or *_probs*.nii[.gz] are skipped (masks, and this
command's own outputs). With --series, every folder IN is one DICOM case.

A batch loads the model once and shows a progress bar and a line per case. A
case that fails (unreadable, corrupt) is reported and skipped; the others are
still written. The exit status is 1 when any case failed, 0 otherwise.

OUT is a folder (created if needed) holding CASE_mask.nii.gz per case, CASE
being the file name without .nii/.nii.gz or the DICOM folder's name; with one
case, OUT may instead be a file name ending in .nii or .nii.gz.

The model is an ONNX file from "covseg model export" or a model file (.ckpt),
which ONNX Runtime runs after exporting it to a temporary ONNX file (export it
once to skip that). ONNX Runtime's library comes from COVSEG_ORT_LIB or
third_party/onnxruntime/ (scripts/setup fetches it). --engine gomlx runs a
.ckpt in pure Go instead: no library needed, but many times slower.

Each CT is reoriented as the model was trained (its metadata says how), its
HU windowed and normalised likewise, then:
  --mode resize   the whole volume is resized to the model's grid (D×H×W)
                  and the prediction back: the paper's way, one forward pass.
  --mode sliding  the volume is resampled to a spacing (the model's, or
                  --spacing D,H,W in mm) and patches of the model's grid slide
                  over it, overlapping by --overlap and blended with Gaussian
                  weights (σ = 1/8 patch): nnU-Net's way.
The default is the model's own mode. --tta averages the softmax over the 8
mirrorings of the input (8 times the work). The class probabilities go back
onto the CT's grid (trilinear) before the argmax.

--probs also writes CASE_probs.nii.gz, the float32 probability of class 1
(CASE_probs_NAME.nii.gz per class when the model has more than two).
--png writes CASE_mask.png, 12 axial slices in the radiological view with
each class of the mask outlined in its colour and named in a legend.
--report writes CASE_report.json and CASE_report.md: the severity report of
covseg report (lung and infiltrate volumes, percent involved, MosMedData category).
--json prints one JSON object on standard output instead of the closing line:
out, failed and cases, each with the keys of covseg evaluate's cases (case,
image, pred, error, pred_ml, pred_voxels; figures that need a truth are null).
For a DICOM series, --dicom-seg writes CASE_seg.dcm, a DICOM Segmentation on
the series' own frames (segments: infiltrate, right lung, left lung) in its
study, and --dicom-sc writes CASE_sc.dcm, the report montage with the figures
burnt in as a Secondary Capture, for viewers that cannot show a SEG.

--shard K/N segments worker K's share of N (1 ≤ K ≤ N): the cases sorted by
name, every N-th starting at the K-th, so that the N tasks of a Kubernetes
Indexed Job (K = JOB_COMPLETION_INDEX+1) or a Slurm job array split a folder
with no coordination; every task must see the same inputs. OUT is then always
a folder. --skip-existing skips the cases whose outputs all exist (after the
split), so a retried task does only what is left.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSegment(cmd, args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "output", "o", "", "output folder, or with one case a .nii/.nii.gz mask file")
	fl.StringVar(&f.modelPath, "model", "", "model: ONNX file (covseg model export) or model file (.ckpt)")
	fl.StringVar(&f.engine, "engine", infer.EngineORT, "inference engine: ort (ONNX Runtime) or gomlx (pure Go, slow)")
	fl.StringVar(&f.mode, "mode", "", "resize (whole volume to the model grid) or sliding (patches at a spacing); default: the model's")
	fl.StringVar(&f.spacing, "spacing", "", "target spacing D,H,W in mm for sliding mode (default: the model's)")
	fl.Float64Var(&f.overlap, "overlap", infer.DefaultOverlap, "fraction of a patch shared by neighbouring patches (sliding mode)")
	fl.BoolVar(&f.tta, "tta", false, "test-time augmentation: average over the 8 mirrorings (8x slower)")
	fl.BoolVar(&f.probs, "probs", false, "also write the class probability map(s) as float32 NIfTI")
	fl.BoolVar(&f.png, "png", false, "also write a PNG montage of axial slices with the mask outlined")
	fl.BoolVar(&f.report, "report", false, "also write the severity report per case (JSON and Markdown)")
	fl.BoolVar(&f.json, "json", false, "print the cases as one JSON object on standard output (keys of covseg evaluate's cases)")
	fl.BoolVar(&f.dicomSEG, "dicom-seg", false, "DICOM input: also write CASE_seg.dcm, a DICOM Segmentation (infiltrate, right and left lung) on the series' frames")
	fl.BoolVar(&f.dicomSC, "dicom-sc", false, "DICOM input: also write CASE_sc.dcm, the report montage as a DICOM Secondary Capture with the figures burnt in")
	fl.StringVar(&f.series, "series", "", "DICOM SeriesInstanceUID to read from each folder IN")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime threads (default: one per physical core)")
	fl.BoolVar(&f.strict, "strict", false, "fail a case whose CT has NaN or infinite voxels (default: warn and read them as -1024 HU)")
	fl.StringVar(&f.shard, "shard", "", "segment only shard K/N of the cases (sorted by name, every N-th from the K-th): one worker of a cluster array job")
	fl.BoolVar(&f.skipExisting, "skip-existing", false, "skip cases whose outputs all exist (a retried or resumed batch)")
	return cmd
}

func runSegment(cmd *cobra.Command, args []string, f segmentFlags) error {
	opts := infer.DefaultOptions()
	opts.Mode, opts.Overlap, opts.TTA = f.mode, f.overlap, f.tta
	if f.spacing != "" {
		if err := parseFloats(f.spacing, 3, func(v []float64) { copy(opts.Spacing[:], v) }); err != nil {
			return fmt.Errorf("segment: --spacing: %w", err)
		}
	}
	res, err := pipeline.SegmentBatch(cmd.Context(), pipeline.SegmentOptions{
		Inputs: args, Out: f.out, Model: f.modelPath, Engine: f.engine, Threads: f.threads, Series: f.series,
		Infer: &opts, Probs: f.probs, PNG: f.png, Report: f.report, DICOMSEG: f.dicomSEG, DICOMSC: f.dicomSC, Strict: f.strict,
		Shard: f.shard, SkipExisting: f.skipExisting,
		Log: cmd.ErrOrStderr(),
	})
	switch {
	case res == nil:
	case len(res.Cases) == 0 && !f.json:
		fmt.Fprintf(cmd.OutOrStdout(), "segment: nothing to do (shard %q, %d case(s) already done)\n", f.shard, len(res.Skipped))
	case f.json:
		if jerr := res.WriteJSON(cmd.OutOrStdout()); jerr != nil && err == nil {
			err = jerr
		}
	default:
		fmt.Fprintf(cmd.OutOrStdout(), "segmented %d of %d case(s) into %s\n", len(res.Cases)-res.Failed, len(res.Cases), f.out)
	}
	return err
}
