//go:build !(cgo && ((linux && amd64) || darwin) && !noxla)

package cli

import (
	"github.com/gomlx/gomlx/backends"

	"github.com/covseg/covseg/train"
)

// benchBackend creates the benchmark's backend; without cgo there is no
// XLA and nothing to configure.
func benchBackend(name string, _ bool) (backends.Backend, string, error) {
	b, err := train.NewBackend(name)
	return b, "", err
}
