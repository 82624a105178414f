package dataset

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/covseg/covseg/volume/nifti"
)

// Names of the data sets discovery fills in the dataset column.
const (
	Coronacases = "coronacases"
	MosMed      = "mosmed"
	RICORD      = "ricord"
)

// DiscoverOptions control the discovery of a public layout.
type DiscoverOptions struct {
	// Radiopaedia also lists the ten radiopaedia_* volumes of the
	// Coronacases collection. They are left out by default, as the paper
	// did: they are not in Hounsfield units (0..255 grey values).
	Radiopaedia bool
	// Unlabelled also lists MosMedData studies without a mask (split
	// Unlabelled: for inference, not training).
	Unlabelled bool
}

var (
	coronaImage = regexp.MustCompile(`^coronacases_org_(\d+)(\.nii(?:\.gz)?)$`)
	radioImage  = regexp.MustCompile(`^radiopaedia_org_covid-19-pneumonia-(.+)-dcm(\.nii(?:\.gz)?)$`)
	mosmedImage = regexp.MustCompile(`^study_(\d+)(\.nii(?:\.gz)?)$`)
	mosmedMask  = regexp.MustCompile(`^study_(\d+)_mask(\.nii(?:\.gz)?)$`)
	mosmedClass = regexp.MustCompile(`^CT-[0-4]$`)
)

// walkFiles returns the regular files (and links to files) under dir, in
// lexical order.
func walkFiles(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("dataset: %s is not a folder", dir)
	}
	var out []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		} else if d.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	return out, nil
}

// DiscoverCoronacases lists the Coronacases collection (Zenodo record
// 3757476, "COVID-19 CT Lung and Infection Segmentation Dataset") found
// anywhere under dir: images coronacases_org_NNN.nii[.gz] and their masks
// Infection_Mask/coronacases_NNN.nii[.gz] (the Lung_Mask and
// Lung_and_Infection_Mask folders are ignored). With opts.Radiopaedia the
// radiopaedia_org_covid-19-pneumonia-X-dcm volumes come too, with masks
// Infection_Mask/radiopaedia_X. An image without its mask is an error
// naming both. Splits are left empty; use AssignSplits.
func DiscoverCoronacases(dir string, opts DiscoverOptions) (*Manifest, error) {
	files, err := walkFiles(dir)
	if err != nil {
		return nil, err
	}
	masks := map[string]string{} // base name → path
	for _, p := range files {
		if strings.EqualFold(filepath.Base(filepath.Dir(p)), "Infection_Mask") {
			masks[filepath.Base(p)] = p
		}
	}
	m := &Manifest{}
	for _, p := range files {
		if strings.EqualFold(filepath.Base(filepath.Dir(p)), "Infection_Mask") {
			continue
		}
		base := filepath.Base(p)
		var want []string // mask names to look for
		var name string
		if g := coronaImage.FindStringSubmatch(base); g != nil {
			name = "coronacases_" + g[1]
		} else if g := radioImage.FindStringSubmatch(base); g != nil && opts.Radiopaedia {
			name = "radiopaedia_" + g[1]
		} else {
			continue
		}
		want = []string{name + ".nii.gz", name + ".nii"}
		mask := ""
		for _, w := range want {
			if q, ok := masks[w]; ok {
				mask = q
				break
			}
		}
		if mask == "" {
			return nil, fmt.Errorf("dataset: coronacases: %s has no mask Infection_Mask/%s under %s (unpack Infection_Mask.zip there)", p, want[0], dir)
		}
		m.Entries = append(m.Entries, Entry{Image: p, Mask: mask, Dataset: Coronacases, Case: name})
	}
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("dataset: coronacases: no coronacases_org_NNN.nii.gz images under %s", dir)
	}
	return m, nil
}

// DiscoverMosMed lists MosMedData (COVID19_1110) found under dir: images
// studies/CT-k/study_NNNN.nii[.gz] (any of CT-0..CT-4; the category goes
// into the label column) with masks masks/study_NNNN_mask.nii[.gz]. Only
// studies with a mask are listed unless opts.Unlabelled. A mask without its
// study is an error.
func DiscoverMosMed(dir string, opts DiscoverOptions) (*Manifest, error) {
	files, err := walkFiles(dir)
	if err != nil {
		return nil, err
	}
	masks := map[string]string{} // study number → path
	for _, p := range files {
		if g := mosmedMask.FindStringSubmatch(filepath.Base(p)); g != nil {
			masks[g[1]] = p
		}
	}
	m := &Manifest{}
	found := map[string]bool{}
	for _, p := range files {
		class := filepath.Base(filepath.Dir(p))
		g := mosmedImage.FindStringSubmatch(filepath.Base(p))
		if g == nil || !mosmedClass.MatchString(class) {
			continue
		}
		if found[g[1]] {
			return nil, fmt.Errorf("dataset: mosmed: study_%s appears twice under %s (second: %s)", g[1], dir, p)
		}
		found[g[1]] = true
		e := Entry{Image: p, Mask: masks[g[1]], Dataset: MosMed, Case: "study_" + g[1], Label: class}
		if e.Mask == "" {
			if !opts.Unlabelled {
				continue
			}
			e.Split = Unlabelled
		}
		m.Entries = append(m.Entries, e)
	}
	var orphans []string
	for n, p := range masks {
		if !found[n] {
			orphans = append(orphans, p)
		}
	}
	if len(orphans) > 0 {
		sort.Strings(orphans)
		return nil, fmt.Errorf("dataset: mosmed: %d mask(s) without a study under %s/studies/CT-k (first: %s)", len(orphans), dir, orphans[0])
	}
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("dataset: mosmed: no studies/CT-k/study_NNNN.nii.gz with a mask under %s", dir)
	}
	return m, nil
}

// DiscoverPairs lists a folder of NIfTI pairs, images/NAME.nii[.gz] with
// masks/NAME.nii[.gz] (what ConvertRICORD writes), as data set name. When
// the folder holds a manifest.csv (ConvertRICORD writes one), its case,
// label and group columns are kept for the images it lists. An image
// without a mask is an error.
func DiscoverPairs(dir, name string) (*Manifest, error) {
	images, err := niftiFiles(filepath.Join(dir, "images"))
	if err != nil {
		return nil, err
	}
	masks, err := niftiFiles(filepath.Join(dir, "masks"))
	if err != nil {
		return nil, err
	}
	known := map[string]Entry{}
	if mp := filepath.Join(dir, "manifest.csv"); fileExists(mp) {
		old, err := ReadManifest(mp)
		if err != nil {
			return nil, err
		}
		for _, e := range old.Entries {
			known[filepath.Clean(e.Image)] = e
		}
	}
	m := &Manifest{}
	for c, img := range images {
		mask, ok := masks[c]
		if !ok {
			return nil, fmt.Errorf("dataset: %s: image %s has no mask %s", dir, img, filepath.Join(dir, "masks", filepath.Base(img)))
		}
		e := Entry{Image: img, Mask: mask, Dataset: name, Case: c}
		abs, _ := filepath.Abs(img)
		if k, ok := known[filepath.Clean(abs)]; ok {
			e.Case, e.Label, e.Group = k.Case, k.Label, k.Group
		}
		m.Entries = append(m.Entries, e)
	}
	sort.Slice(m.Entries, func(a, b int) bool { return m.Entries[a].Case < m.Entries[b].Case })
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("dataset: %s: no NIfTI images in %s", dir, filepath.Join(dir, "images"))
	}
	return m, nil
}

// niftiFiles maps case names to the NIfTI files directly in dir.
func niftiFiles(dir string) (map[string]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	out := map[string]string{}
	for _, d := range des {
		n := d.Name()
		if d.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		if !nifti.IsNIfTIName(n) {
			continue
		}
		c := CaseName(n)
		if prev, dup := out[c]; dup {
			return nil, fmt.Errorf("dataset: %s: both %s and %s name case %s", dir, filepath.Base(prev), n, c)
		}
		out[c] = filepath.Join(dir, n)
	}
	return out, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Merge concatenates manifests, refusing repeated images or case names.
func Merge(ms ...*Manifest) (*Manifest, error) {
	out := &Manifest{}
	for _, m := range ms {
		out.Entries = append(out.Entries, m.Entries...)
	}
	lines := make([]int, len(out.Entries))
	for i := range lines {
		lines[i] = i + 1
	}
	if err := checkUnique(out.Entries, lines); err != nil {
		return nil, fmt.Errorf("dataset: merged entry %w", err)
	}
	return out, nil
}
