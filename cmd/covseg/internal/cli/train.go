package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/train"
)

func newTrainCmd() *cobra.Command {
	var configPath, out, resume string
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "train (--config train.yaml -o RUNDIR | --resume RUNDIR | --print-config)",
		Short: "Train the 3D U-Net with the paper's transfer-learning recipe",
		Long: `Train the network on the cases of a manifest, as the YAML config says.

The defaults (covseg train --print-config) are the paper's recipe, faimed3d's
COVID-19 example: loss (1 − soft Dice) + cross-entropy, AdamW (β2 0.99, eps
1e-5, weight decay 1e-4 except on BatchNorm and biases), fastai's one-cycle
schedule, 3 epochs with the encoder frozen at lr 1e-2 and 50 unfrozen at
lr 1e-3, batch size 1. A config file only needs the fields it changes.

The run folder RUNDIR receives config.yaml (the resolved config), last.ckpt
(every epoch, with the optimiser state), best.ckpt (the network of the best
validation Dice), metrics.jsonl, metrics.csv, steps.jsonl and curves.png.
Ctrl-C saves last.ckpt and stops after the current batch; --resume RUNDIR
continues exactly where the run stopped.

The backend is GOMLX_BACKEND's (e.g. xla:cuda, or
xla:/abs/path/pjrt_c_api_cuda_plugin.so), or covseg's CPU backend.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd.Context(), trainArgs{configPath, out, resume, printConfig}, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config (fields override the defaults)")
	f.StringVarP(&out, "output", "o", "", "run folder to create")
	f.StringVar(&resume, "resume", "", "run folder to continue")
	f.BoolVar(&printConfig, "print-config", false, "print the config (the defaults, or --config's resolved) as YAML and exit")
	return cmd
}

type trainArgs struct {
	config, out, resume string
	printConfig         bool
}

func runTrain(ctx context.Context, a trainArgs, stdout, stderr io.Writer) error {
	cfg := train.DefaultConfig()
	var err error
	switch {
	case a.resume != "" && (a.config != "" || a.out != ""):
		return errors.New("train: --resume takes the run folder's own config.yaml; leave out --config and -o")
	case a.resume != "":
		if cfg, err = train.ReadConfig(filepath.Join(a.resume, train.FileConfig)); err != nil {
			return err
		}
	case a.config != "":
		if cfg, err = train.ReadConfig(a.config); err != nil {
			return err
		}
	}
	if a.printConfig {
		y, err := cfg.YAML()
		if err != nil {
			return err
		}
		_, err = stdout.Write(y)
		return err
	}
	dir := a.resume
	if dir == "" {
		if a.out == "" {
			return errors.New("train: -o RUNDIR is required (or --resume RUNDIR)")
		}
		dir = a.out
		if cfg, err = pipeline.AbsConfigPaths(cfg, a.config); err != nil {
			return err
		}
	}
	trainSrc, valSrc, err := pipeline.LoadTrainData(cfg, dir, stdout)
	if err != nil {
		return err
	}
	backend, err := train.NewBackend(cfg.Backend.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backend %s (%s), %s; run folder %s\n", backend.String(), backend.Description(), cfg.Backend.DType, dir)

	ctx, stop := interruptible(ctx, stderr)
	defer stop()
	res, err := train.Run(ctx, train.Options{
		Config: cfg, Dir: dir, Resume: a.resume != "", Backend: backend,
		Train: trainSrc, Val: valSrc, Log: stdout,
	})
	if err != nil {
		return err
	}
	if res.Interrupted {
		return pipeline.ErrInterrupted
	}
	return nil
}
