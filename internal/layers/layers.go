// Package layers states which of covseg's packages may import which, and
// its test enforces it on the source tree, as the Go repository's
// go/build/deps_test.go does for the standard library.
//
// The packages form an ordered list of layers, from the bottom (helpers
// with no covseg imports) to the top (the command). A package may import
// packages of lower layers; within a layer only the edges listed in
// SameLayer; never the pairs listed in Forbidden, whatever the layers.
// Test files are not checked: a test may use a higher package to build
// its inputs. Every package must be listed, so a new package is placed on
// purpose.
package layers

// Module is covseg's module path.
const Module = "github.com/covseg/covseg"

// Layer is a named group of packages (paths relative to Module).
type Layer struct {
	Name     string
	Packages []string
}

// Layers lists covseg's packages from the bottom up: the data flow
// volume I/O → preprocessing → model → train | infer → metrics and report,
// with the workflows and the command on top.
var Layers = []Layer{
	{"helpers", []string{"internal/atomicfile", "internal/parallel", "internal/progress", "internal/procstat", "internal/testutil", "internal/layers", "internal/orthanctest", "internal/repo", "internal/membudget", "internal/fsguard", "internal/iocheck", "internal/shard"}},
	{"file formats", []string{"volume/dicomseries/ljpeg", "engine/onnx/onnxpb", "model/torchpth", "data/mdai"}},
	{"volumes", []string{"volume"}},
	{"volume I/O", []string{"volume/nifti", "volume/dicomseries", "volume/volio", "volume/dicomout", "volume/dicomweb"}},
	{"model", []string{"model"}},
	{"data", []string{"data/dataset", "data/preprocess", "data/augment", "data/loader", "data/phantom"}},
	{"engines", []string{"engine/covcpu", "engine/onnx", "engine/ort", "engine/quant"}},
	{"evaluation", []string{"eval/metrics", "eval/lungs", "eval/montage", "eval/severity", "eval/dicomreport"}},
	{"train and infer", []string{"train", "infer"}},
	{"test helpers", []string{"internal/infertest"}},
	{"workflows", []string{"pipeline", "pipeline/pacs", "serve", "serve/internal/viewercheck"}},
	{"command", []string{"cmd/covseg/internal/cli", "cmd/covseg"}},
}

// SameLayer lists the imports allowed within a layer: importer → imported.
var SameLayer = map[string][]string{
	"internal/testutil":    {"internal/repo"},
	"internal/orthanctest": {"internal/testutil"},
	"internal/progress":    {"internal/iocheck"},
	"volume/volio":         {"volume/nifti", "volume/dicomseries"},
	"data/preprocess":      {"data/dataset"},
	"data/loader":          {"data/augment", "data/dataset", "data/preprocess"},
	"engine/ort":           {"engine/onnx"},
	"engine/quant":         {"engine/onnx", "engine/ort"},
	"volume/dicomout":      {"volume/dicomseries"},
	"eval/severity":        {"eval/lungs", "eval/montage"},
	"eval/dicomreport":     {"eval/lungs", "eval/montage", "eval/severity"},
	"cmd/covseg":           {"cmd/covseg/internal/cli"},
}

// Forbidden lists imports that the layer order would allow but that would
// tie parts together that must stay apart: importer prefix → imported
// prefixes.
var Forbidden = map[string][]string{
	// Preprocessing and data handling run the same with every engine.
	"data/": {"engine/"},
	// Engines run a network; they know nothing of cases and manifests.
	"engine/": {"data/"},
	// Metrics, lungs and reports work on volumes and masks alone.
	"eval/": {"model", "engine/", "data/"},
}

// Violation is one import that breaks the rules.
type Violation struct {
	Importer, Imported string // paths relative to Module
	Why                string
}

func (v Violation) String() string {
	return v.Importer + " imports " + v.Imported + ": " + v.Why
}

// Check returns the rule violations of a set of packages, given as their
// paths relative to Module mapped to the covseg packages (relative paths)
// each imports, in a stable order.
func Check(imports map[string][]string) []Violation {
	rank := map[string]int{}
	for i, l := range Layers {
		for _, p := range l.Packages {
			rank[p] = i
		}
	}
	var out []Violation
	for _, pkg := range sortedKeys(imports) {
		r, ok := rank[pkg]
		if !ok {
			out = append(out, Violation{pkg, "", "the package is in no layer: add it to layers.Layers"})
			continue
		}
		for _, imp := range imports[pkg] {
			ri, ok := rank[imp]
			switch {
			case !ok:
				out = append(out, Violation{pkg, imp, "the imported package is in no layer: add it to layers.Layers"})
			case forbidden(pkg, imp):
				out = append(out, Violation{pkg, imp, "forbidden by layers.Forbidden"})
			case ri > r:
				out = append(out, Violation{pkg, imp, "a lower layer (" + Layers[r].Name + ") imports a higher one (" + Layers[ri].Name + ")"})
			case ri == r && !contains(SameLayer[pkg], imp):
				out = append(out, Violation{pkg, imp, "an import within the layer " + Layers[r].Name + " that layers.SameLayer does not list"})
			}
		}
	}
	return out
}

// forbidden reports whether Forbidden rules out importer → imported.
func forbidden(importer, imported string) bool {
	for from, tos := range Forbidden {
		if !hasPathPrefix(importer, from) {
			continue
		}
		for _, to := range tos {
			if hasPathPrefix(imported, to) {
				return true
			}
		}
	}
	return false
}

// hasPathPrefix matches "a/" against "a/b", and "a" against "a" and "a/b".
func hasPathPrefix(p, prefix string) bool {
	if len(prefix) > 0 && prefix[len(prefix)-1] == '/' {
		return len(p) >= len(prefix) && p[:len(prefix)] == prefix
	}
	return p == prefix || (len(p) > len(prefix) && p[:len(prefix)] == prefix && p[len(prefix)] == '/')
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
