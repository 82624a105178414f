package cli

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/internal/progress"
	"github.com/covseg/covseg/pipeline"
	"github.com/covseg/covseg/volume"
)

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Prepare training data: convert RICORD, list data sets in a manifest, write synthetic stand-ins",
	}
	cmd.AddCommand(newDataRICORDCmd(), newDataDiscoverCmd(), newDataSynthCmd())
	return cmd
}

// splitFlags are the split options shared by the data subcommands.
type splitFlags struct {
	val, test float64
	seed      uint64
	whole     []string
}

func (s *splitFlags) add(cmd *cobra.Command) {
	cmd.Flags().Float64Var(&s.val, "val", dataset.DefaultSplit.Val, "fraction of each data set's patients for validation")
	cmd.Flags().Float64Var(&s.test, "test", dataset.DefaultSplit.Test, "fraction of each data set's patients for testing")
	cmd.Flags().Uint64Var(&s.seed, "seed", dataset.DefaultSplit.Seed, "seed of the split")
	cmd.Flags().StringArrayVar(&s.whole, "whole", nil, "put a whole data set into one split, e.g. --whole coronacases=test (repeatable)")
}

func (s *splitFlags) config() (dataset.SplitConfig, error) {
	cfg := dataset.SplitConfig{Val: s.val, Test: s.test, Seed: s.seed}
	for _, w := range s.whole {
		name, split, ok := strings.Cut(w, "=")
		if !ok || name == "" {
			return cfg, fmt.Errorf("--whole %q: want DATASET=SPLIT", w)
		}
		sp, err := dataset.ParseSplit(split)
		if err != nil || sp == dataset.Unlabelled {
			return cfg, fmt.Errorf("--whole %q: split must be train, val or test", w)
		}
		if cfg.Whole == nil {
			cfg.Whole = map[string]dataset.Split{}
		}
		cfg.Whole[name] = sp
	}
	return cfg, nil
}

func newDataRICORDCmd() *cobra.Command {
	var dicomDir, ann, out string
	var tib, keepGoing bool
	var labels []string
	var sf splitFlags
	cmd := &cobra.Command{
		Use:   "ricord --dicom DIR --annotations MDAI.json -o OUT",
		Short: "Convert RICORD's DICOM series and MD.ai annotations into NIfTI image/mask pairs and a manifest",
		Long: `Convert RICORD (MIDRC-RICORD-1a) into NIfTI pairs: for every DICOM series under
--dicom with outlines of the lesion labels in the MD.ai export, OUT/images/CASE.nii.gz
(HU) and OUT/masks/CASE.nii.gz (1 = lesion) on the series' own grid, and
OUT/manifest.csv with the study's classification (Typical, Indeterminate,
Atypical, Negative for pneumonia; the readers' majority) and seeded splits by
patient.

Outlines are drawn on the slice of their SOPInstanceUID, x = column and y = row
of that image; a pixel is lesion when its centre is inside an outline by the
even-odd rule; holes of mask-tool outlines are cut out; all readers' outlines
are OR-ed. The lesion label is "Infectious opacity" (COVID-19 infiltrates);
--tib adds "Infectious TIB/micronodules"; --label names labels explicitly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dicomDir == "" || ann == "" || out == "" {
				return fmt.Errorf("data ricord: --dicom, --annotations and -o are required")
			}
			split, err := sf.config()
			if err != nil {
				return err
			}
			if len(labels) == 0 {
				labels = []string{dataset.LabelOpacity}
			}
			if tib {
				labels = append(labels, dataset.LabelTIB)
			}
			var bar *progress.Bar
			res, err := dataset.ConvertRICORD(dataset.RICORDOptions{
				DICOM: dicomDir, Annotations: ann, Out: out, Labels: labels, Split: split, KeepGoing: keepGoing,
				Progress: func(done, total int) {
					if bar == nil {
						bar = progress.New(cmd.ErrOrStderr(), "series", total)
					}
					bar.Add(1)
				},
			})
			bar.Finish()
			if res != nil {
				for _, e := range res.Failed {
					fmt.Fprintln(cmd.ErrOrStderr(), "skipped:", e)
				}
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, s := range res.Series {
				fmt.Fprintf(w, "%s: %d outlines by %d readers on %d slices, %d lesion voxels, %s\n", s.Case, s.Annotations, s.Readers, s.Slices, s.Voxels, orNone(s.StudyLabel))
			}
			fmt.Fprintf(w, "wrote %d pairs and %s", len(res.Series), res.ManifestPath)
			if len(res.Failed) > 0 {
				fmt.Fprintf(w, " (%d series skipped)", len(res.Failed))
			}
			fmt.Fprintln(w)
			pipeline.PrintSplits(w, res.Manifest)
			return nil
		},
	}
	cmd.Flags().StringVar(&dicomDir, "dicom", "", "folder holding the DICOM series (searched recursively)")
	cmd.Flags().StringVar(&ann, "annotations", "", "the MD.ai export (JSON)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "output folder")
	cmd.Flags().BoolVar(&tib, "tib", false, `also draw "Infectious TIB/micronodules" outlines`)
	cmd.Flags().StringArrayVar(&labels, "label", nil, `lesion label name (repeatable; default "Infectious opacity")`)
	cmd.Flags().BoolVar(&keepGoing, "keep-going", false, "skip series that cannot be converted instead of stopping")
	sf.add(cmd)
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "no study label"
	}
	return s
}

func newDataDiscoverCmd() *cobra.Command {
	var cc, mm, out string
	var pairs []string
	var opts dataset.DiscoverOptions
	var sf splitFlags
	cmd := &cobra.Command{
		Use:   "discover [--coronacases DIR] [--mosmed DIR] [--pairs NAME=DIR] -o manifest.csv",
		Short: "List downloaded data sets in a manifest with seeded splits",
		Long: `Find the cases of the public layouts and write one manifest (CSV: image, mask,
split, dataset, case, label, group) with seeded splits, each data set split on
its own, by patient.

  --coronacases DIR  Zenodo 3757476: coronacases_org_NNN.nii.gz with
                     Infection_Mask/coronacases_NNN.nii.gz (radiopaedia_* only
                     with --radiopaedia: they are not in HU)
  --mosmed DIR       MosMedData: studies/CT-k/study_NNNN.nii.gz with
                     masks/study_NNNN_mask.nii.gz (studies without a mask only
                     with --unlabelled, as split "unlabelled")
  --pairs NAME=DIR   images/*.nii.gz with masks/*.nii.gz, e.g. the output of
                     covseg data ricord: --pairs ricord=DIR`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("data discover: -o is required")
			}
			split, err := sf.config()
			if err != nil {
				return err
			}
			var parts []*dataset.Manifest
			if cc != "" {
				m, err := dataset.DiscoverCoronacases(cc, opts)
				if err != nil {
					return err
				}
				parts = append(parts, m)
			}
			if mm != "" {
				m, err := dataset.DiscoverMosMed(mm, opts)
				if err != nil {
					return err
				}
				parts = append(parts, m)
			}
			for _, p := range pairs {
				name, dir, ok := strings.Cut(p, "=")
				if !ok || name == "" || dir == "" {
					return fmt.Errorf("--pairs %q: want NAME=DIR", p)
				}
				m, err := dataset.DiscoverPairs(dir, name)
				if err != nil {
					return err
				}
				parts = append(parts, m)
			}
			if len(parts) == 0 {
				return fmt.Errorf("data discover: name at least one data set (--coronacases, --mosmed, --pairs)")
			}
			all, err := dataset.Merge(parts...)
			if err != nil {
				return err
			}
			if err := dataset.AssignSplits(all.Entries, split); err != nil {
				return err
			}
			if err := dataset.WriteManifest(out, all); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d cases\n", out, len(all.Entries))
			pipeline.PrintSplits(cmd.OutOrStdout(), all)
			return nil
		},
	}
	cmd.Flags().StringVar(&cc, "coronacases", "", "folder of the Coronacases collection")
	cmd.Flags().StringVar(&mm, "mosmed", "", "folder of MosMedData (COVID19_1110)")
	cmd.Flags().StringArrayVar(&pairs, "pairs", nil, "NAME=DIR: a folder of images/ and masks/ NIfTI pairs (repeatable)")
	cmd.Flags().BoolVar(&opts.Radiopaedia, "radiopaedia", false, "include Coronacases' radiopaedia_* volumes (not HU; the paper left them out)")
	cmd.Flags().BoolVar(&opts.Unlabelled, "unlabelled", false, "include MosMedData studies without a mask (split unlabelled)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "manifest to write")
	sf.add(cmd)
	return cmd
}

func newDataSynthCmd() *cobra.Command {
	var out, dims, spacing string
	var nCC, nMM, nMMUnlab, nRI int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "synth -o DIR",
		Short: "Write synthetic phantom stand-ins of the Coronacases, MosMedData and RICORD layouts",
		Long: `Write SYNTHETIC chest CT phantoms (not patient data) in the layouts of the public
data sets, for trying covseg without downloads: DIR/coronacases, DIR/mosmed and
DIR/ricord (DICOM series and an MD.ai export; convert them with covseg data
ricord). Each phantom has two lungs near -850 HU with vessels, ribs, spine,
heart, and ground-glass and consolidation lesions of random shapes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("data synth: -o is required")
			}
			cfg := phantom.DefaultConfig()
			var err error
			if cfg.Dims, err = parseDims(dims); err != nil {
				return err
			}
			if cfg.Spacing, err = parseSpacing(spacing); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if nCC > 0 {
				if _, err := phantom.WriteCoronacases(filepath.Join(out, "coronacases"), nCC, cfg, seed); err != nil {
					return err
				}
				fmt.Fprintf(w, "wrote %d Coronacases-style phantoms to %s\n", nCC, filepath.Join(out, "coronacases"))
			}
			if nMM+nMMUnlab > 0 {
				if _, err := phantom.WriteMosMed(filepath.Join(out, "mosmed"), nMM, nMMUnlab, cfg, seed); err != nil {
					return err
				}
				fmt.Fprintf(w, "wrote %d MosMedData-style phantoms (%d without masks) to %s\n", nMM+nMMUnlab, nMMUnlab, filepath.Join(out, "mosmed"))
			}
			if nRI > 0 {
				si, err := phantom.WriteRICORD(filepath.Join(out, "ricord"), nRI, cfg, seed)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "wrote %d RICORD-style DICOM studies to %s and their MD.ai export %s\n", nRI, si.DICOM, si.Annotations)
			}
			fmt.Fprintln(w, "these volumes are synthetic phantoms, not patient data")
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output folder")
	cmd.Flags().IntVar(&nCC, "coronacases", 4, "Coronacases-style phantoms")
	cmd.Flags().IntVar(&nMM, "mosmed", 4, "MosMedData-style phantoms with masks")
	cmd.Flags().IntVar(&nMMUnlab, "mosmed-unlabelled", 1, "MosMedData-style phantoms without masks")
	cmd.Flags().IntVar(&nRI, "ricord", 4, "RICORD-style DICOM studies")
	cmd.Flags().StringVar(&dims, "dims", "96x96x40", "phantom voxels along i, j, k (columns x rows x slices)")
	cmd.Flags().StringVar(&spacing, "spacing", "3.5x3.5x8", "voxel size in mm along i, j, k")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the phantoms")
	return cmd
}

// parseTriple parses "AxBxC".
func parseTriple(s, what string) ([3]float64, error) {
	var out [3]float64
	parts := strings.Split(strings.ToLower(s), "x")
	if len(parts) != 3 {
		return out, fmt.Errorf("%s %q: want three numbers like 96x96x40", what, s)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return out, fmt.Errorf("%s %q: %v", what, s, err)
		}
		out[i] = v
	}
	return out, nil
}

func parseDims(s string) (volume.Dims, error) {
	t, err := parseTriple(s, "dims")
	if err != nil {
		return volume.Dims{}, err
	}
	var d volume.Dims
	for i, v := range t {
		if v != float64(int(v)) || v < 1 || v > 4096 {
			return d, fmt.Errorf("dims %q: want whole numbers from 1 to 4096", s)
		}
		d[i] = int(v)
	}
	return d, nil
}

func parseSpacing(s string) ([3]float64, error) {
	return parseTriple(s, "spacing")
}
