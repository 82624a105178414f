package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteReplacesWholeFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.bin")
	if err := Write(p, func(w io.Writer) error { _, err := io.WriteString(w, "hello"); return err }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "hello" {
		t.Fatalf("got %q, %v", b, err)
	}
}

func TestFailedWriteLeavesOldFileAndNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, func(w io.Writer) error { io.WriteString(w, "partial"); return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "old" {
		t.Fatalf("file changed to %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary file left behind: %v", ents)
	}
}

// deadPID returns the id of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.Pid()
}

// TestStaleTempsRemoved: a write removes the leftovers of writes to the
// same target whose process is gone (and old-style names older than this
// process), and keeps those of running processes and of other targets.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.nii.gz")
	dead := fmt.Sprintf(".out.nii.gz%s%d-123", tmpMark, deadPID(t))
	live := fmt.Sprintf(".out.nii.gz%s%d-456", tmpMark, os.Getppid())
	other := fmt.Sprintf(".other.nii.gz%s%d-789", tmpMark, deadPID(t))
	legacy := ".out.nii.gz.4242.tmp"
	for _, name := range []string{dead, live, other, legacy} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := started.Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, legacy), old, old); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{dead: false, legacy: false, live: true, other: true, "out.nii.gz": true} {
		_, err := os.Stat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s exists: %v, want %v", name, got, want)
		}
	}
}

// TestTempNameAndMissingFolder: the temporary file is recognisable while
// the write runs, and a write into a missing folder names the target and
// the folder, not the temporary file.
func TestTempNameAndMissingFolder(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.nii")
	err := Write(p, func(w io.Writer) error {
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), fmt.Sprintf(".m.nii%s%d-", tmpMark, os.Getpid())) {
			t.Errorf("temporary files %v", ents)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no", "m.nii")
	err = Write(missing, func(io.Writer) error { return nil })
	if err == nil || !strings.HasPrefix(err.Error(), missing+": ") || !strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), tmpMark) {
		t.Errorf("missing folder: %v", err)
	}
}
