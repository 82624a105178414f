//go:build cgo && ((linux && amd64) || darwin) && !noxla

package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"

	"github.com/covseg/covseg/train"
)

// benchBackend creates the benchmark's backend. An XLA CUDA plugin gets the
// client option preallocate=false unless preallocate is set: by default its
// BFC allocator takes 75 % of the GPU at start, which hides the memory the
// steps need from nvidia-smi. The note says which options were given.
func benchBackend(name string, preallocate bool) (backends.Backend, string, error) {
	config := name
	if config == "" {
		config = os.Getenv(backends.ConfigEnvVar)
	}
	plugin, isXLA := strings.CutPrefix(config, "xla:")
	if !isXLA || preallocate || !strings.Contains(strings.ToLower(plugin), "cuda") {
		b, err := train.NewBackend(name)
		return b, "", err
	}
	b, err := xla.NewWithOptions(plugin, pjrt.NamedValuesMap{"preallocate": false})
	if err != nil {
		// A plugin that does not know the option: measure with its defaults.
		b, err2 := train.NewBackend(name)
		return b, fmt.Sprintf("defaults (preallocate=false refused: %v)", err), err2
	}
	return b, "preallocate=false", nil
}
