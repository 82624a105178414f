package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// touch creates empty files (and their folders) under dir.
func touch(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	touch(t, dir, "images/a.nii.gz", "masks/a.nii.gz", "images/b.nii", "masks/b.nii", "other/c.nii.gz")
	outside := t.TempDir()
	touch(t, outside, "far.nii.gz", "far_mask.nii.gz")
	m := &Manifest{Entries: []Entry{
		{Image: filepath.Join(dir, "images/a.nii.gz"), Mask: filepath.Join(dir, "masks/a.nii.gz"), Split: Train, Dataset: "ricord", Case: "a", Label: "Typical, \"quoted\"", Group: "p1"},
		{Image: filepath.Join(dir, "images/b.nii"), Mask: filepath.Join(dir, "masks/b.nii"), Split: Val, Dataset: "ricord", Case: "b", Group: "p2"},
		{Image: filepath.Join(outside, "far.nii.gz"), Mask: filepath.Join(outside, "far_mask.nii.gz"), Split: Test, Dataset: "mosmed", Case: "far"},
		{Image: filepath.Join(dir, "other/c.nii.gz"), Split: Unlabelled, Dataset: "mosmed", Case: "c"},
	}}
	path := filepath.Join(dir, "manifest.csv")
	if err := WriteManifest(path, m); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	text := string(raw)
	if !strings.Contains(text, "\nimages/a.nii.gz,masks/a.nii.gz,train,") {
		t.Errorf("paths inside the folder are not relative:\n%s", text)
	}
	if !strings.Contains(text, filepath.ToSlash(filepath.Join(outside, "far.nii.gz"))) {
		t.Errorf("paths outside the folder are not absolute:\n%s", text)
	}
	got, err := ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Entries, m.Entries) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got.Entries, m.Entries)
	}
	if s := got.Select(Val); len(s) != 1 || s[0].Case != "b" {
		t.Errorf("Select(val) = %+v", s)
	}
	// The folder moves with its manifest.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	got, err = ReadManifest(filepath.Join(moved, "manifest.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries[0].Image != filepath.Join(moved, "images/a.nii.gz") {
		t.Errorf("moved manifest reads image %s", got.Entries[0].Image)
	}
}

func TestManifestParse(t *testing.T) {
	in := "# a comment\nSplit,Dataset,image,mask\ntrain,ds,x/a.nii.gz,x/a_mask.nii.gz\n\"VALIDATION\",ds,b.nii,b_m.nii\n"
	m, err := ParseManifest("m.csv", strings.NewReader(in), "/base")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Image: "/base/x/a.nii.gz", Mask: "/base/x/a_mask.nii.gz", Split: Train, Dataset: "ds", Case: "a"},
		{Image: "/base/b.nii", Mask: "/base/b_m.nii", Split: Val, Dataset: "ds", Case: "b"},
	}
	if !reflect.DeepEqual(m.Entries, want) {
		t.Errorf("got %+v\nwant %+v", m.Entries, want)
	}
}

func TestManifestErrors(t *testing.T) {
	const h = "image,mask,split,dataset\n"
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty manifest"},
		{"unknown column", "image,mask,split,dataset,spilt\n", `m.csv:1: unknown column "spilt"`},
		{"missing column", "image,split,dataset\n", "lacks column(s) mask"},
		{"dup column", "image,mask,split,dataset,image\n", "appears twice"},
		{"bad split", h + "a.nii,m.nii,train\n" + "b.nii,n.nii,tarin,ds\n", "m.csv:2: 3 fields"},
		{"bad split value", h + "a.nii,m.nii,train,ds\nb.nii,n.nii,tarin,ds\n", `m.csv:3: split "tarin"`},
		{"no image", h + ",m.nii,train,ds\n", "m.csv:2: empty image"},
		{"no dataset", h + "a.nii,m.nii,train,\n", "m.csv:2: empty dataset"},
		{"no mask", h + "a.nii,,train,ds\n", "m.csv:2: split train needs a mask"},
		{"unlabelled with mask", h + "a.nii,m.nii,unlabelled,ds\n", "m.csv:2: split unlabelled is for cases without a mask"},
		{"dup image", h + "a.nii,m.nii,train,ds\n./a.nii,n.nii,val,ds\n", "m.csv:3: image a.nii is already listed on line 2"},
		{"dup case", h + "x/a.nii,m.nii,train,ds\ny/a.nii,n.nii,val,ds\n", `m.csv:3: case name "a" is already used on line 2`},
		{"bad quote", h + "\"a.nii,m.nii,train,ds\n", "m.csv"},
	}
	for _, c := range cases {
		_, err := ParseManifest("m.csv", strings.NewReader(c.in), "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestManifestMissingFiles(t *testing.T) {
	dir := t.TempDir()
	touch(t, dir, "a.nii", "m.nii", "maskdir/x")
	for _, c := range []struct{ body, want string }{
		{"b.nii,m.nii,train,ds\n", "manifest.csv:2: image: stat"},
		{"a.nii,n.nii,train,ds\n", "manifest.csv:2: mask: stat"},
		{"a.nii,maskdir,train,ds\n", "is a folder"},
	} {
		p := filepath.Join(dir, "manifest.csv")
		os.WriteFile(p, []byte("image,mask,split,dataset\n"+c.body), 0o644)
		_, err := ReadManifest(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.body, err, c.want)
		}
	}
	if _, err := ReadManifest(filepath.Join(dir, "none.csv")); err == nil {
		t.Error("missing manifest read")
	}
}

func TestWriteManifestRefuses(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.csv")
	bad := []Entry{
		{Image: "a", Mask: "m", Split: "nope", Dataset: "d", Case: "a"},
		{Image: "a", Split: Train, Dataset: "d", Case: "a"},
		{Image: "a", Mask: "m", Split: Train, Dataset: "d"},
		{Image: "a\nb", Mask: "m", Split: Train, Dataset: "d", Case: "a"},
		{Image: filepath.Join(dir, "#a"), Mask: "m", Split: Train, Dataset: "d", Case: "a"},
	}
	for i, e := range bad {
		if err := WriteManifest(p, &Manifest{Entries: []Entry{e}}); err == nil {
			t.Errorf("entry %d (%+v) written", i, e)
		}
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("a refused manifest left a file")
	}
	dup := []Entry{
		{Image: "a", Mask: "m", Split: Train, Dataset: "d", Case: "x"},
		{Image: "b", Mask: "n", Split: Train, Dataset: "d", Case: "x"},
	}
	if err := WriteManifest(p, &Manifest{Entries: dup}); err == nil {
		t.Error("duplicate case names written")
	}
}

func TestCaseName(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b/study_0001.nii.gz": "study_0001",
		"x.NII":                  "x",
		"dicom/series1/":         "series1",
		"plain.gz":               "plain",
	} {
		if got := CaseName(in); got != want {
			t.Errorf("CaseName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add("image,mask,split,dataset\na.nii,m.nii,train,ds\n")
	f.Add("image,mask,split,dataset,case,label,group\na.nii,,unlabelled,ds,c,\"l,1\",g\n")
	f.Add("# c\nmask,image,dataset,split\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseManifest("f.csv", strings.NewReader(in), "")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "dataset: f.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// What parses writes and reads back the same (paths made absolute).
		dir := t.TempDir()
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Image = filepath.Join(dir, e.Image)
			if e.Mask != "" {
				e.Mask = filepath.Join(dir, e.Mask)
			}
		}
		p := filepath.Join(dir, "m.csv")
		if err := WriteManifest(p, m); err != nil {
			return // e.g. fields with line breaks: refused, fine
		}
		raw, _ := os.ReadFile(p)
		back, err := ParseManifest("back.csv", strings.NewReader(string(raw)), dir)
		if err != nil {
			t.Fatalf("written manifest does not parse: %v\n%s", err, raw)
		}
		if !reflect.DeepEqual(back.Entries, m.Entries) {
			t.Fatalf("round trip differs:\n%+v\n%+v", back.Entries, m.Entries)
		}
	})
}

func TestAssignSplits(t *testing.T) {
	var es []Entry
	for i := 0; i < 50; i++ {
		es = append(es, Entry{Image: fmt.Sprint(i), Mask: "m", Dataset: "a", Case: fmt.Sprintf("a%02d", i)})
	}
	for i := 0; i < 10; i++ {
		// Two series per patient.
		es = append(es, Entry{Image: fmt.Sprint("b", i), Mask: "m", Dataset: "b", Case: fmt.Sprintf("b%02d", i), Group: fmt.Sprint("p", i/2)})
	}
	es = append(es, Entry{Image: "u", Dataset: "a", Case: "u"})
	cfg := SplitConfig{Val: 0.2, Test: 0.1, Seed: 7}
	if err := AssignSplits(es, cfg); err != nil {
		t.Fatal(err)
	}
	count := map[string]map[Split]int{}
	for _, e := range es {
		if count[e.Dataset] == nil {
			count[e.Dataset] = map[Split]int{}
		}
		count[e.Dataset][e.Split]++
	}
	if c := count["a"]; c[Train] != 35 || c[Val] != 10 || c[Test] != 5 || c[Unlabelled] != 1 {
		t.Errorf("data set a: %v", c)
	}
	// b: 5 groups → 1 test, 1 val, 3 train groups of 2 series.
	if c := count["b"]; c[Train] != 6 || c[Val] != 2 || c[Test] != 2 {
		t.Errorf("data set b: %v", c)
	}
	for i := 0; i < 10; i += 2 {
		if es[50+i].Split != es[51+i].Split {
			t.Errorf("patient %d's series are split: %s, %s", i/2, es[50+i].Split, es[51+i].Split)
		}
	}
	// Order does not matter; the seed does.
	rev := make([]Entry, len(es))
	for i := range es {
		rev[len(es)-1-i] = es[i]
		rev[len(es)-1-i].Split = ""
	}
	AssignSplits(rev, cfg)
	for i := range es {
		if rev[len(es)-1-i].Split != es[i].Split {
			t.Fatalf("entry %s: %s in reverse order, %s forwards", es[i].Case, rev[len(es)-1-i].Split, es[i].Split)
		}
	}
	cfg.Seed = 8
	other := append([]Entry(nil), es...)
	AssignSplits(other, cfg)
	same := true
	for i := range es {
		same = same && other[i].Split == es[i].Split
	}
	if same {
		t.Error("another seed gives the same splits")
	}
	// A whole data set as test.
	cfg.Whole = map[string]Split{"b": Test}
	AssignSplits(es, cfg)
	for _, e := range es[50:60] {
		if e.Split != Test {
			t.Fatalf("whole-test data set b has %s entry %s", e.Split, e.Case)
		}
	}
	for _, bad := range []SplitConfig{{Val: -0.1}, {Val: 0.6, Test: 0.5}, {Whole: map[string]Split{"a": Unlabelled}}} {
		if err := AssignSplits(es, bad); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

func TestSplitCounts(t *testing.T) {
	for _, c := range []struct {
		n           int
		test, val   float64
		nTest, nVal int
	}{
		{1, 0.2, 0.2, 0, 0}, {2, 0.2, 0.2, 1, 0}, {3, 0.2, 0.2, 1, 1}, {10, 0.2, 0.2, 2, 2},
		{10, 0, 0, 0, 0}, {4, 0.5, 0.5, 2, 2}, {5, 1, 0, 5, 0}, {3, 0.4, 0.4, 1, 1},
	} {
		nt, nv := splitCounts(c.n, c.test, c.val)
		if nt != c.nTest || nv != c.nVal {
			t.Errorf("splitCounts(%d, %g, %g) = %d, %d; want %d, %d", c.n, c.test, c.val, nt, nv, c.nTest, c.nVal)
		}
	}
}
