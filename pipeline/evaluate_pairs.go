package pipeline

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/covseg/covseg/volume/nifti"
)

// maskSuffixes returns the name endings dropped when pairing files by
// case, longer before shorter where one ends another.
func maskSuffixes() []string {
	return []string{"segmentation", "prediction", "labels", "label", "truth", "mask", "pred", "seg", "gt"}
}

// caseName returns the case name of a mask file: its base name without the
// NIfTI extension and without one trailing mask suffix (see evaluateLong).
func caseName(path string) string {
	name := nifti.CaseName(path)
	for _, s := range maskSuffixes() {
		for _, sep := range []string{"_", "-", "."} {
			if hasSuffixFold(name, sep+s) {
				return name[:len(name)-len(sep+s)]
			}
		}
	}
	return name
}

// hasSuffixFold reports whether s ends with suffix in any letter case and
// is longer than it (so that stripping it leaves a name).
func hasSuffixFold(s, suffix string) bool {
	return len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// listMasks maps case names to the NIfTI files of a folder; names claimed
// by several files map to all of them.
func listMasks(dir string) (map[string][]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	m := map[string][]string{}
	for _, e := range entries {
		if e.IsDir() || !nifti.IsNIfTIName(e.Name()) {
			continue
		}
		m[caseName(e.Name())] = append(m[caseName(e.Name())], filepath.Join(dir, e.Name()))
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("evaluate: %s holds no .nii or .nii.gz files", dir)
	}
	return m, nil
}

// pairFolders pairs the masks of two folders by case name, sorted by name.
// Unpaired and ambiguous files become failed cases.
func pairFolders(predDir, truthDir string) ([]evalCase, error) {
	preds, err := listMasks(predDir)
	if err != nil {
		return nil, err
	}
	truths, err := listMasks(truthDir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n := range preds {
		names[n] = true
	}
	for n := range truths {
		names[n] = true
	}
	var cases []evalCase
	for n := range names {
		cases = append(cases, pairOne(n, preds[n], truths[n], predDir, truthDir))
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].name < cases[j].name })
	return cases, nil
}

// pairOne makes the case name from the files that claim it in each folder.
func pairOne(name string, preds, truths []string, predDir, truthDir string) evalCase {
	c := evalCase{name: name}
	if len(preds) > 0 {
		c.pred = preds[0]
	}
	if len(truths) > 0 {
		c.truth = truths[0]
	}
	switch {
	case len(preds) > 1:
		c.pairErr = fmt.Errorf("predictions %s all match case %q", strings.Join(preds, ", "), name)
	case len(truths) > 1:
		c.pairErr = fmt.Errorf("truths %s all match case %q", strings.Join(truths, ", "), name)
	case len(preds) == 0:
		c.pairErr = fmt.Errorf("no prediction in %s for truth %s", predDir, c.truth)
	case len(truths) == 0:
		c.pairErr = fmt.Errorf("no truth in %s for prediction %s", truthDir, c.pred)
	}
	return c
}

// readManifest reads a CSV of rows pred,truth[,case] (see evaluateLong).
func readManifest(path string) ([]evalCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("evaluate: manifest: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(io.LimitReader(f, 1<<30))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	r.TrimLeadingSpace = true
	cols := map[string]int{"pred": 0, "truth": 1, "case": 2}
	dir := filepath.Dir(path)
	var cases []evalCase
	for row := 0; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("evaluate: manifest %s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if row == 0 {
			if h, ok := manifestHeader(rec); ok {
				cols = h
				continue
			}
		}
		c, err := manifestCase(rec, cols, dir)
		if err != nil {
			return nil, fmt.Errorf("evaluate: manifest %s line %d: %w", path, line, err)
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("evaluate: manifest %s lists no cases", path)
	}
	return cases, nil
}

// manifestHeader reads a header row naming the pred and truth columns (and
// optionally case); ok is false when the row is not a header.
func manifestHeader(rec []string) (cols map[string]int, ok bool) {
	cols = map[string]int{"case": -1}
	for i, name := range rec {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "pred" || name == "truth" || name == "case" {
			cols[name] = i
		}
	}
	_, hasPred := cols["pred"]
	_, hasTruth := cols["truth"]
	return cols, hasPred && hasTruth
}

// manifestCase makes the case of one manifest row.
func manifestCase(rec []string, cols map[string]int, dir string) (evalCase, error) {
	get := func(col string) string {
		if i := cols[col]; i >= 0 && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	c := evalCase{pred: get("pred"), truth: get("truth"), name: get("case")}
	if c.pred == "" || c.truth == "" {
		return c, fmt.Errorf("need a prediction and a truth path, got %q", rec)
	}
	for _, p := range []*string{&c.pred, &c.truth} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if c.name == "" {
		c.name = caseName(c.truth)
	}
	return c, nil
}
