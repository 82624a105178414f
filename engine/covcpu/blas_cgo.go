//go:build cgo && !noblas

package covcpu

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// CBLAS enum values (cblas.h): row-major order, no transpose, transpose.
enum { covRowMajor = 101, covNoTrans = 111, covTrans = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
	const float *, int, float, float *, int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double *, int,
	const double *, int, double, double *, int);
typedef void (*set_threads_fn)(int);

static sgemm_fn cov_sgemm;
static dgemm_fn cov_dgemm;

// cov_blas_open loads lib and resolves cblas_sgemm and cblas_dgemm; it
// sets OpenBLAS's own thread count to 1 when it can (Go runs the calls in
// parallel, and OpenBLAS's pthread build otherwise busy-waits between
// calls on every core). It returns NULL or dlerror()'s message.
static const char *cov_blas_open(const char *lib) {
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) return dlerror();
	cov_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
	cov_dgemm = (dgemm_fn)dlsym(h, "cblas_dgemm");
	if (!cov_sgemm || !cov_dgemm) return "cblas_sgemm or cblas_dgemm not found";
	set_threads_fn st = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
	if (st) st(1);
	return NULL;
}

static void cov_sgemm_call(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
	const float *b, int ldb, float beta, float *c, int ldc) {
	cov_sgemm(covRowMajor, ta ? covTrans : covNoTrans, tb ? covTrans : covNoTrans,
		m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void cov_dgemm_call(int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda,
	const double *b, int ldb, double beta, double *c, int ldc) {
	cov_dgemm(covRowMajor, ta ? covTrans : covNoTrans, tb ? covTrans : covNoTrans,
		m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"sync"
	"unsafe"
)

// DefaultBLASLibrary is the shared library the native kernels load when
// COVSEG_BLAS_LIB is not set: Debian's OpenBLAS (package libopenblas0,
// installed with libopenblas-dev by scripts/setup). It is loaded at run
// time, so a machine without it still builds and runs covseg, on the
// pure-Go kernels.
const DefaultBLASLibrary = "libopenblas.so.0"

var (
	blasOnce sync.Once
	blasErr  error
)

// loadBLAS loads the BLAS library once; it returns why it could not.
func loadBLAS() error {
	blasOnce.Do(func() {
		lib := os.Getenv("COVSEG_BLAS_LIB")
		if lib == "" {
			lib = DefaultBLASLibrary
		}
		cs := C.CString(lib)
		defer C.free(unsafe.Pointer(cs))
		if msg := C.cov_blas_open(cs); msg != nil {
			blasErr = fmt.Errorf("loading BLAS library %s: %s (install libopenblas-dev, or set COVSEG_BLAS_LIB)", lib, C.GoString(msg))
		}
	})
	return blasErr
}

// gemmFits reports whether every dimension and leading dimension fits
// CBLAS's int.
func gemmFits(dims ...int) bool {
	for _, d := range dims {
		if d < 0 || d > math.MaxInt32 {
			return false
		}
	}
	return true
}

// gemm32 computes c = alpha·op(a)·op(b) + beta·c on row-major float32
// matrices (op transposes when ta/tb), m×k times k×n, with OpenBLAS.
// loadBLAS must have succeeded; the slices must hold the matrices.
func gemm32(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	C.cov_sgemm_call(cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.int(lda), (*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}

// gemm64 is gemm32 for float64.
func gemm64(ta, tb bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	C.cov_dgemm_call(cbool(ta), cbool(tb), C.int(m), C.int(n), C.int(k), C.double(alpha),
		(*C.double)(unsafe.Pointer(&a[0])), C.int(lda), (*C.double)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.double(beta), (*C.double)(unsafe.Pointer(&c[0])), C.int(ldc))
}

func cbool(v bool) C.int {
	if v {
		return 1
	}
	return 0
}
