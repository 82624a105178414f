//go:build !cgo || noblas

package covcpu

import "errors"

// DefaultBLASLibrary is empty: this build has no native kernels.
const DefaultBLASLibrary = ""

// loadBLAS fails: the build has no cgo or has the "noblas" tag.
func loadBLAS() error {
	return errors.New("built without cgo or with the noblas tag")
}

func gemmFits(...int) bool { return false }

func gemm32(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("covcpu: gemm32 without BLAS")
}

func gemm64(ta, tb bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	panic("covcpu: gemm64 without BLAS")
}
