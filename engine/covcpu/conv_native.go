package covcpu

import (
	"errors"
	"runtime"
	"slices"
	"sync"
	"weak"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// patchBudget is the size in bytes of the patch buffer one worker fills
// and multiplies at a time in the native convolution: large enough for
// gemm to run near its peak, small enough that the transient memory stays
// a few MiB per core whatever the layer.
const patchBudget = 8 << 20

// execConvGeneral is the ConvGeneral executor installed in simplego's table.
func execConvGeneral(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	flip := isFlipped(node)
	fallback := func() (*simplego.Buffer, error) {
		if flip {
			return nil, errors.New("covcpu: a convolution with a flipped kernel cannot run on simplego's kernel")
		}
		return simplegoConv(backend, node, inputs, owned)
	}
	if !modeOf(backend).conv || !convInternalsOK(node) {
		return fallback()
	}
	p := nodeData[sgConvParams](node)
	if p.channelGroupCount > 1 || p.batchGroupCount > 1 {
		return fallback()
	}
	xs, _ := backend.BufferShape(inputs[0])
	ks, _ := backend.BufferShape(inputs[1])
	outShape := nodeShape(node)
	if xs.DType != ks.DType || xs.Size() == 0 || ks.Size() == 0 || outShape.Size() == 0 {
		return fallback()
	}
	plan := newConvPlan(xs, ks, outShape, p, xs.DType.Size())
	if plan == nil {
		return fallback()
	}
	xf, _ := backend.BufferData(inputs[0])
	kf, _ := backend.BufferData(inputs[1])
	nativeConvCalls.Add(1)
	if flip {
		nativeFlippedCalls.Add(1)
	}
	switch xs.DType {
	case dtypes.Float32:
		out := backend.NewBuffer(outShape)
		of, _ := backend.BufferData(out)
		convNative(plan, xf.([]float32), kf.([]float32), of.([]float32), flip)
		return out, nil
	case dtypes.Float64:
		out := backend.NewBuffer(outShape)
		of, _ := backend.BufferData(out)
		convNative(plan, xf.([]float64), kf.([]float64), of.([]float64), flip)
		return out, nil
	}
	return fallback()
}

// flipped holds the ConvGeneral nodes whose kernel is to be read with its
// spatial axes reversed: the adapter's builder emits them in place of a
// Reverse of the kernel followed by a convolution (GoMLX's input gradient),
// which saves a Gather as large as the kernel. Entries go when their node
// is collected.
var flipped sync.Map // weak.Pointer[simplego.Node] → struct{}

// markFlipped records that node's kernel is to be flipped.
func markFlipped(node *simplego.Node) {
	wp := weak.Make(node)
	flipped.Store(wp, struct{}{})
	runtime.AddCleanup(node, func(wp weak.Pointer[simplego.Node]) { flipped.Delete(wp) }, wp)
}

// isFlipped reports whether markFlipped recorded node.
func isFlipped(node *simplego.Node) bool {
	_, ok := flipped.Load(weak.Make(node))
	return ok
}

// convPlan is a convolution brought to the matrix product
//
//	out[b][o][s] = Σ_r w[o][r] · patches_b[r][s]
//
// with r = (c, k) running over input channels c and kernel positions k
// (row-major), s over output positions, and patches_b[(c,k)][s] the input
// element of example b and channel c that kernel position k meets at
// output position s (zero in padding and between dilated inputs).
type convPlan struct {
	batch, channels, outChannels int
	nk, ns, nr                   int   // kernel positions, output positions, rows (channels·nk)
	kDims, sDims                 []int // kernel and output spatial dimensions
	// src[i][k·sDims[i]+y] is the input offset (element stride included) of
	// spatial axis i for kernel index k and output index y, or -1 outside
	// the input.
	src                  [][]int
	inBatch, inChannel   int   // input strides of the batch and channel axes
	kOut, kIn            int   // kernel strides of its output and input channel axes
	kSpatial             []int // kernel strides of its spatial axes
	outBatch, outChannel int   // output strides of the batch and channel axes
	outSpatial           []int // output strides of its spatial axes
	cols, rows           int   // output positions per tile, rows per contraction chunk
	// lastLo[k], lastHi[k]: output indices y of the last spatial axis whose
	// source is inside the input for kernel index k, when that source is
	// affine in y (no input dilation on the last axis; lastStep apart);
	// nil otherwise.
	lastLo, lastHi []int
	lastStep       int
	direct         bool // out is [.., channel, spatial...] row-major in its spatial axes: gemm writes it in place
	// transposed fills the patches as [s][r] (fillPatchesT) instead of
	// [r][s]: chosen when the kernel's last axis is longer than the
	// output's, as in the kernel gradient GoMLX emits (the output gradient
	// is the "kernel", the weight's 3x3x3 the "output"), where [r][s] rows
	// would be filled three elements at a time. lastT[y·kDims[last]+k] is
	// src[last][k·sDims[last]+y].
	transposed bool
	lastT      []int
	// lastTLo[y], lastTHi[y]: kernel indices k of the last axis whose
	// source is inside the input for output index y, when that source is
	// affine in k (no input dilation on the last axis; lastTStep apart);
	// nil otherwise.
	lastTLo, lastTHi []int
	lastTStep        int
	// shift, when set, computes the convolution by the shifted im2col
	// (conv_shift.go) instead.
	shift *shiftPlan
	// tshift, when set, computes it by the transposed shifted im2col.
	tshift *tshiftPlan
}

// newConvPlan plans the convolution of an input xs with a kernel ks into
// outShape for elements of elemSize bytes, or returns nil if gemm's int
// arguments would overflow.
func newConvPlan(xs, ks, outShape shapes.Shape, p *sgConvParams, elemSize int) *convPlan {
	axes := p.axes
	n := len(axes.InputSpatial)
	inStr, kStr, outStr := rowMajorStrides(xs.Dimensions), rowMajorStrides(ks.Dimensions), rowMajorStrides(outShape.Dimensions)
	c := &convPlan{
		batch:       xs.Dimensions[axes.InputBatch],
		channels:    xs.Dimensions[axes.InputChannels],
		outChannels: ks.Dimensions[axes.KernelOutputChannels],
		nk:          1, ns: 1,
		kDims: make([]int, n), sDims: make([]int, n), src: make([][]int, n),
		inBatch: inStr[axes.InputBatch], inChannel: inStr[axes.InputChannels],
		kOut: kStr[axes.KernelOutputChannels], kIn: kStr[axes.KernelInputChannels],
		kSpatial: make([]int, n), outSpatial: make([]int, n),
		outBatch: outStr[axes.OutputBatch], outChannel: outStr[axes.OutputChannels],
	}
	for i := range n {
		kd, sd := ks.Dimensions[axes.KernelSpatial[i]], outShape.Dimensions[axes.OutputSpatial[i]]
		c.kDims[i], c.sDims[i] = kd, sd
		c.kSpatial[i], c.outSpatial[i] = kStr[axes.KernelSpatial[i]], outStr[axes.OutputSpatial[i]]
		c.nk *= kd
		c.ns *= sd
		c.src[i] = axisSources(xs.Dimensions[axes.InputSpatial[i]], inStr[axes.InputSpatial[i]], kd, sd,
			at(p.strides, i), at(p.inputDilations, i), at(p.kernelDilations, i), p.paddings[i][0])
	}
	c.nr = c.channels * c.nk
	if n > 0 && at(p.inputDilations, n-1) == 1 {
		last := n - 1
		kd, sd := c.kDims[last], c.sDims[last]
		c.lastLo, c.lastHi = make([]int, kd), make([]int, kd)
		c.lastStep = at(p.strides, last) * inStr[axes.InputSpatial[last]]
		for k := range kd {
			lo, hi := sd, sd
			for y := range sd {
				if c.src[last][k*sd+y] >= 0 {
					if lo == sd {
						lo = y
					}
					hi = y + 1
				}
			}
			if lo == sd {
				lo, hi = 0, 0
			}
			c.lastLo[k], c.lastHi[k] = lo, hi
		}
	}
	if n > 0 && c.kDims[n-1] > c.sDims[n-1] {
		last := n - 1
		kd, sd := c.kDims[last], c.sDims[last]
		c.transposed, c.lastT = true, make([]int, kd*sd)
		for k := range kd {
			for y := range sd {
				c.lastT[y*kd+k] = c.src[last][k*sd+y]
			}
		}
		if at(p.inputDilations, last) == 1 {
			c.lastTStep = at(p.kernelDilations, last) * inStr[axes.InputSpatial[last]]
			c.lastTLo, c.lastTHi = make([]int, sd), make([]int, sd)
			for y := range sd {
				c.lastTLo[y], c.lastTHi[y] = insideRange(c.lastT[y*kd : (y+1)*kd])
			}
		}
	}
	c.direct = n > 0 && slices.Equal(c.outSpatial, rowMajorStrides(c.sDims)) && c.outChannel >= c.ns
	if n == 0 {
		c.direct = false
	}
	if !gemmFits(c.nr, c.ns, c.outChannels) {
		return nil
	}
	// Tiles: all rows if a tile of at least 64 columns fits the budget,
	// else chunks of rows (partial sums); enough tiles to keep every
	// worker busy.
	perCol := c.nr * elemSize
	c.cols = max(1, min(c.ns, patchBudget/perCol))
	if c.cols < min(c.ns, 64) {
		c.cols = min(c.ns, 64)
	}
	if tiles := c.batch * ceilDiv(c.ns, c.cols); tiles < 2*workers() {
		per := ceilDiv(c.ns, ceilDiv(2*workers(), c.batch))
		if per >= 64 {
			c.cols = min(c.cols, per)
		}
	}
	c.rows = max(1, min(c.nr, patchBudget/(c.cols*elemSize)))
	c.shift = planShift(c, xs, p, axes, elemSize)
	c.tshift = planTShift(c, xs, p, axes, elemSize)
	return c
}

// insideRange returns the first index of t that is not −1 and one past the
// last (0, 0 when all are).
func insideRange(t []int) (lo, hi int) {
	lo, hi = -1, 0
	for i, v := range t {
		if v >= 0 {
			if lo < 0 {
				lo = i
			}
			hi = i + 1
		}
	}
	if lo < 0 {
		return 0, 0
	}
	return lo, hi
}

// at returns v[i], or 1 if v is too short (an unset stride or dilation).
func at(v []int, i int) int {
	if i < len(v) && v[i] > 0 {
		return v[i]
	}
	return 1
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// axisSources tabulates, for one spatial axis of an input of n elements
// (element stride stride), where kernel index k meets output index y: the
// position in the dilated, padded input is y·step + k·kernelDil − padLow,
// which holds an input element only if it is inside and a multiple of
// inputDil.
func axisSources(n, stride, nk, ns, step, inputDil, kernelDil, padLow int) []int {
	t := make([]int, nk*ns)
	dilated := (n-1)*inputDil + 1
	for k := range nk {
		for y := range ns {
			pos := y*step + k*kernelDil - padLow
			v := -1
			if pos >= 0 && pos < dilated && pos%inputDil == 0 {
				v = pos / inputDil * stride
			}
			t[k*ns+y] = v
		}
	}
	return t
}

// convNative computes the planned convolution of x with kernel w into out.
func convNative[T float](c *convPlan, x, w, out []T, flip bool) {
	if c.shift != nil {
		convShift(c, x, w, out, flip)
		return
	}
	if c.tshift != nil && allFinite(x) {
		convTShift(c, x, w, out, flip)
		return
	}
	wm, pooled := packKernel(c, w, flip)
	if pooled {
		defer putBuf(wm)
	}
	tilesPerBatch := ceilDiv(c.ns, c.cols)
	parallelFor(c.batch*tilesPerBatch, func(item int) {
		b, t := item/tilesPerBatch, item%tilesPerBatch
		s0 := t * c.cols
		s1 := min(c.ns, s0+c.cols)
		cols := s1 - s0
		accLen := c.outChannels * cols
		if c.direct {
			accLen = 0
		}
		buf := getBuf[T](c.rows*cols + accLen)
		patches, acc, ldc := buf[:c.rows*cols], buf[c.rows*cols:], cols
		if c.direct {
			acc, ldc = out[b*c.outBatch+s0:], c.outChannel
		}
		for r0 := 0; r0 < c.nr; r0 += c.rows {
			r1 := min(c.nr, r0+c.rows)
			var beta T
			if r0 > 0 {
				beta = 1
			}
			if c.transposed {
				fillPatchesT(c, patches, x, b, r0, r1, s0, s1)
				gemm(false, true, c.outChannels, cols, r1-r0, wm[r0:], c.nr, patches, r1-r0, beta, acc, ldc)
			} else {
				fillPatches(c, patches, x, b, r0, r1, s0, s1)
				gemm(false, false, c.outChannels, cols, r1-r0, wm[r0:], c.nr, patches, cols, beta, acc, ldc)
			}
		}
		if !c.direct {
			scatter(c, out, acc, b, s0, s1)
		}
		putBuf(buf)
	})
}

// packKernel returns the kernel as a row-major [outChannels][nr] matrix
// whose rows follow the patches' (channel, kernel position) order: w
// itself when it is laid out so already (the forward convolution and the
// kernel gradient), else a copy from the pool (the input gradient, whose
// kernel has its channel axes swapped), taken nk contiguous elements at a
// time when the kernel's spatial axes are row-major and innermost. With
// flip, kernel positions are reversed on every spatial axis.
func packKernel[T float](c *convPlan, w []T, flip bool) (wm []T, pooled bool) {
	innerK := slices.Equal(c.kSpatial, rowMajorStrides(c.kDims))
	if innerK && !flip && c.kIn == c.nk && (c.kOut == c.nr || c.outChannels == 1) {
		return w[:c.outChannels*c.nr], false
	}
	wm = getBuf[T](c.outChannels * c.nr)
	if innerK {
		parallelFor(c.outChannels, func(o int) {
			for ch := range c.channels {
				src := w[o*c.kOut+ch*c.kIn : o*c.kOut+ch*c.kIn+c.nk]
				dst := wm[o*c.nr+ch*c.nk : o*c.nr+(ch+1)*c.nk]
				if flip {
					// Row-major reversal on every axis is reversal of the flat order.
					for i, v := range src {
						dst[c.nk-1-i] = v
					}
				} else {
					copy(dst, src)
				}
			}
		})
		return wm, true
	}
	k := make([]int, len(c.kDims))
	for ch := range c.channels {
		clear(k)
		for kf := range c.nk {
			off := ch * c.kIn
			for i, ki := range k {
				if flip {
					ki = c.kDims[i] - 1 - ki
				}
				off += ki * c.kSpatial[i]
			}
			for o := range c.outChannels {
				wm[o*c.nr+ch*c.nk+kf] = w[off+o*c.kOut]
			}
			increment(k, c.kDims)
		}
	}
	return wm, true
}

// increment advances a row-major multi-index idx within dims.
func increment(idx, dims []int) {
	for i := len(idx) - 1; i >= 0; i-- {
		idx[i]++
		if idx[i] < dims[i] {
			return
		}
		idx[i] = 0
	}
}

// unflatten writes the row-major multi-index of flat within dims to idx.
func unflatten(idx, dims []int, flat int) {
	for i := len(dims) - 1; i >= 0; i-- {
		idx[i] = flat % dims[i]
		flat /= dims[i]
	}
}

// fillPatches writes rows [r0, r1) and output positions [s0, s1) of
// example b's patches to p, a row-major [r1-r0][s1-s0] matrix.
func fillPatches[T float](c *convPlan, p, x []T, b, r0, r1, s0, s1 int) {
	n := len(c.sDims)
	cols := s1 - s0
	if n == 0 {
		for r := r0; r < r1; r++ {
			p[(r-r0)*cols] = x[b*c.inBatch+r*c.inChannel]
		}
		return
	}
	k, y := make([]int, n), make([]int, n)
	last, lastDim := n-1, c.sDims[n-1]
	for r := r0; r < r1; r++ {
		ch, kf := r/c.nk, r%c.nk
		unflatten(k, c.kDims, kf)
		unflatten(y, c.sDims, s0)
		base := b*c.inBatch + ch*c.inChannel
		tab := c.src[last][k[last]*lastDim : (k[last]+1)*lastDim]
		row := p[(r-r0)*cols : (r-r0+1)*cols]
		for j := 0; j < cols; {
			run := min(lastDim-y[last], cols-j)
			off, inside := base, true
			for i := range last {
				v := c.src[i][k[i]*c.sDims[i]+y[i]]
				if v < 0 {
					inside = false
					break
				}
				off += v
			}
			dst := row[j : j+run]
			if !inside {
				clear(dst)
			} else if c.lastLo != nil {
				// Affine source: zeros, a strided (often contiguous) copy, zeros.
				y0 := y[last]
				lo, hi := max(c.lastLo[k[last]], y0), min(c.lastHi[k[last]], y0+run)
				if hi <= lo {
					clear(dst)
				} else {
					clear(dst[:lo-y0])
					clear(dst[hi-y0:])
					start := off + tab[lo]
					part := dst[lo-y0 : hi-y0]
					if c.lastStep == 1 {
						copy(part, x[start:start+len(part)])
					} else {
						for q := range part {
							part[q] = x[start+q*c.lastStep]
						}
					}
				}
			} else {
				src := tab[y[last] : y[last]+run]
				for q, v := range src {
					if v < 0 {
						dst[q] = 0
					} else {
						dst[q] = x[off+v]
					}
				}
			}
			j += run
			y[last] = lastDim - 1
			increment(y, c.sDims)
		}
	}
}

// fillPatchesT writes the transpose of what fillPatches writes: output
// positions [s0, s1) as rows and patch rows [r0, r1) as columns, a
// row-major [s1-s0][r1-r0] matrix. Its runs follow the kernel's last axis,
// long where the output's is short (see convPlan.transposed). Its inner
// loop repeats fillPatches' on purpose: the same code in generic helper
// functions, which Go does not inline, cost 15 % more CPU time in
// BenchmarkConv3D's layer1 forward+backward.
func fillPatchesT[T float](c *convPlan, q, x []T, b, r0, r1, s0, s1 int) {
	n := len(c.sDims)
	rows := r1 - r0
	last, kl := n-1, c.kDims[n-1]
	k, y := make([]int, n), make([]int, n)
	unflatten(y, c.sDims, s0)
	for s := s0; s < s1; s++ {
		row := q[(s-s0)*rows : (s-s0+1)*rows]
		tab := c.lastT[y[last]*kl : (y[last]+1)*kl]
		ch, kf := r0/c.nk, r0%c.nk
		unflatten(k, c.kDims, kf)
		for j := 0; j < rows; {
			run := min(kl-k[last], rows-j)
			off, inside := b*c.inBatch+ch*c.inChannel, true
			for i := range last {
				v := c.src[i][k[i]*c.sDims[i]+y[i]]
				if v < 0 {
					inside = false
					break
				}
				off += v
			}
			dst := row[j : j+run]
			if inside && c.lastTLo != nil {
				// Affine source: zeros, a strided (often contiguous) copy, zeros.
				k0 := k[last]
				lo, hi := max(c.lastTLo[y[last]], k0), min(c.lastTHi[y[last]], k0+run)
				if hi <= lo {
					clear(dst)
				} else {
					clear(dst[:lo-k0])
					clear(dst[hi-k0:])
					start, part := off+tab[lo], dst[lo-k0:hi-k0]
					if c.lastTStep == 1 {
						copy(part, x[start:start+len(part)])
					} else {
						for e := range part {
							part[e] = x[start+e*c.lastTStep]
						}
					}
				}
			} else if inside {
				for e, v := range tab[k[last] : k[last]+run] {
					if v < 0 {
						dst[e] = 0
					} else {
						dst[e] = x[off+v]
					}
				}
			} else {
				clear(dst)
			}
			j += run
			kf += run
			k[last] = kl - 1
			increment(k, c.kDims)
			if kf == c.nk {
				kf = 0
				ch++
			}
		}
		increment(y, c.sDims)
	}
}

// scatter writes acc, the [outChannels][s1-s0] product for example b, to
// its place in out.
func scatter[T float](c *convPlan, out, acc []T, b, s0, s1 int) {
	n := len(c.sDims)
	cols := s1 - s0
	y := make([]int, n)
	for o := range c.outChannels {
		base := b*c.outBatch + o*c.outChannel
		row := acc[o*cols : (o+1)*cols]
		if n == 0 {
			out[base] = row[0]
			continue
		}
		unflatten(y, c.sDims, s0)
		last, lastDim, lastStride := n-1, c.sDims[n-1], c.outSpatial[n-1]
		for j := 0; j < cols; {
			run := min(lastDim-y[last], cols-j)
			off := base
			for i, yi := range y {
				off += yi * c.outSpatial[i]
			}
			if lastStride == 1 {
				copy(out[off:off+run], row[j:j+run])
			} else {
				for q, v := range row[j : j+run] {
					out[off+q*lastStride] = v
				}
			}
			j += run
			y[last] = lastDim - 1
			increment(y, c.sDims)
		}
	}
}

// freeList keeps scratch slices between kernel runs. Unlike a sync.Pool
// it survives garbage collections, which would otherwise make every
// convolution allocate (and clear) its buffers anew.
type freeList[T float] struct {
	mu   sync.Mutex
	free [][]T
}

// maxFree is how many scratch slices each free list keeps.
const maxFree = 16

var free32 freeList[float32]
var free64 freeList[float64]

func freeListOf[T float]() *freeList[T] {
	var l any = &free32
	if _, ok := any(T(0)).(float64); ok {
		l = &free64
	}
	return l.(*freeList[T])
}

// getBuf returns a scratch slice of n elements (contents undefined): the
// smallest kept slice that is large enough, or a new one.
func getBuf[T float](n int) []T {
	l := freeListOf[T]()
	l.mu.Lock()
	best := -1
	for i, s := range l.free {
		if cap(s) >= n && (best < 0 || cap(s) < cap(l.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		s := l.free[best]
		l.free = slices.Delete(l.free, best, best+1)
		l.mu.Unlock()
		return s[:n]
	}
	l.mu.Unlock()
	return make([]T, n)
}

// putBuf keeps s for getBuf, dropping the smallest kept slice if the list
// is full.
func putBuf[T float](s []T) {
	l := freeListOf[T]()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = append(l.free, s)
	if len(l.free) > maxFree {
		small := 0
		for i, f := range l.free {
			if cap(f) < cap(l.free[small]) {
				small = i
			}
		}
		l.free = slices.Delete(l.free, small, small+1)
	}
}
