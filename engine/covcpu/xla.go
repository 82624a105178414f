//go:build cgo && ((linux && amd64) || darwin) && !noxla

package covcpu

import "github.com/gomlx/gomlx/backends/xla"

// Linking the XLA backend lets GOMLX_BACKEND=xla:<plugin> select it. Its
// automatic download of PJRT plugins is switched off: covseg must not reach
// the network on its own, and a missing plugin should be a clear error.
func init() {
	xla.EnableAutoInstall(false)
}
