package train

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"

	"github.com/covseg/covseg/engine/covcpu"
)

// NewBackend returns the backend a config names: "" means GOMLX_BACKEND,
// or covseg's CPU backend when that is unset (backend.New); "covcpu" or
// "covcpu:<options>" the CPU backend; anything else a GoMLX backend
// configuration such as "xla:cuda" or "xla:/abs/path/pjrt_c_api_cuda_plugin.so"
// (the XLA backend is compiled into cgo builds).
func NewBackend(name string) (b backends.Backend, err error) {
	switch {
	case name == "":
		b, err = covcpu.New()
	case name == covcpu.Name || strings.HasPrefix(name, covcpu.Name+":"):
		_, opts, _ := strings.Cut(name, ":")
		b, err = covcpu.NewAdapter(opts)
	default:
		b, err = newRegistered(name)
	}
	if err != nil {
		return nil, err // the backend package's and newRegistered's errors say what failed
	}
	return b, nil
}

// newRegistered creates a backend from GoMLX's registry, turning its panic
// for an unknown name into an error.
func newRegistered(config string) (b backends.Backend, err error) {
	name, _, _ := strings.Cut(config, ":")
	known := false
	for _, k := range backends.List() {
		known = known || k == name
	}
	if !known {
		return nil, fmt.Errorf("train: backend %q names backend %q, which is not compiled in (available: %s)",
			config, name, strings.Join(backends.List(), ", "))
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("train: creating backend %q: %v", config, r)
		}
	}()
	if b, err = backends.NewWithConfig(config); err != nil {
		return nil, fmt.Errorf("train: creating backend %q: %w", config, err)
	}
	return b, nil
}
