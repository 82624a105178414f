package covcpu

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The native kernels replace simplego's DotGeneral and ConvGeneral
// executors (see simplego_internals.go) for the simplego backends the
// adapter creates with "kernels=native" (the default when BLAS loads):
//
//   - DotGeneral: the operands are brought to [batch, cross, contracting]
//     (or used in place when their axes are already in that order or in
//     [batch, contracting, cross]) and multiplied with BLAS's gemm, the
//     batch or the larger cross dimension split over the cores.
//   - ConvGeneral: for each example and tile of output positions, the
//     patches are gathered straight from the input into a reused buffer
//     (im2col, any axis layout, strides, padding, input and kernel
//     dilations) and multiplied with the kernel by gemm; tiles run in
//     parallel. This covers the forward convolution and the two gradient
//     forms GoMLX emits (input dilation for the input gradient, batch and
//     feature axes swapped for the kernel gradient).
//
// float32 and float64 only; other dtypes and grouped convolutions go to
// simplego's executors. The kernels accumulate in a different order from
// simplego's, so float32 results differ by rounding: tests allow a
// relative error of 1e-4 of the sum of the products' magnitudes.

func init() { installNative() }

// nativeMode says which native kernels a simplego backend uses.
type nativeMode struct{ dot, conv, elem bool }

// nativeBackends maps the *simplego.Backend values the adapter created to
// their nativeMode; other simplego backends keep simplego's kernels.
var nativeBackends sync.Map

// nativeAvailable returns nil if the native kernels can run here, or why
// not.
func nativeAvailable() error {
	if err := checkInternals(); err != nil {
		return err
	}
	return loadBLAS()
}

var slowPathOnce sync.Once

// warnSlowPath prints, once per process, that covcpu runs on the pure-Go
// kernels and why.
func warnSlowPath(why error) {
	slowPathOnce.Do(func() {
		fmt.Fprintf(os.Stderr, "covcpu: native kernels off (%v): pure-Go kernels, the slow path\n", why)
	})
}

// modeOf returns the native kernels backend was registered for.
func modeOf(backend *simplego.Backend) nativeMode {
	if m, ok := nativeBackends.Load(backend); ok {
		return m.(nativeMode)
	}
	return nativeMode{}
}

// execDotGeneral is the DotGeneral executor installed in simplego's table.
func execDotGeneral(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	if !modeOf(backend).dot || !dotInternalsOK(node) {
		return simplegoDot(backend, node, inputs, owned)
	}
	p := nodeData[sgDotParams](node)
	nativeDotCalls.Add(1)
	ls, _ := backend.BufferShape(inputs[0])
	rs, _ := backend.BufferShape(inputs[1])
	outShape := nodeShape(node)
	if !gemmFits(p.lhsCrossSize, p.rhsCrossSize, p.contractingSize) {
		return simplegoDot(backend, node, inputs, owned)
	}
	lf, _ := backend.BufferData(inputs[0])
	rf, _ := backend.BufferData(inputs[1])
	switch ls.DType {
	case dtypes.Float32:
		out := backend.NewBuffer(outShape)
		of, _ := backend.BufferData(out)
		dotNative(lf.([]float32), rf.([]float32), of.([]float32), ls, rs, p)
		return out, nil
	case dtypes.Float64:
		out := backend.NewBuffer(outShape)
		of, _ := backend.BufferData(out)
		dotNative(lf.([]float64), rf.([]float64), of.([]float64), ls, rs, p)
		return out, nil
	}
	return simplegoDot(backend, node, inputs, owned)
}

var dotChecked, convChecked atomic.Bool

// nativeDotCalls and nativeConvCalls count the native kernels' runs, for
// tests that must know the native path ran.
var nativeDotCalls, nativeConvCalls, nativeFlippedCalls atomic.Int64

// dotInternalsOK checks, the first time, that simplego's Node and
// DotGeneral parameters match the mirrors; it warns and returns false if
// not.
func dotInternalsOK(node *simplego.Node) bool {
	return internalsOK(&dotChecked, node, reflect.TypeFor[sgDotParams]())
}

// convInternalsOK is dotInternalsOK for ConvGeneral's parameters.
func convInternalsOK(node *simplego.Node) bool {
	return internalsOK(&convChecked, node, reflect.TypeFor[sgConvParams]())
}

func internalsOK(checked *atomic.Bool, node *simplego.Node, mirror reflect.Type) bool {
	if checked.Load() {
		return true
	}
	err := checkInternals()
	if err == nil {
		err = sameLayout(dataType(node), mirror)
	}
	if err != nil {
		warnSlowPath(err)
		return false
	}
	checked.Store(true)
	return true
}

// float is the element type of the native kernels.
type float interface{ float32 | float64 }

// gemm computes c = op(a)·op(b) + beta·c (row-major; op transposes when
// ta/tb), dispatching on the element type.
func gemm[T float](ta, tb bool, m, n, k int, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch a := any(a).(type) {
	case []float32:
		gemm32(ta, tb, m, n, k, 1, a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		gemm64(ta, tb, m, n, k, 1, a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// dotNative computes simplego's DotGeneral node: out [batch, lhsCross,
// rhsCross] from lhs and rhs in their own axis layouts.
func dotNative[T float](lhs, rhs, out []T, ls, rs shapes.Shape, p *sgDotParams) {
	bsz, m, n, k := p.batchSize, p.lhsCrossSize, p.rhsCrossSize, p.contractingSize
	a, aKLast := gemmOperand(lhs, ls, p.lhsBatchAxes, p.lhsContractingAxes)
	b, bKLast := gemmOperand(rhs, rs, p.rhsBatchAxes, p.rhsContractingAxes)
	// a is [bsz][m][k] if aKLast, else [bsz][k][m]; b likewise with n.
	ta, tb := !aKLast, bKLast
	lda, ldb := k, k
	if !aKLast {
		lda = m
	}
	if !bKLast {
		ldb = n
	}
	rowsA := func(i0 int) int { // offset of row i0 of op(a) in a batch
		if aKLast {
			return i0 * k
		}
		return i0
	}
	colsB := func(j0 int) int { // offset of column j0 of op(b) in a batch
		if bKLast {
			return j0 * k
		}
		return j0
	}
	// Split the batch, or else the larger cross dimension, over the workers.
	splitM := m >= n
	span := n
	if splitM {
		span = m
	}
	parts := 1
	if bsz < workers() && 2*m*n*k >= 1<<20 {
		parts = min(span/16+1, workers())
	}
	parallelFor(bsz*parts, func(item int) {
		bi, part := item/parts, item%parts
		lo, hi := part*span/parts, (part+1)*span/parts
		if lo == hi {
			return
		}
		ab, bb, cb := a[bi*m*k:], b[bi*n*k:], out[bi*m*n:]
		if splitM {
			gemm(ta, tb, hi-lo, n, k, ab[rowsA(lo):], lda, bb, ldb, 0, cb[lo*n:], n)
		} else {
			gemm(ta, tb, m, hi-lo, k, ab, lda, bb[colsB(lo):], ldb, 0, cb[lo:], n)
		}
	})
}

// gemmOperand returns x as a [batch, cross, contracting] matrix stack
// (kLast true) or a [batch, contracting, cross] one (false), copying only
// when x's axes are in neither order.
func gemmOperand[T float](x []T, s shapes.Shape, batchAxes, contractingAxes []int) (_ []T, kLast bool) {
	isBatch := make([]bool, s.Rank())
	isContracting := make([]bool, s.Rank())
	for _, a := range batchAxes {
		isBatch[a] = true
	}
	for _, a := range contractingAxes {
		isContracting[a] = true
	}
	var cross []int
	for a := range s.Rank() {
		if !isBatch[a] && !isContracting[a] {
			cross = append(cross, a)
		}
	}
	bck := slices.Concat(batchAxes, cross, contractingAxes)
	if isIdentity(bck) {
		return x, true
	}
	if isIdentity(slices.Concat(batchAxes, contractingAxes, cross)) {
		return x, false
	}
	return transposed(x, s.Dimensions, bck), true
}

func isIdentity(perm []int) bool {
	for i, p := range perm {
		if i != p {
			return false
		}
	}
	return true
}

// transposed returns a new array holding x (dims) with its axes in the
// order perm: out axis i is x's axis perm[i].
func transposed[T float](x []T, dims []int, perm []int) []T {
	out := make([]T, len(x))
	if len(x) == 0 {
		return out
	}
	inStr := rowMajorStrides(dims)
	r := len(perm)
	outDims := make([]int, r)
	srcStr := make([]int, r)
	for i, a := range perm {
		outDims[i], srcStr[i] = dims[a], inStr[a]
	}
	last := outDims[r-1]
	ls := srcStr[r-1]
	rows := len(x) / last
	parallelChunks(rows, 256, func(r0, r1 int) {
		idx := make([]int, r-1)
		// Position of row r0 in the outer axes.
		rem := r0
		for i := r - 2; i >= 0; i-- {
			idx[i] = rem % outDims[i]
			rem /= outDims[i]
		}
		for row := r0; row < r1; row++ {
			src := 0
			for i := range r - 1 {
				src += idx[i] * srcStr[i]
			}
			dst := out[row*last : (row+1)*last]
			for j := range dst {
				dst[j] = x[src+j*ls]
			}
			for i := r - 2; i >= 0; i-- {
				idx[i]++
				if idx[i] < outDims[i] {
					break
				}
				idx[i] = 0
			}
		}
	})
	return out
}

// rowMajorStrides returns the element strides of a row-major array.
func rowMajorStrides(dims []int) []int {
	s := make([]int, len(dims))
	acc := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= dims[i]
	}
	return s
}

// workers is the number of goroutines a native kernel uses.
func workers() int { return runtime.GOMAXPROCS(0) }

// parallelFor runs fn(0..n-1) on up to workers() goroutines.
func parallelFor(n int, fn func(int)) {
	w := min(workers(), n)
	if w <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// parallelChunks splits [0, n) into chunks of at least minChunk and runs
// fn on them in parallel.
func parallelChunks(n, minChunk int, fn func(lo, hi int)) {
	parts := max(1, min(workers()*4, n/max(minChunk, 1)))
	parallelFor(parts, func(i int) {
		fn(i*n/parts, (i+1)*n/parts)
	})
}

// registerNative records which native kernels a simplego backend created
// by the adapter uses.
func registerNative(inner backends.Backend, mode nativeMode) {
	mode.elem = mode.elem && checkInternals() == nil
	if sb, ok := inner.(*simplego.Backend); ok && (mode.dot || mode.conv || mode.elem) {
		nativeBackends.Store(sb, mode)
	}
}
