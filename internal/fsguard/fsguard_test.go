package fsguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefuseSame: an output that is an input by its own name, a relative
// path, a path through "..", a symbolic link or a hard link is refused;
// other outputs (existing or not) pass.
func TestRefuseSame(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "ct.nii")
	other := filepath.Join(dir, "other.nii")
	for _, p := range []string{in, other} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link.nii")
	hard := filepath.Join(dir, "hard.nii")
	if err := os.Symlink("ct.nii", link); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(in, hard); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, out := range []string{in, "ct.nii", "./sub/../ct.nii", link, hard, "link.nii"} {
		if out == "./sub/../ct.nii" {
			os.Mkdir("sub", 0o755)
		}
		err := RefuseSame([]string{"", "new.nii", out}, []string{"", other, in})
		if err == nil || !strings.Contains(err.Error(), "refusing to overwrite the input") {
			t.Errorf("output %s: %v", out, err)
		}
	}
	// The input named through a link is caught as well.
	if err := RefuseSame([]string{in}, []string{link}); err == nil {
		t.Error("input given as a link: not refused")
	}
	if err := RefuseSame([]string{"new.nii", filepath.Join(dir, "missing", "x")}, []string{in, other}); err != nil {
		t.Errorf("distinct outputs refused: %v", err)
	}
}

// TestCheckOutputs: a missing folder, a folder given as the output and a
// read-only folder are refused, naming the output; a writable folder passes
// and keeps no trace of the check.
func TestCheckOutputs(t *testing.T) {
	dir := t.TempDir()
	if err := CheckOutputs("", filepath.Join(dir, "a.nii.gz"), filepath.Join(dir, "b.png")); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the check left %v", ents)
	}
	missing := filepath.Join(dir, "no", "such", "m.nii.gz")
	if err := CheckOutputs(missing); err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing folder: %v", err)
	}
	if err := CheckOutputs(dir); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("folder as output: %v", err)
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		if err := CheckOutputs(filepath.Join(ro, "m.nii")); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only folder: %v", err)
		}
	}
}
