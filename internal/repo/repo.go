// Package repo finds covseg's source tree and the shared folder beside it,
// for the tests and for benchmarks that run reference scripts from it.
package repo

import (
	"errors"
	"os"
	"path/filepath"
)

// Root returns the folder holding go.mod, searched upwards from the
// working directory.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory: not inside the covseg repository")
		}
		dir = parent
	}
}

// Shared returns the shared fixtures folder: $COVSEG_SHARED, or ../shared
// beside the repository. It does not check that it exists.
func Shared() (string, error) {
	if d := os.Getenv("COVSEG_SHARED"); d != "" {
		return d, nil
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "..", "shared"), nil
}
