package layers

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
)

// TestLayers checks every package of the source tree (its non-test files,
// for the build on this machine and with every build tag the tree uses)
// against the rules.
func TestLayers(t *testing.T) {
	imports := treeImports(t, testutil.RepoRoot(t))
	if len(imports) < 20 {
		t.Fatalf("found only %d packages: is the tree walk broken?", len(imports))
	}
	for _, v := range Check(imports) {
		t.Error(v)
	}
}

// TestCheckCatches makes sure the checker can fail: a low layer importing a
// higher one, a forbidden pair, an unlisted edge within a layer and an
// unknown package are each reported.
func TestCheckCatches(t *testing.T) {
	cases := map[string]map[string][]string{
		"volume imports infer":     {"volume": {"infer"}},
		"engine imports data":      {"engine/ort": {"data/dataset"}},
		"train imports infer":      {"train": {"infer"}},
		"unknown importer":         {"volume/whatever": nil},
		"unknown imported package": {"infer": {"somewhere/new"}},
	}
	for name, imports := range cases {
		if len(Check(imports)) != 1 {
			t.Errorf("%s: %v, want one violation", name, Check(imports))
		}
	}
	if v := Check(map[string][]string{"infer": {"volume", "model", "data/preprocess"}, "volume/volio": {"volume/nifti"}}); len(v) != 0 {
		t.Errorf("allowed imports refused: %v", v)
	}
}

// treeImports maps each package under root (relative path) to the covseg
// packages its non-test files import.
func treeImports(t *testing.T, root string) map[string][]string {
	ctx := build.Default
	ctx.UseAllFiles = true // every build tag and GOOS: a rule holds on every build
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules" || name == "third_party") {
			return filepath.SkipDir
		}
		pkg, err := ctx.ImportDir(path, build.ImportComment)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			if _, ok := err.(*build.MultiplePackageError); !ok {
				return err
			}
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		var own []string
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, Module+"/") {
				own = append(own, strings.TrimPrefix(imp, Module+"/"))
			}
		}
		out[rel] = own
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
