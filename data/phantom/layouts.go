package phantom

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/covseg/covseg/data/mdai"
	"github.com/covseg/covseg/internal/atomicfile"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// Case is one phantom written as a file pair.
type Case struct {
	Name  string // case name as the layout's discovery derives it
	Image string // path of the image
	Mask  string // path of the lesion mask ("" for an unlabelled study)
}

// caseSeed gives each case of each layout its own phantom.
func caseSeed(seed uint64, layout string, i int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", seed, layout, i)
	return h.Sum64()
}

// asInt16 rounds a HU volume to the int16 values scanners store.
func asInt16(v *volume.Volume) *volume.Volume {
	c := v.Clone()
	for i, x := range c.Data {
		c.Data[i] = float32(math.Max(-32768, math.Min(32767, math.Round(float64(x)))))
	}
	return c
}

func writePair(img, mask string, ph *Phantom) error {
	for _, p := range []string{img, mask} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("phantom: %w", err)
		}
	}
	if err := nifti.WriteVolume(img, asInt16(ph.Image), nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		return err
	}
	if mask == "" {
		return nil
	}
	return nifti.WriteLabel(mask, ph.Lesions)
}

// WriteCoronacases writes n phantoms under dir in the layout of the
// Coronacases collection (Zenodo 3757476): COVID-19-CT-Seg_20cases/
// coronacases_org_NNN.nii.gz (int16 HU), Infection_Mask/coronacases_NNN
// .nii.gz (the lesions) and Lung_Mask/coronacases_NNN.nii.gz (RightLung,
// LeftLung), plus one radiopaedia_org_covid-19-pneumonia-…-dcm volume in
// 0..255 grey values (not HU), the kind discovery leaves out by default.
func WriteCoronacases(dir string, n int, cfg Config, seed uint64) ([]Case, error) {
	var out []Case
	for i := range n {
		ph, err := Generate(cfg, caseSeed(seed, "coronacases", i))
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("coronacases_%03d", i+1)
		c := Case{
			Name:  name,
			Image: filepath.Join(dir, "COVID-19-CT-Seg_20cases", fmt.Sprintf("coronacases_org_%03d.nii.gz", i+1)),
			Mask:  filepath.Join(dir, "Infection_Mask", name+".nii.gz"),
		}
		if err := writePair(c.Image, c.Mask, ph); err != nil {
			return nil, err
		}
		lung := filepath.Join(dir, "Lung_Mask", name+".nii.gz")
		if err := os.MkdirAll(filepath.Dir(lung), 0o755); err != nil {
			return nil, fmt.Errorf("phantom: %w", err)
		}
		if err := nifti.WriteLabel(lung, ph.Lungs); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	// A radiopaedia volume: grey values, the paper left these out.
	ph, err := Generate(cfg, caseSeed(seed, "radiopaedia", 0))
	if err != nil {
		return nil, err
	}
	grey := ph.Image.Clone()
	for i, x := range grey.Data {
		grey.Data[i] = float32(math.Round(math.Max(0, math.Min(255, (float64(x)+1024)/1624*255))))
	}
	ph.Image = grey
	img := filepath.Join(dir, "COVID-19-CT-Seg_20cases", "radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm.nii.gz")
	if err := writePair(img, filepath.Join(dir, "Infection_Mask", "radiopaedia_4_85506_1.nii.gz"), ph); err != nil {
		return nil, err
	}
	return out, nil
}

// WriteMosMed writes phantoms under dir in the layout of MosMedData
// (COVID19_1110): labelled studies studies/CT-1/study_NNNN.nii.gz from
// study_0255 on with masks/study_NNNN_mask.nii.gz, and unlabelled studies
// without lesions in studies/CT-0 from study_0001 on, without masks, as in
// the real collection.
func WriteMosMed(dir string, labelled, unlabelled int, cfg Config, seed uint64) ([]Case, error) {
	var out []Case
	for i := range labelled + unlabelled {
		c := cfg
		num, class := 255+i, "CT-1"
		if i >= labelled {
			num, class = 1+i-labelled, "CT-0"
			c.MinLesions, c.MaxLesions = 0, 0
		}
		ph, err := Generate(c, caseSeed(seed, "mosmed", i))
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("study_%04d", num)
		cs := Case{Name: name, Image: filepath.Join(dir, "studies", class, name+".nii.gz")}
		if i < labelled {
			cs.Mask = filepath.Join(dir, "masks", name+"_mask.nii.gz")
		}
		if err := writePair(cs.Image, cs.Mask, ph); err != nil {
			return nil, err
		}
		out = append(out, cs)
	}
	return out, nil
}

// RICORD stand-in label names (those of RICORD's MD.ai project).
const (
	LabelOpacity       = "Infectious opacity"
	LabelTIB           = "Infectious TIB/micronodules"
	LabelTypical       = "Typical Appearance"
	LabelIndeterminate = "Indeterminate Appearance"
	LabelAtypical      = "Atypical Appearance"
	LabelNegative      = "Negative for Pneumonia"
)

// RICORDCase is one study of a RICORD stand-in.
type RICORDCase struct {
	Patient    string // the patient's folder under RICORDStandIn.DICOM
	StudyUID   string
	SeriesUID  string // the annotated series
	StudyLabel string // the readers' majority classification
	// Lesions is the truth of LabelOpacity on the series' own grid (what
	// the DICOM series reads as); TIB that of LabelTIB.
	Lesions *volume.Label
	TIB     *volume.Label
}

// RICORDStandIn is what WriteRICORD wrote.
type RICORDStandIn struct {
	DICOM       string // folder of all DICOM series
	Annotations string // the MD.ai export
	Cases       []RICORDCase
}

// WriteRICORD writes n phantoms under dir as a stand-in for RICORD 1a: a
// DICOM series per study in dicom/PATIENT/study/series-N/ and the MD.ai
// export annotations.json. Every lesion slice is outlined in the slice's
// own pixels (x = column, y = row), along pixel edges, so that filling the
// outlines by mdai's rule gives the lesion mask back exactly; regions with
// holes use the mask tool (foreground/background). Each slice's lesions are
// split between two readers by column (only their union is the lesion)
// and a third reader redraws its first region; one small
// LabelTIB polygon per study lies outside the lesions; two or three
// readers classify each study (null data). The first study's files are
// numbered from the top slice down; the second study (when n > 1) has a
// second, unannotated series.
func WriteRICORD(dir string, n int, cfg Config, seed uint64) (*RICORDStandIn, error) {
	out := &RICORDStandIn{DICOM: filepath.Join(dir, "dicom"), Annotations: filepath.Join(dir, "annotations.json")}
	b := newExportBuilder()
	classes := []string{LabelTypical, LabelIndeterminate, LabelAtypical}
	for i := range n {
		ph, err := Generate(cfg, caseSeed(seed, "ricord", i))
		if err != nil {
			return nil, err
		}
		c := RICORDCase{
			Patient:   fmt.Sprintf("MIDRC-RICORD-1A-SYNTH-%03d", i+1),
			StudyUID:  UID("ricord", strconv.FormatUint(seed, 10), strconv.Itoa(i), "study"),
			SeriesUID: UID("ricord", strconv.FormatUint(seed, 10), strconv.Itoa(i), "series"),
			Lesions:   ph.Lesions,
		}
		meta := SeriesMeta{PatientID: c.Patient, StudyUID: c.StudyUID, SeriesUID: c.SeriesUID, SeriesNumber: 2, Description: "CT CHEST", ReverseFiles: i == 0}
		sdir := filepath.Join(out.DICOM, c.Patient, "study", "series-2")
		sops, err := WriteDICOM(sdir, ph.Image, meta)
		if err != nil {
			return nil, err
		}
		if i == 1 {
			extra := meta
			extra.SeriesUID, extra.SeriesNumber, extra.Description = UID(c.SeriesUID, "extra"), 3, "CT CHEST SOFT TISSUE"
			if _, err := WriteDICOM(filepath.Join(out.DICOM, c.Patient, "study", "series-3"), ph.Image, extra); err != nil {
				return nil, err
			}
		}
		b.outlineLesions(c, sops, ph.Lesions)
		if c.TIB, err = b.tibPolygon(c, sops, ph); err != nil {
			return nil, err
		}
		votes := []string{classes[i%3], classes[i%3]}
		if i%2 == 1 {
			votes = append(votes, classes[(i+1)%3]) // a dissenting third reader
		}
		c.StudyLabel = votes[0]
		for r, v := range votes {
			b.add(mdai.Annotation{StudyInstanceUID: c.StudyUID, LabelID: b.labels[v], CreatedByID: reader(r)})
		}
		// An instance annotation without data (an empty row of the export).
		b.add(mdai.Annotation{StudyInstanceUID: c.StudyUID, SeriesInstanceUID: c.SeriesUID, SOPInstanceUID: sops[0], LabelID: b.labels[LabelOpacity], CreatedByID: reader(0)})
		out.Cases = append(out.Cases, c)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("phantom: %w", err)
	}
	err := atomicfile.Write(out.Annotations, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		return enc.Encode(b.export)
	})
	if err != nil {
		return nil, fmt.Errorf("phantom: %w", err)
	}
	return out, nil
}

func reader(r int) string { return fmt.Sprintf("U_reader%d", r+1) }

// exportBuilder assembles an MD.ai export.
type exportBuilder struct {
	export mdai.Export
	labels map[string]string // name → id; the mask-tool twin of the opacity label is maskOpacity
	count  int
}

const maskOpacity = LabelOpacity + " (mask tool)"

func newExportBuilder() *exportBuilder {
	b := &exportBuilder{labels: map[string]string{}}
	add := func(g *mdai.LabelGroup, key, name, scope, mode string) {
		id := fmt.Sprintf("L_%d", len(b.labels)+1)
		b.labels[key] = id
		g.Labels = append(g.Labels, mdai.Label{ID: id, Name: name, Scope: scope, AnnotationMode: mode})
	}
	g1 := mdai.LabelGroup{ID: "G_1", Name: "Default group"}
	add(&g1, LabelOpacity, LabelOpacity, mdai.ScopeInstance, "freeform")
	add(&g1, LabelTIB, LabelTIB, mdai.ScopeInstance, "freeform")
	for _, n := range []string{LabelTypical, LabelIndeterminate, LabelAtypical, LabelNegative} {
		add(&g1, n, n, mdai.ScopeStudy, "")
	}
	g2 := mdai.LabelGroup{ID: "G_2", Name: "Mask tool"}
	add(&g2, maskOpacity, LabelOpacity, mdai.ScopeInstance, "mask")
	b.export.LabelGroups = []mdai.LabelGroup{g1, g2}
	b.export.Datasets = []mdai.Dataset{{ID: "D_1", Name: "MIDRC-RICORD-1A (synthetic)"}}
	return b
}

func (b *exportBuilder) add(a mdai.Annotation) {
	b.count++
	a.ID = fmt.Sprintf("A_%d", b.count)
	b.export.Datasets[0].Annotations = append(b.export.Datasets[0].Annotations, a)
}

// addRegion adds one traced region as a freeform (no holes) or mask-tool
// annotation.
func (b *exportBuilder) addRegion(c RICORDCase, sop string, rows, cols int, r Region, who string) {
	var data any = map[string]any{"vertices": r.Outer}
	label := b.labels[LabelOpacity]
	if len(r.Holes) > 0 {
		data = map[string]any{"foreground": []mdai.Polygon{r.Outer}, "background": r.Holes}
		label = b.labels[maskOpacity]
	}
	raw, _ := json.Marshal(data)
	b.add(mdai.Annotation{
		StudyInstanceUID: c.StudyUID, SeriesInstanceUID: c.SeriesUID, SOPInstanceUID: sop,
		LabelID: label, CreatedByID: who, Height: &rows, Width: &cols, Data: raw,
	})
}

// outlineLesions outlines every lesion slice, split between readers.
func (b *exportBuilder) outlineLesions(c RICORDCase, sops []string, les *volume.Label) {
	d := les.Dims
	cols, rows := d[0], d[1]
	for k := range d[2] {
		plane := les.Data[k*cols*rows : (k+1)*cols*rows]
		halves := [2][]uint8{make([]uint8, len(plane)), make([]uint8, len(plane))}
		found := false
		for p, v := range plane {
			if v != 0 {
				halves[min(1, 2*(p%cols)/cols)][p] = 1
				found = true
			}
		}
		if !found {
			continue
		}
		for h, half := range halves {
			for _, r := range Trace(half, cols, rows) {
				b.addRegion(c, sops[k], rows, cols, r, reader(h))
			}
		}
		if regs := Trace(plane, cols, rows); len(regs) > 0 {
			b.addRegion(c, sops[k], rows, cols, regs[0], reader(2))
		}
	}
}

// tibPolygon draws a 2x2-pixel LabelTIB square in a lung, away from the
// lesions, on the middle slice, and returns its truth.
func (b *exportBuilder) tibPolygon(c RICORDCase, sops []string, ph *Phantom) (*volume.Label, error) {
	d := ph.Lungs.Dims
	tib, _ := volume.NewLabel(d, ph.Lungs.Affine)
	for dk := 0; dk < d[2]; dk++ {
		k := (d[2]/2 + dk) % d[2]
		for j := 0; j+1 < d[1]; j++ {
			for i := 0; i+1 < d[0]; i++ {
				ok := true
				for _, q := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
					idx := d.Index(i+q[0], j+q[1], k)
					ok = ok && ph.Lungs.Data[idx] != 0 && ph.Lesions.Data[idx] == 0
				}
				if !ok {
					continue
				}
				x, y := float64(i)-0.5, float64(j)-0.5
				raw, _ := json.Marshal(map[string]any{"vertices": mdai.Polygon{{x, y}, {x + 2, y}, {x + 2, y + 2}, {x, y + 2}}})
				rows, cols := d[1], d[0]
				b.add(mdai.Annotation{
					StudyInstanceUID: c.StudyUID, SeriesInstanceUID: c.SeriesUID, SOPInstanceUID: sops[k],
					LabelID: b.labels[LabelTIB], CreatedByID: reader(0), Height: &rows, Width: &cols, Data: raw,
				})
				for _, q := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
					tib.Data[d.Index(i+q[0], j+q[1], k)] = 1
				}
				return tib, nil
			}
		}
	}
	return nil, fmt.Errorf("phantom: case %s: no room in the lungs for a TIB polygon", c.Patient)
}
