package pipeline

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/covseg/covseg/data/dataset"
	"github.com/covseg/covseg/data/phantom"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// demoCase is one phantom the demo wrote.
type demoCase struct {
	name  string
	split dataset.Split
	image string // int16 HU
	mask  string // lesions (1)
	lungs string // phantom.RightLung, phantom.LeftLung
	// labels is the class label map the manifest gives for training
	// (DemoConfig.LungClass: 1 lesion, 2 the rest of the lungs); empty
	// when the manifest gives mask.
	labels string
	// burdenPct is the percentage of the phantom's lungs that its lesions
	// take up: the truth of the severity report's involvement.
	burdenPct float64
}

// demoDataset is the manifest's data set name for the demo's phantoms.
const demoDataset = "synthetic-phantom"

// demoData is what writeDemoPhantoms wrote.
type demoData struct {
	cases    []demoCase
	manifest string
	// burden is the held-out phantoms' lesion burden.
	burden DemoBurden
	// lesionFraction and lungFraction are the shares of lesion voxels and
	// of the other lung voxels in the training phantoms.
	lesionFraction, lungFraction float64
}

// writeDemoPhantoms makes the train, val and test phantoms and writes them
// to dir as NIfTI (images/, masks/, lungs/, and labels/ for c.LungClass)
// with a manifest that covseg train reads. Each phantom's seed is drawn
// from seed, so the same seed gives the same phantoms.
func writeDemoPhantoms(dir string, c DemoConfig, seed uint64, log io.Writer) (*demoData, error) {
	seeds := demoPhantomSeeds(c, seed)
	var cases []demoCase
	var lesion, lung, total int
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
			if c.LungClass {
				dc.labels = filepath.Join(dir, "labels", name+".nii.gz")
			}
			ph, err := writeDemoPhantom(dc, c.Phantom, seeds[0])
			seeds = seeds[1:]
			if err != nil {
				return nil, err
			}
			dc.burdenPct = lungBurdenPct(ph)
			if part.split == dataset.Train {
				for i, l := range ph.Lesions.Data {
					if l != 0 {
						lesion++
					} else if ph.Lungs.Data[i] != 0 {
						lung++
					}
				}
				total += len(ph.Lesions.Data)
			}
			cases = append(cases, dc)
			mask := dc.mask
			if dc.labels != "" {
				mask = dc.labels
			}
			m.Entries = append(m.Entries, dataset.Entry{
				Image: dc.image, Mask: mask, Split: part.split, Dataset: demoDataset, Case: name, Label: "synthetic",
			})
		}
	}
	manifest := filepath.Join(dir, "manifest.csv")
	if err := dataset.WriteManifest(manifest, &m); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	readme := filepath.Join(dir, "README.txt")
	err := atomicfile.Write(readme, func(w io.Writer) error {
		labels := ""
		if c.LungClass {
			labels = ",\nlabels/ the classes the network trains on (1 lesion, 2 the rest of the lungs)"
		}
		_, err := fmt.Fprintf(w, "%s.\n\nimages/ CT phantoms (int16 HU), masks/ their lesions (1), lungs/ their lungs (1 right, 2 left)%s;\nmanifest.csv lists them with their split (covseg train reads it).\n", syntheticNote, labels)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	p := c.Phantom
	burden := heldOutBurden(cases)
	fmt.Fprintf(log, "wrote %d train, %d val and %d test SYNTHETIC phantoms (%dx%dx%d voxels of %gx%gx%g mm, %d-%d lesions) to %s\n",
		c.Train, c.Val, c.Test, p.Dims[0], p.Dims[1], p.Dims[2], p.Spacing[0], p.Spacing[1], p.Spacing[2], p.MinLesions, p.MaxLesions, dir)
	fmt.Fprintln(log, burden)
	return &demoData{cases: cases, manifest: manifest, burden: burden,
		lesionFraction: float64(lesion) / float64(max(total, 1)), lungFraction: float64(lung) / float64(max(total, 1))}, nil
}

// demoPhantomSeeds draws the seed of every phantom of the demo from its
// seed: the training phantoms', then the validation and the held-out ones'.
func demoPhantomSeeds(c DemoConfig, seed uint64) []uint64 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed_de30))
	seeds := make([]uint64, c.Train+c.Val+c.Test)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	return seeds
}

// writeDemoPhantom generates one phantom and writes its image (rounded to
// int16, as scanners store HU), lesion mask and lung mask.
func writeDemoPhantom(dc demoCase, cfg phantom.Config, seed uint64) (*phantom.Phantom, error) {
	ph, err := phantom.Generate(cfg, seed)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	for _, p := range []string{dc.image, dc.mask, dc.lungs, dc.labels} {
		if p == "" {
			continue
		}
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
	if dc.labels != "" {
		if err := nifti.WriteLabel(dc.labels, lungClassLabels(ph)); err != nil {
			return nil, err
		}
	}
	return ph, nifti.WriteLabel(dc.lungs, ph.Lungs)
}

// Classes of the demo's label maps with DemoConfig.LungClass.
const (
	demoClassLesion = 1
	demoClassLung   = 2
)

// lungClassLabels is a phantom's class label map for DemoConfig.LungClass:
// its lesions, the rest of its lungs, background elsewhere.
func lungClassLabels(ph *phantom.Phantom) *volume.Label {
	l := ph.Lesions.Clone()
	for i := range l.Data {
		switch {
		case ph.Lesions.Data[i] != 0:
			l.Data[i] = demoClassLesion
		case ph.Lungs.Data[i] != 0:
			l.Data[i] = demoClassLung
		default:
			l.Data[i] = 0
		}
	}
	return l
}

// lungBurdenPct is the percentage of the phantom's lung voxels that are
// lesion: how much of the lungs is involved, as MosMedData's CT-0..4
// categories grade it (CT-1 is under 25 %). Lesions lie inside the lungs,
// which include them.
func lungBurdenPct(ph *phantom.Phantom) float64 {
	var lesion, lung int
	for i, l := range ph.Lungs.Data {
		if l == 0 {
			continue
		}
		lung++
		if ph.Lesions.Data[i] != 0 {
			lesion++
		}
	}
	if lung == 0 {
		return 0
	}
	return 100 * float64(lesion) / float64(lung)
}

// DemoBurden is the lesion burden of the held-out phantoms: the
// percentage of each one's lungs that its lesions take up, and their mean,
// minimum and maximum.
type DemoBurden struct {
	Cases   []DemoCaseBurden `json:"cases"`
	MeanPct float64          `json:"mean_pct"`
	MinPct  float64          `json:"min_pct"`
	MaxPct  float64          `json:"max_pct"`
}

// DemoCaseBurden is one held-out phantom's lesion burden.
type DemoCaseBurden struct {
	Case string  `json:"case"`
	Pct  float64 `json:"lung_involved_pct"`
}

// heldOutBurden summarises the burden of the test split's phantoms.
func heldOutBurden(cases []demoCase) DemoBurden {
	var b DemoBurden
	var sum float64
	for _, c := range cases {
		if c.split != dataset.Test {
			continue
		}
		if len(b.Cases) == 0 {
			b.MinPct, b.MaxPct = c.burdenPct, c.burdenPct
		}
		b.Cases = append(b.Cases, DemoCaseBurden{Case: c.name, Pct: c.burdenPct})
		sum += c.burdenPct
		b.MinPct, b.MaxPct = min(b.MinPct, c.burdenPct), max(b.MaxPct, c.burdenPct)
	}
	if len(b.Cases) > 0 {
		b.MeanPct = sum / float64(len(b.Cases))
	}
	return b
}

// String is the burden for the demo's log and summary.
func (b DemoBurden) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "lesion burden of the %d held-out phantoms (%% of the lungs involved): mean %.1f, min %.1f, max %.1f;", len(b.Cases), b.MeanPct, b.MinPct, b.MaxPct)
	for _, c := range b.Cases {
		fmt.Fprintf(&s, " %.1f", c.Pct)
	}
	return s.String()
}
