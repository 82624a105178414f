// Package fsguard checks a command's outputs before it does any work: no
// output may be the same file as one of its inputs (a command told to write
// over its own CT would destroy it), and every output's folder must exist
// and be writable (so that an hour of inference does not end in "no such
// file or directory").
package fsguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RefuseSame returns an error when an output is the same file as an input.
// Files are compared with os.SameFile on what os.Stat finds, which follows
// symbolic links, so a link, a hard link, a relative path or a path with
// ".." that leads to an input is caught as well as the input's own name.
// Outputs that do not exist yet cannot be an input and pass; empty names
// are ignored. An input that is a folder (a DICOM series) is compared too,
// so that an output may not replace it.
func RefuseSame(outputs, inputs []string) error {
	type stated struct {
		name string
		info fs.FileInfo
	}
	var ins []stated
	for _, in := range inputs {
		if in == "" {
			continue
		}
		if st, err := os.Stat(in); err == nil {
			ins = append(ins, stated{in, st})
		}
	}
	for _, out := range outputs {
		if out == "" {
			continue
		}
		st, err := os.Stat(out)
		if err != nil {
			continue
		}
		for _, in := range ins {
			if os.SameFile(st, in.info) {
				return sameError(out, in.name)
			}
		}
	}
	return nil
}

// sameError says which output would overwrite which input.
func sameError(out, in string) error {
	if filepath.Clean(out) == filepath.Clean(in) {
		return fmt.Errorf("%s is both an input and an output: refusing to overwrite the input; choose another output name", out)
	}
	return fmt.Errorf("output %s is the same file as input %s (a link or another name of it): refusing to overwrite the input; choose another output name", out, in)
}

// CheckOutputs checks, before any work, that every output can be written:
// its folder exists and a file can be created in it (a file is created
// and removed to be sure: permissions alone do not show a read-only file
// system), and the output is not a folder. Empty names are ignored.
func CheckOutputs(outputs ...string) error {
	tried := map[string]error{}
	for _, out := range outputs {
		if out == "" {
			continue
		}
		if st, err := os.Stat(out); err == nil && st.IsDir() {
			return fmt.Errorf("%s: cannot write it: it is a folder", out)
		}
		dir := filepath.Dir(out)
		err, ok := tried[dir]
		if !ok {
			err = writableDir(dir)
			tried[dir] = err
		}
		if err != nil {
			return fmt.Errorf("%s: cannot write it: %w", out, err)
		}
	}
	return nil
}

// writableDir reports why no file can be created in dir, or nil.
func writableDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the folder %s does not exist", dir)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s is not a folder", dir)
	}
	f, err := os.CreateTemp(dir, ".covseg-write-check-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("the folder %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
