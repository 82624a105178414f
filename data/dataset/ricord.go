package dataset

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/covseg/covseg/data/mdai"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomseries"
	"github.com/covseg/covseg/volume/nifti"
)

// RICORD's lesion labels in its MD.ai project.
const (
	// LabelOpacity marks COVID-19 infiltrates (ground glass, consolidation):
	// the paper's segmentation target and ConvertRICORD's default.
	LabelOpacity = "Infectious opacity"
	// LabelTIB marks tree-in-bud opacities and micronodules.
	LabelTIB = "Infectious TIB/micronodules"
)

// DefaultStudyLabels are the beginnings of the names of RICORD's
// study-level classification labels (RSNA's COVID-19 reporting
// categories), matched case-insensitively: "Typical Appearance",
// "Indeterminate Appearance", "Atypical Appearance", "Negative for
// Pneumonia".
var DefaultStudyLabels = []string{"Typical", "Indeterminate", "Atypical", "Negative for pneumonia"}

// RICORDOptions control ConvertRICORD.
type RICORDOptions struct {
	DICOM       string // folder holding the DICOM series (searched recursively)
	Annotations string // the MD.ai export (JSON)
	Out         string // output folder: images/, masks/ and manifest.csv
	// Labels are the names of the lesion labels whose outlines make the
	// mask (case-insensitive); empty means LabelOpacity.
	Labels []string
	// StudyLabels are name prefixes of the study-scope labels that go into
	// the manifest's label column; empty means DefaultStudyLabels.
	StudyLabels []string
	// Split assigns the splits of the manifest (by patient).
	Split SplitConfig
	// KeepGoing converts what it can: a series that fails is reported in
	// RICORDResult.Failed instead of stopping the conversion.
	KeepGoing bool
	// Progress, when set, is called after each series.
	Progress func(done, total int)
}

// RICORDSeries reports one converted series.
type RICORDSeries struct {
	Case        string
	PatientID   string
	StudyUID    string
	SeriesUID   string
	Annotations int // outlines drawn into the mask
	Readers     int // distinct annotators of those outlines
	Slices      int // slices with at least one outline
	Voxels      int // lesion voxels of the mask
	StudyLabel  string
}

// RICORDResult is what ConvertRICORD did.
type RICORDResult struct {
	Manifest     *Manifest
	ManifestPath string
	Series       []RICORDSeries
	// Failed holds one error per series that could not be converted (only
	// with KeepGoing).
	Failed []error
}

// ConvertRICORD turns RICORD's DICOM series and its MD.ai export into
// NIfTI pairs: for every series with at least one outline of the chosen
// lesion labels, Out/images/CASE.nii.gz (HU) and Out/masks/CASE.nii.gz (1 =
// lesion) on the series' own grid (same dims and affine), and a manifest
// Out/manifest.csv (data set "ricord", the study's classification in the
// label column, the patient as the split group).
//
// Each outline lands on the slice of its SOPInstanceUID, found through the
// series reader (dicomseries), in that instance's pixels: vertex (x, y) is
// column x, row y, and voxel (i, j, k) is column i, row j of slice k.
// Polygons are filled by the even-odd rule at pixel centres (see
// mdai.Bitmap.FillPolygon), the background polygons of mask-tool outlines
// cut holes into their own outline, and all outlines of all readers are
// OR-ed. The classification is the readers' majority; a tie lists the tied
// names joined by "|".
func ConvertRICORD(opts RICORDOptions) (*RICORDResult, error) {
	exp, err := mdai.ReadFile(opts.Annotations)
	if err != nil {
		return nil, err
	}
	lesion, err := lesionLabels(exp, opts.Labels, opts.Annotations)
	if err != nil {
		return nil, err
	}
	studyLab := studyLabels(exp, opts.StudyLabels)
	bySeries := map[string][]*mdai.Annotation{}
	for _, a := range exp.Annotations() {
		if !lesion[a.LabelID] || !a.HasData() {
			continue
		}
		if a.SeriesInstanceUID == "" || a.SOPInstanceUID == "" {
			return nil, fmt.Errorf("dataset: %s: annotation %s has an outline but no SeriesInstanceUID or SOPInstanceUID", opts.Annotations, a.ID)
		}
		bySeries[a.SeriesInstanceUID] = append(bySeries[a.SeriesInstanceUID], a)
	}
	if len(bySeries) == 0 {
		return nil, fmt.Errorf("dataset: %s: no outlines of %s", opts.Annotations, strings.Join(labelNames(opts.Labels), ", "))
	}
	folder, err := dicomseries.ScanFolder(opts.DICOM, 0)
	if err != nil {
		return nil, err
	}
	infos := map[string]*dicomseries.SeriesInfo{}
	for i := range folder.Series {
		infos[folder.Series[i].UID] = &folder.Series[i]
	}
	uids := make([]string, 0, len(bySeries))
	for u := range bySeries {
		uids = append(uids, u)
	}
	sort.Strings(uids)
	for _, d := range []string{"images", "masks"} {
		if err := os.MkdirAll(filepath.Join(opts.Out, d), 0o755); err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
	}
	res := &RICORDResult{Manifest: &Manifest{}}
	names := caseNames(uids, infos)
	sort.SliceStable(uids, func(a, b int) bool { return names[uids[a]] < names[uids[b]] })
	for n, uid := range uids {
		s, err := convertSeries(folder, infos[uid], uid, bySeries[uid], names[uid], opts)
		if err == nil {
			s.StudyLabel = studyLab[s.StudyUID]
			res.Series = append(res.Series, *s)
			group := s.PatientID
			if group == "" {
				group = s.StudyUID
			}
			res.Manifest.Entries = append(res.Manifest.Entries, Entry{
				Image: filepath.Join(opts.Out, "images", s.Case+".nii.gz"), Mask: filepath.Join(opts.Out, "masks", s.Case+".nii.gz"),
				Dataset: RICORD, Case: s.Case, Label: s.StudyLabel, Group: group,
			})
		} else if opts.KeepGoing {
			res.Failed = append(res.Failed, err)
		} else {
			return nil, err
		}
		if opts.Progress != nil {
			opts.Progress(n+1, len(uids))
		}
	}
	if len(res.Manifest.Entries) == 0 {
		return res, fmt.Errorf("dataset: no series converted (first failure: %w)", errors.Join(res.Failed...))
	}
	if err := AssignSplits(res.Manifest.Entries, opts.Split); err != nil {
		return nil, err
	}
	res.ManifestPath = filepath.Join(opts.Out, "manifest.csv")
	if err := WriteManifest(res.ManifestPath, res.Manifest); err != nil {
		return nil, err
	}
	return res, nil
}

func labelNames(l []string) []string {
	if len(l) == 0 {
		return []string{LabelOpacity}
	}
	return l
}

// lesionLabels returns the ids of the labels named in names.
func lesionLabels(exp *mdai.Export, names []string, file string) (map[string]bool, error) {
	found, missing := exp.FindLabels(labelNames(names)...)
	if len(missing) > 0 {
		var have []string
		for _, l := range exp.Labels() {
			have = append(have, fmt.Sprintf("%q (%s)", l.Name, l.Scope))
		}
		sort.Strings(have)
		return nil, fmt.Errorf("dataset: %s: no label named %q; the export has %s", file, missing[0], strings.Join(have, ", "))
	}
	ids := map[string]bool{}
	for _, l := range found {
		ids[l.ID] = true
	}
	return ids, nil
}

// studyLabels returns each study's classification: the most frequent
// matching study-scope label, ties joined by "|".
func studyLabels(exp *mdai.Export, prefixes []string) map[string]string {
	if len(prefixes) == 0 {
		prefixes = DefaultStudyLabels
	}
	labels := exp.Labels()
	votes := map[string]map[string]int{}
	for _, a := range exp.Annotations() {
		l := labels[a.LabelID]
		if l.Scope != mdai.ScopeStudy || a.StudyInstanceUID == "" {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(l.Name)), strings.ToLower(p)) {
				if votes[a.StudyInstanceUID] == nil {
					votes[a.StudyInstanceUID] = map[string]int{}
				}
				votes[a.StudyInstanceUID][strings.TrimSpace(l.Name)]++
				break
			}
		}
	}
	out := map[string]string{}
	for study, v := range votes {
		best := 0
		for _, n := range v {
			best = max(best, n)
		}
		var top []string
		for name, n := range v {
			if n == best {
				top = append(top, name)
			}
		}
		sort.Strings(top)
		out[study] = strings.Join(top, "|")
	}
	return out
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// caseNames names each series after its patient, with the series number
// when a patient has several annotated series; names stay unique.
func caseNames(uids []string, infos map[string]*dicomseries.SeriesInfo) map[string]string {
	perPatient := map[string]int{}
	patient := func(uid string) string {
		if s := infos[uid]; s != nil && s.PatientID != "" {
			return unsafeName.ReplaceAllString(s.PatientID, "_")
		}
		if s := infos[uid]; s != nil && s.StudyUID != "" {
			return "study_" + s.StudyUID
		}
		return "series_" + uid
	}
	for _, u := range uids {
		perPatient[patient(u)]++
	}
	out, used := map[string]string{}, map[string]bool{}
	for _, u := range uids {
		name := patient(u)
		if perPatient[name] > 1 {
			num := ""
			if s := infos[u]; s != nil {
				num = unsafeName.ReplaceAllString(s.Number, "_")
			}
			if num == "" {
				num = u
			}
			name += "_s" + num
		}
		for base, n := name, 2; used[name]; n++ {
			name = fmt.Sprintf("%s_%d", base, n)
		}
		used[name] = true
		out[u] = name
	}
	return out
}

// convertSeries reads one series, draws its outlines and writes the pair.
func convertSeries(f *dicomseries.Folder, info *dicomseries.SeriesInfo, uid string, anns []*mdai.Annotation, name string, opts RICORDOptions) (*RICORDSeries, error) {
	if info == nil {
		return nil, fmt.Errorf("dataset: series %s (study %s, %d outlines) is not under %s", uid, anns[0].StudyInstanceUID, len(anns), opts.DICOM)
	}
	v, read, err := f.Read(dicomseries.Options{SeriesUID: uid})
	if err != nil {
		return nil, err
	}
	mask, err := volume.NewLabel(v.Dims, v.Affine)
	if err != nil {
		return nil, fmt.Errorf("dataset: series %s: %w", uid, err)
	}
	cols, rows := v.Dims[0], v.Dims[1]
	slice := make(map[string]int, len(read.SOPInstanceUIDs))
	for k, sop := range read.SOPInstanceUIDs {
		slice[sop] = k
	}
	s := &RICORDSeries{Case: name, PatientID: read.PatientID, StudyUID: read.StudyUID, SeriesUID: uid, Annotations: len(anns)}
	if s.StudyUID == "" {
		s.StudyUID = anns[0].StudyInstanceUID
	}
	readers, slices := map[string]bool{}, map[int]bool{}
	for _, a := range anns {
		k, ok := slice[a.SOPInstanceUID]
		if !ok {
			return nil, fmt.Errorf("dataset: series %s: annotation %s outlines instance %s, which is not in the series", uid, a.ID, a.SOPInstanceUID)
		}
		if r, c, ok := a.Size(); ok && (r != rows || c != cols) {
			return nil, fmt.Errorf("dataset: series %s: annotation %s was drawn on a %dx%d (rows x columns) image, but instance %s has %dx%d", uid, a.ID, r, c, a.SOPInstanceUID, rows, cols)
		}
		shape, err := a.Shape()
		if err != nil {
			return nil, fmt.Errorf("dataset: series %s: annotation %s: %w", uid, a.ID, err)
		}
		b, err := shape.Rasterize(rows, cols)
		if err != nil {
			return nil, fmt.Errorf("dataset: series %s: annotation %s: %w", uid, a.ID, err)
		}
		// Bitmap pixel (c, r) is Pix[r*cols+c], the same layout as voxel
		// (i = c, j = r) of plane k.
		plane := mask.Data[k*cols*rows : (k+1)*cols*rows]
		for p, x := range b.Pix {
			plane[p] |= x
		}
		readers[a.CreatedByID] = true
		slices[k] = true
	}
	for _, x := range mask.Data {
		s.Voxels += int(x)
	}
	s.Readers, s.Slices = len(readers), len(slices)
	img := filepath.Join(opts.Out, "images", name+".nii.gz")
	if err := nifti.WriteVolume(img, v, nifti.WriteOptions{Datatype: storedType(v)}); err != nil {
		return nil, err
	}
	if err := nifti.WriteLabel(filepath.Join(opts.Out, "masks", name+".nii.gz"), mask); err != nil {
		return nil, err
	}
	return s, nil
}

// storedType is int16 when every voxel is an integer HU value in its
// range (CT with slope 1), float32 otherwise.
func storedType(v *volume.Volume) nifti.Datatype {
	for _, x := range v.Data {
		if x != float32(math.Trunc(float64(x))) || x < -32768 || x > 32767 {
			return nifti.Float32
		}
	}
	return nifti.Int16
}
