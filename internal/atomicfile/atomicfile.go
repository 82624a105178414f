// Package atomicfile writes files so that readers see either the old file or
// the complete new one, never a half-written file: the content goes to a
// temporary file in the same folder, is synced, and is renamed into place.
//
// The temporary file is named .NAME.covseg-tmp-PID-RANDOM, NAME being the
// target's name and PID the writing process's id, so that leftovers are
// recognisable: a process killed during a write (kill -9, power loss)
// leaves one behind, and the next write to the same target removes every
// such file whose process is no longer running.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tmpMark sits between the target's name and the PID in temporary names.
const tmpMark = ".covseg-tmp-"

// started is when this process started (near enough): leftovers of older
// naming schemes (no PID) older than it cannot belong to a running write
// of this process.
var started = time.Now()

// Write creates path by calling fill with a buffered writer. If fill or any
// file operation fails, path is left untouched and the temporary file is
// removed. Errors name path, never the temporary file.
func Write(path string, fill func(w io.Writer) error) (err error) {
	f, err := CreateTemp(path)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fill(bw); err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	return Commit(f, path)
}

// CreateTemp removes stale temporary files of path (see the package
// documentation) and creates a new one beside it, for a writer that fills
// it itself and then calls Commit. An error names path and, when the folder
// is missing or not writable, says so.
func CreateTemp(path string) (*os.File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	RemoveStale(path)
	f, err := os.CreateTemp(dir, "."+base+tmpMark+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return nil, folderError(path, filepath.Clean(dir), err)
	}
	return f, nil
}

// Commit syncs and closes f, a file from CreateTemp, and renames it to
// path. On error f is closed and removed.
func Commit(f *os.File, path string) (err error) {
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("%s: %w", path, unwrapPath(err))
		}
	}()
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// folderError explains why a file could not be created in dir.
func folderError(path, dir string, err error) error {
	st, serr := os.Stat(dir)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		return fmt.Errorf("%s: cannot write it: the folder %s does not exist", path, dir)
	case serr == nil && !st.IsDir():
		return fmt.Errorf("%s: cannot write it: %s is not a folder", path, dir)
	}
	return fmt.Errorf("%s: cannot write it in %s: %w", path, dir, unwrapPath(err))
}

// unwrapPath drops the *fs.PathError around an error so that messages name
// the target instead of the temporary file.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Path, tmpMark) {
		return pe.Err
	}
	return err
}

// RemoveStale removes the temporary files left beside path by writes that
// did not finish: those named with the PID of a process that is no longer
// running, and those of older covseg versions (.NAME.tmp-*, .NAME.*.tmp)
// last modified before this process started. Failures are ignored: a
// leftover that cannot be removed does no harm.
func RemoveStale(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + base
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || e.IsDir() {
			continue
		}
		if stale(e, rest) {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// stale decides whether a file named "." + base + rest is a leftover.
func stale(e fs.DirEntry, rest string) bool {
	if p, ok := strings.CutPrefix(rest, tmpMark); ok {
		pidText, _, ok := strings.Cut(p, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			return false
		}
		return pid != os.Getpid() && !alive(pid)
	}
	legacy := strings.HasPrefix(rest, ".tmp-") || strings.HasPrefix(rest, ".") && strings.HasSuffix(rest, ".tmp")
	if !legacy {
		return false
	}
	info, err := e.Info()
	return err == nil && info.ModTime().Before(started)
}
