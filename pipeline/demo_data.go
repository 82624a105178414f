package pipeline

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume/nifti"
)

// demoCase is one phantom the demo wrote.
type demoCase struct {
	name  string
	split dataset.Split
	image string // int16 HU
	mask  string // lesions (1)
	lungs string // phantom.RightLung, phantom.LeftLung
}

// demoDataset is the manifest's data set name for the demo's phantoms.
const demoDataset = "synthetic-phantom"

// demoData is what writeDemoPhantoms wrote.
type demoData struct {
	cases    []demoCase
	manifest string
	// lesionFraction is the share of lesion voxels in the training
	// phantoms.
	lesionFraction float64
}

// writeDemoPhantoms makes the train, val and test phantoms and writes them
// to dir as NIfTI (images/, masks/, lungs/) with a manifest that covseg
// train reads. Each phantom's seed is drawn from seed, so the same seed
// gives the same phantoms.
func writeDemoPhantoms(dir string, c DemoConfig, seed uint64, log io.Writer) (*demoData, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed_de30))
	var cases []demoCase
	var lesion, total int
	var m dataset.Manifest
	for _, part := range []struct {
		split dataset.Split
		n     int
	}{{dataset.Train, c.Train}, {dataset.Val, c.Val}, {dataset.Test, c.Test}} {
		for i := range part.n {
			name := fmt.Sprintf("phantom_%s_%02d", part.split, i+1)
			dc := demoCase{
				name: name, split: part.split,
				image: filepath.Join(dir, "images", name+".nii.gz"),
				mask:  filepath.Join(dir, "masks", name+".nii.gz"),
				lungs: filepath.Join(dir, "lungs", name+".nii.gz"),
			}
			ph, err := writeDemoPhantom(dc, c.Phantom, rng.Uint64())
			if err != nil {
				return nil, err
			}
			if part.split == dataset.Train {
				for _, l := range ph.Lesions.Data {
					lesion += int(l)
				}
				total += len(ph.Lesions.Data)
			}
			cases = append(cases, dc)
			m.Entries = append(m.Entries, dataset.Entry{
				Image: dc.image, Mask: dc.mask, Split: part.split, Dataset: demoDataset, Case: name, Label: "synthetic",
			})
		}
	}
	manifest := filepath.Join(dir, "manifest.csv")
	if err := dataset.WriteManifest(manifest, &m); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	readme := filepath.Join(dir, "README.txt")
	err := atomicfile.Write(readme, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s.\n\nimages/ CT phantoms (int16 HU), masks/ their lesions (1), lungs/ their lungs (1 right, 2 left);\nmanifest.csv lists them with their split (covseg train reads it).\n", syntheticNote)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	p := c.Phantom
	fmt.Fprintf(log, "wrote %d train, %d val and %d test SYNTHETIC phantoms (%dx%dx%d voxels of %gx%gx%g mm, %d-%d lesions) to %s\n",
		c.Train, c.Val, c.Test, p.Dims[0], p.Dims[1], p.Dims[2], p.Spacing[0], p.Spacing[1], p.Spacing[2], p.MinLesions, p.MaxLesions, dir)
	return &demoData{cases: cases, manifest: manifest, lesionFraction: float64(lesion) / float64(max(total, 1))}, nil
}

// writeDemoPhantom generates one phantom and writes its image (rounded to
// int16, as scanners store HU), lesion mask and lung mask.
func writeDemoPhantom(dc demoCase, cfg phantom.Config, seed uint64) (*phantom.Phantom, error) {
	ph, err := phantom.Generate(cfg, seed)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for _, p := range []string{dc.image, dc.mask, dc.lungs} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	img := ph.Image.Clone()
	for i, x := range img.Data {
		img.Data[i] = float32(math.Max(-32768, math.Min(32767, math.Round(float64(x)))))
	}
	if err := nifti.WriteVolume(dc.image, img, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		return nil, err
	}
	if err := nifti.WriteLabel(dc.mask, ph.Lesions); err != nil {
		return nil, err
	}
	return ph, nifti.WriteLabel(dc.lungs, ph.Lungs)
}
