package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/pipeline"
)

// reproduceFlags are the options of "covseg reproduce".
type reproduceFlags struct {
	ricord, ricordAnn, coronacases, mosmed string
	modelPath, out, config, engine         string
	valFraction, tau                       float64
	seed                                   uint64
	threads                                int
	json, tta                              bool
}

func newReproduceCmd() *cobra.Command {
	var f reproduceFlags
	cmd := &cobra.Command{
		Use:   "reproduce --ricord DICOMDIR --ricord-annotations MDAI.json --coronacases DIR --mosmed DIR [--model M] [-o OUT] [--config train.yaml]",
		Short: "The paper's protocol end to end: train on RICORD, test on Coronacases and MosMedData, print the table beside the paper's",
		Long: `Run Bressem et al. 2021's protocol on the public data sets a user downloads:

 1. Prepare the data: RICORD 1a's DICOM series and MD.ai export become NIfTI
    pairs (as covseg data ricord does; OUT/data/ricord, reused when it is
    there), split by patient into training and a tuning (validation) set of
    --val-fraction; the Coronacases collection's ten coronacases_org volumes
    (the radiopaedia ones left out, as the authors did: they are not in HU)
    and the MosMedData studies with masks are test sets. OUT/manifest.csv
    lists them all.
 2. Train with the paper's recipe (covseg train's defaults, or --config's
    fields over them; the manifest is always OUT/manifest.csv) into OUT/run,
    unless --model names a trained model. A run folder that holds a run is
    resumed (with its own config.yaml). The model is OUT/run/best.ckpt, the
    epoch of the best tuning Dice.
 3. Segment the RICORD tuning cases and both test sets as covseg segment
    does (the model's own mode and preprocessing; ONNX Runtime, after one
    export to OUT/model.onnx) into OUT/pred/DATASET/, and compare each mask
    with its truth as covseg evaluate does.
 4. Print the table: dataset | cases | the paper's mean Dice | covseg's mean
    Dice ± SD | mean normalised surface Dice at --tau mm | mean HD95, with the
    run's settings, and write it as OUT/results.md and OUT/results.json
    (per case in OUT/cases.csv). --json prints the JSON on standard output.

Without --model, RICORD is required (it is the training data). With --model,
each data set is optional, and the table has the rows of those given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := interruptible(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			return runReproduce(ctx, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	def := pipeline.DefaultReproduceOptions()
	fl.StringVar(&f.ricord, "ricord", "", "RICORD 1a: folder of its DICOM series (searched recursively)")
	fl.StringVar(&f.ricordAnn, "ricord-annotations", "", "RICORD 1a: the MD.ai export (JSON)")
	fl.StringVar(&f.coronacases, "coronacases", "", "folder of the Coronacases collection (Zenodo 3757476)")
	fl.StringVar(&f.mosmed, "mosmed", "", "folder of MosMedData (COVID19_1110)")
	fl.StringVar(&f.modelPath, "model", "", "a trained model (.ckpt or .onnx): skip training")
	fl.StringVarP(&f.out, "output", "o", def.Out, "output folder")
	fl.StringVar(&f.config, "config", "", "training config (YAML; fields override the paper's recipe)")
	fl.Float64Var(&f.valFraction, "val-fraction", def.ValFraction, "fraction of RICORD's patients in the tuning (validation) set")
	fl.Uint64Var(&f.seed, "split-seed", def.SplitSeed, "seed of RICORD's split")
	fl.Float64Var(&f.tau, "tau", def.TauMM, "tolerance of the normalised surface Dice in mm")
	fl.StringVar(&f.engine, "engine", def.Engine, "inference engine: ort (ONNX Runtime) or gomlx (pure Go, slow)")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime threads (default: one per core)")
	fl.BoolVar(&f.tta, "tta", false, "test-time augmentation: average over the 8 mirrorings (8x slower; the paper did not)")
	fl.BoolVar(&f.json, "json", false, "print the results as JSON on standard output (progress on standard error)")
	return cmd
}

func runReproduce(ctx context.Context, f reproduceFlags, stdout, stderr io.Writer) error {
	log := stdout
	if f.json {
		log = stderr
	}
	res, err := pipeline.Reproduce(ctx, pipeline.ReproduceOptions{
		RICORD: f.ricord, RICORDAnnotations: f.ricordAnn, Coronacases: f.coronacases, MosMed: f.mosmed,
		Model: f.modelPath, Out: f.out, Config: f.config, Engine: f.engine,
		ValFraction: f.valFraction, SplitSeed: f.seed, TauMM: f.tau, Threads: f.threads, TTA: f.tta,
		Log: log, Progress: stderr,
	})
	if err != nil {
		return err
	}
	if f.json {
		return res.WriteJSON(stdout)
	}
	return res.WriteTable(stdout)
}
