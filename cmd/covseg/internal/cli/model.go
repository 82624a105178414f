package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/model"
)

// modelCommands lists the subcommands of "covseg model", one per line.
var modelCommands = []func() *cobra.Command{
	newModelInitCmd,
	newModelInfoCmd,
	newModelExportCmd,
	newModelQuantizeCmd,
}

// newModelCmd groups the commands that create and inspect model files.
func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Create and inspect model files (network configuration, weights, optimiser state)",
	}
	for _, add := range modelCommands {
		cmd.AddCommand(add())
	}
	return cmd
}

func newModelInitCmd() *cobra.Command {
	var (
		out, pretrained, names, window, grid, spacing, norm, orientation string
		classes, inChannels                                              int
		width                                                            float64
		seed                                                             uint64
	)
	cmd := &cobra.Command{
		Use:   "init -o MODEL.ckpt",
		Short: "Create a model: the paper's 3D U-Net, encoder from torchvision's r3d_18 weights or random",
		Long: `Create a model file holding the network's configuration and initial weights.

With --pretrained, the encoder takes torchvision's Kinetics-400 r3d_18 weights
(r3d_18-b3b3357e.pth, downloaded by the user from
https://download.pytorch.org/models/r3d_18-b3b3357e.pth); the stem's RGB kernel
is summed for the single CT channel. The decoder is initialised at random.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("model init: -o MODEL.ckpt is required")
			}
			if err := guardOutputs([]string{out}, []string{pretrained}); err != nil {
				return fmt.Errorf("model init: %w", err)
			}
			cfg := model.DefaultConfig()
			cfg.Classes, cfg.InChannels, cfg.Width = classes, inChannels, width
			cfg.ClassNames = model.DefaultClassNames(classes)
			if names != "" {
				cfg.ClassNames = strings.Split(names, ",")
			}
			p := &cfg.Preprocess
			p.Normalize, p.Orientation = norm, orientation
			if err := parseFloats(window, 2, func(v []float64) { p.WindowLow, p.WindowHigh = v[0], v[1] }); err != nil {
				return fmt.Errorf("model init: --window: %w", err)
			}
			if err := parseInts(grid, func(v [3]int) { p.Grid = v }); err != nil {
				return fmt.Errorf("model init: --grid: %w", err)
			}
			if spacing != "" {
				if err := parseFloats(spacing, 3, func(v []float64) { copy(p.Spacing[:], v) }); err != nil {
					return fmt.Errorf("model init: --spacing: %w", err)
				}
				p.Mode = model.ModeSpacing
			}
			cfg.Encoder.Seed = seed
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("model init: %w", err)
			}
			ctx, err := model.NewContext(cfg, seed)
			if err != nil {
				return fmt.Errorf("model init: %w", err)
			}
			if pretrained != "" {
				if err := model.LoadPretrainedEncoder(ctx, &cfg, pretrained); err != nil {
					return fmt.Errorf("model init: %w", err)
				}
			}
			if err := model.Save(out, cfg, ctx); err != nil {
				return fmt.Errorf("model init: %w", err)
			}
			counts, err := countFile(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s, %s parameters, encoder %s\n",
				out, cfg, thousands(counts.Total), describeSource(cfg.Encoder))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "model file to write")
	f.StringVar(&pretrained, "pretrained", "", "torchvision r3d_18 state_dict (.pth) for the encoder")
	f.IntVar(&classes, "classes", 2, "number of classes, background included")
	f.StringVar(&names, "class-names", "", "comma-separated class names (default background,infiltrate)")
	f.IntVar(&inChannels, "in-channels", 1, "input channels (1 for CT)")
	f.Float64Var(&width, "width", 1, "channel width multiplier; 64·width must be whole (1 = the paper's network)")
	f.Uint64Var(&seed, "seed", 0, "seed of the random initialisation")
	f.StringVar(&window, "window", "-1024,600", "HU window LOW,HIGH mapped onto 0..1")
	f.StringVar(&norm, "normalize", model.NormNone, "normalisation after the window: none, zscore, minmax (the volume's own clipped range onto 0..1)")
	f.StringVar(&orientation, "orientation", "LPS", "axis code volumes are reoriented to before preprocessing")
	f.StringVar(&grid, "grid", "20,224,224", "network input D,H,W: the whole volume (resize mode) or the patch (spacing mode)")
	f.StringVar(&spacing, "spacing", "", "resample to this spacing D,H,W in mm and slide patches (nnU-Net's way) instead of resizing")
	return cmd
}

func newModelInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "info MODEL.ckpt",
		Short: "Describe a model file: architecture, parameter counts per part, preprocessing, weights' origin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return modelInfo(cmd.OutOrStdout(), args[0])
		},
	}
}

// countFile counts the parameters of a model file by part.
func countFile(path string) (model.Counts, error) {
	m, err := model.ReadManifest(path)
	if err != nil {
		return model.Counts{}, err
	}
	specs, err := model.ParamSpecs(m.Config)
	if err != nil {
		return model.Counts{}, err
	}
	return model.CountParams(specs), nil
}

func modelInfo(w io.Writer, path string) error {
	m, err := model.ReadManifest(path)
	if err != nil {
		return err
	}
	specs, err := model.ParamSpecs(m.Config)
	if err != nil {
		return err
	}
	c := model.CountParams(specs)
	cfg := m.Config
	var size int64
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	fmt.Fprintf(w, "%s (%.1f MB, saved %s)\n", path, float64(size)/1e6, m.Saved.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(w, "architecture  %s: R3D-18 encoder + faimed3d U-Net decoder\n", cfg.Arch)
	fmt.Fprintf(w, "width         %v (channels %d/%d/%d/%d, bridge %d)\n", cfg.Width,
		int(64*cfg.Width), int(128*cfg.Width), int(256*cfg.Width), int(512*cfg.Width), int(1024*cfg.Width))
	fmt.Fprintf(w, "input         %d channel(s); classes %d: %s\n", cfg.InChannels, cfg.Classes, strings.Join(cfg.ClassNames, ", "))
	fmt.Fprintln(w, "parameters")
	for _, p := range model.Parts {
		fmt.Fprintf(w, "  %-10s %14s\n", p, thousands(c.Part[p]))
	}
	fmt.Fprintf(w, "  %-10s %14s\n", "total", thousands(c.Total))
	fmt.Fprintf(w, "  %-10s %14s  (BatchNorm running statistics)\n", "buffers", thousands(c.Buffers))
	fmt.Fprintf(w, "encoder from  %s\n", describeSource(cfg.Encoder))
	p := cfg.Preprocess
	fmt.Fprintf(w, "preprocess    HU window [%g, %g] → [0, 1], normalise %s, orientation %s\n",
		p.WindowLow, p.WindowHigh, p.Normalize, p.Orientation)
	if p.Mode == model.ModeSpacing {
		fmt.Fprintf(w, "              patches of %dx%dx%d at spacing %gx%gx%g mm (D,H,W)\n",
			p.Grid[0], p.Grid[1], p.Grid[2], p.Spacing[0], p.Spacing[1], p.Spacing[2])
	} else {
		fmt.Fprintf(w, "              whole volume resized to %dx%dx%d (D,H,W)\n", p.Grid[0], p.Grid[1], p.Grid[2])
	}
	var other, otherElems int
	for _, v := range m.Variables {
		if v.Scope != model.Scope {
			other++
			n := 1
			for _, d := range v.Shape {
				n *= d
			}
			otherElems += n
		}
	}
	if other > 0 {
		fmt.Fprintf(w, "other state   %d variables (%s values): optimiser and training state\n", other, thousands(otherElems))
	} else {
		fmt.Fprintln(w, "other state   none (not trained yet)")
	}
	return nil
}

func describeSource(s model.EncoderSource) string {
	if s.Kind == model.SourceTorchvision {
		return fmt.Sprintf("torchvision weights %s (sha256 %s)", s.File, s.SHA256)
	}
	return fmt.Sprintf("random initialisation (seed %d)", s.Seed)
}

// thousands formats n with comma separators: 95,325,440.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// parseInts parses three comma-separated integers.
func parseInts(s string, set func([3]int)) error {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return fmt.Errorf("%q: want D,H,W", s)
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		v[i] = n
	}
	set(v)
	return nil
}
