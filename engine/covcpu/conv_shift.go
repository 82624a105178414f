package covcpu

import (
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The shifted im2col: when the last spatial axis has stride 1 and no input
// dilation (every convolution of a U-Net's forward pass and its input
// gradient), the patches of the kL kernel positions along that axis are
// the same rows shifted by one kernel step. So the patches are built for
// the other kernel axes only, over an output grid whose last axis is
// extended by the kernel's reach (Wext = W + (kL−1)·dilation), and the
// product is kL gemms, each reading the patches at its shift:
//
//	out[o][y, w] = Σ_kl Σ_(c,k') w[o][(c,k',kl)] · patches[(c,k')][y, w + kl·dilation]
//
// The patches then take (Wext/W)/kL of the plain im2col's memory writes
// (0.35 for a 3x3x3 kernel over 32 columns), for the same gemm work plus
// the extended grid's (Wext−W)/W. The columns past W of each row are
// computed and dropped.

// nativeShiftCalls and nativeTShiftCalls count the shifted im2col's runs
// and the transposed one's, for tests that must know they ran.
var nativeShiftCalls, nativeTShiftCalls atomic.Int64

// lastAxis splits a convolution's spatial axes into the last, along which
// the shifted im2cols shift, and the others.
type lastAxis struct {
	padLow, inW int // the last axis' low padding and input size
	inStr       int // the input's element stride along the last axis
	nkOuter     int // kernel positions of the other spatial axes
	nsOuter     int // output positions of the other spatial axes
	kOuterDims  []int
	sOuterDims  []int
}

func newLastAxis(c *convPlan, xs shapes.Shape, p *sgConvParams, axes backends.ConvolveAxesConfig) lastAxis {
	last := len(c.sDims) - 1
	return lastAxis{
		padLow: p.paddings[last][0], inW: xs.Dimensions[axes.InputSpatial[last]],
		inStr:      rowMajorStrides(xs.Dimensions)[axes.InputSpatial[last]],
		kOuterDims: c.kDims[:last], sOuterDims: c.sDims[:last],
		nkOuter: c.nk / c.kDims[last], nsOuter: c.ns / c.sDims[last],
	}
}

// shiftPlan is the part of a convPlan the shifted im2col needs.
type shiftPlan struct {
	lastAxis
	kL, dil     int // kernel size and dilation along the last axis
	wOut, wExt  int // output size along the last axis, and extended
	rowsPerTile int // outer output positions per tile
	patchRows   int // channels·nkOuter
}

// planShift returns the shifted im2col's plan for c, or nil when the
// convolution does not qualify (see above) or the extended last axis would
// add more than a quarter to the gemms' work.
func planShift(c *convPlan, xs shapes.Shape, p *sgConvParams, axes backends.ConvolveAxesConfig, elemSize int) *shiftPlan {
	n := len(c.sDims)
	if n == 0 || c.transposed {
		return nil
	}
	last := n - 1
	kL := c.kDims[last]
	if kL < 2 || at(p.strides, last) != 1 || at(p.inputDilations, last) != 1 {
		return nil
	}
	sp := &shiftPlan{
		kL: kL, dil: at(p.kernelDilations, last), wOut: c.sDims[last],
		lastAxis: newLastAxis(c, xs, p, axes),
	}
	sp.wExt = sp.wOut + (kL-1)*sp.dil
	if 4*(sp.wExt-sp.wOut) > sp.wOut {
		// The extended columns would add more than a quarter to the gemms.
		return nil
	}
	sp.patchRows = c.channels * sp.nkOuter
	if !gemmFits(sp.patchRows, sp.nsOuter*sp.wExt, c.outChannels) {
		return nil
	}
	// Tiles of whole rows: the patches within the budget, enough tiles to
	// keep every worker busy.
	perRow := sp.patchRows * sp.wExt * elemSize
	sp.rowsPerTile = max(1, min(sp.nsOuter, patchBudget/perRow))
	if tiles := c.batch * ceilDiv(sp.nsOuter, sp.rowsPerTile); tiles < 2*workers() {
		sp.rowsPerTile = max(1, min(sp.rowsPerTile, ceilDiv(sp.nsOuter, ceilDiv(2*workers(), c.batch))))
	}
	return sp
}

// convShift computes the planned convolution of x with kernel w into out
// by the shifted im2col.
func convShift[T float](c *convPlan, x, w, out []T, flip bool) {
	nativeShiftCalls.Add(1)
	sp := c.shift
	wm, pooled := packKernel(c, w, flip)
	// The kernel as kL matrices [outChannels][channels·nkOuter], one per
	// position along the last axis.
	ws := getBuf[T](sp.kL * c.outChannels * sp.patchRows)
	for kl := range sp.kL {
		a := ws[kl*c.outChannels*sp.patchRows:]
		for o := range c.outChannels {
			row := wm[o*c.nr:]
			dst := a[o*sp.patchRows : (o+1)*sp.patchRows]
			for r := range dst {
				dst[r] = row[r*sp.kL+kl]
			}
		}
	}
	if pooled {
		putBuf(wm)
	}
	forTiles(c.batch, sp.nsOuter, sp.rowsPerTile, func(b, y0, y1 int) {
		cols := (y1 - y0) * sp.wExt
		reach := (sp.kL - 1) * sp.dil
		buf := getBuf[T](sp.patchRows*cols + reach + c.outChannels*cols)
		patches, acc := buf[:sp.patchRows*cols+reach], buf[sp.patchRows*cols+reach:]
		fillShifted(c, patches, x, b, y0, y1)
		clear(patches[sp.patchRows*cols:])
		for kl := range sp.kL {
			var beta T
			if kl > 0 {
				beta = 1
			}
			a := ws[kl*c.outChannels*sp.patchRows:]
			gemm(false, false, c.outChannels, cols, sp.patchRows, a, sp.patchRows, patches[kl*sp.dil:], cols, beta, acc, cols)
		}
		scatterShifted(c, out, acc, b, y0, y1)
		putBuf(buf)
	})
	putBuf(ws)
}

// fillShifted writes the shifted patches of example b for outer output
// positions [y0, y1): row (channel, outer kernel position), column (outer
// position − y0)·wExt + e for e in [0, wExt), the input element at
// position e − padLow of the last axis (zero outside the input).
func fillShifted[T float](c *convPlan, p, x []T, b, y0, y1 int) {
	sp := c.shift
	last := len(c.sDims) - 1
	cols := (y1 - y0) * sp.wExt
	k, y := make([]int, last), make([]int, last)
	// The input positions e − padLow inside [0, inW): e in [lo, hi).
	lo, hi := max(0, sp.padLow), min(sp.wExt, sp.inW+sp.padLow)
	for r := range sp.patchRows {
		ch, ko := r/sp.nkOuter, r%sp.nkOuter
		unflatten(k, sp.kOuterDims, ko)
		unflatten(y, sp.sOuterDims, y0)
		row := p[r*cols : (r+1)*cols]
		for j := 0; j < cols; j += sp.wExt {
			off, inside := outerSource(c, k, y, b*c.inBatch+ch*c.inChannel)
			extendedRun(row[j:j+sp.wExt], x, off, inside, lo, hi, sp.padLow, sp.inStr)
			increment(y, sp.sOuterDims)
		}
	}
}

// forTiles runs fn in parallel on every example b < batch and tile
// [y0, y1) of perTile of the n outer output positions.
func forTiles(batch, n, perTile int, fn func(b, y0, y1 int)) {
	tiles := ceilDiv(n, perTile)
	parallelFor(batch*tiles, func(item int) {
		b, t := item/tiles, item%tiles
		y0 := t * perTile
		fn(b, y0, min(n, y0+perTile))
	})
}

// outerSource returns base plus the input offsets that the outer kernel
// position k meets at the outer output position y (every spatial axis but
// the last), and false if one of them lies outside the input.
func outerSource(c *convPlan, k, y []int, base int) (int, bool) {
	for i := range k {
		v := c.src[i][k[i]*c.sDims[i]+y[i]]
		if v < 0 {
			return 0, false
		}
		base += v
	}
	return base, true
}

// extendedRun fills dst, a run along an extended last axis, from the input
// row at off: position e holds the input element at e − padLow (elements
// inStr apart), inside the input for e in [lo, hi); zeros elsewhere, and
// everywhere when the row lies outside the input (!inside).
func extendedRun[T float](dst, x []T, off int, inside bool, lo, hi, padLow, inStr int) {
	if !inside || hi <= lo {
		clear(dst)
		return
	}
	clear(dst[:lo])
	clear(dst[hi:])
	start := off + (lo-padLow)*inStr
	part := dst[lo:hi]
	if inStr == 1 {
		copy(part, x[start:start+len(part)])
		return
	}
	for q := range part {
		part[q] = x[start+q*inStr]
	}
}

// scatterShifted writes acc, the [outChannels][(y1−y0)·wExt] product for
// example b, to out, dropping each row's columns past wOut.
func scatterShifted[T float](c *convPlan, out, acc []T, b, y0, y1 int) {
	sp := c.shift
	last := len(c.sDims) - 1
	cols := (y1 - y0) * sp.wExt
	lastStride := c.outSpatial[last]
	y := make([]int, last)
	for o := range c.outChannels {
		base := b*c.outBatch + o*c.outChannel
		row := acc[o*cols : (o+1)*cols]
		unflatten(y, sp.sOuterDims, y0)
		for j := 0; j < cols; j += sp.wExt {
			off := base
			for i, yi := range y {
				off += yi * c.outSpatial[i]
			}
			src := row[j : j+sp.wOut]
			if lastStride == 1 {
				copy(out[off:off+sp.wOut], src)
			} else {
				for q, v := range src {
					out[off+q*lastStride] = v
				}
			}
			increment(y, sp.sOuterDims)
		}
	}
}

// The transposed shifted im2col is the same idea for convolutions planned
// transposed (convPlan.transposed: the kernel's last axis longer than the
// output's, as in the kernel gradient, whose "kernel" is the output
// gradient and whose "output" is the weight's 3x3x3): when the output's
// last axis has stride 1 and neither dilation, the input element that
// kernel position kl meets at output position sl along the last axis is at
// e = kl + sl of the extended kernel axis (E = kL + sL − 1 positions), so
//
//	out[o][y, sl] = Σ_(c,k',e) A[o][(c,k',e)] · patches[y][(c,k',e) + sl]
//
// with A the kernel extended by zeros past kL and patches built once over
// e: sL gemms read them shifted by sl. The patches take E/(kL·sL) of the
// transposed im2col's writes (0.35 for 3 output positions over 32).

// The zeros that extend the kernel meet real input elements (past each
// output's window), so an infinite or NaN input would spread NaN where
// the plain im2col computes finite values: convNative takes the
// transposed shifted im2col only when every input element is finite.

// allFinite reports whether x holds neither infinities nor NaN.
func allFinite[T float](x []T) bool {
	for _, v := range x {
		if v-v != 0 { // NaN for ±Inf and NaN
			return false
		}
	}
	return true
}

// tshiftPlan is the part of a convPlan the transposed shifted im2col
// needs.
type tshiftPlan struct {
	lastAxis
	sL, kL, ext int // output and kernel size along the last axis; ext = kL + sL − 1
	blocks      int // (channel, outer kernel position) blocks: channels·nkOuter
	rowsPerTile int // rows, (example, outer output position) pairs, per tile
	blocksPer   int // blocks per gemm (a chunk of the contraction)
}

// planTShift returns the transposed shifted im2col's plan for c, or nil
// when the convolution does not qualify (see above) or the extended kernel
// axis would add more than a quarter to the gemms' work.
func planTShift(c *convPlan, xs shapes.Shape, p *sgConvParams, axes backends.ConvolveAxesConfig, elemSize int) *tshiftPlan {
	n := len(c.sDims)
	if n == 0 || !c.transposed {
		return nil
	}
	last := n - 1
	sL, kL := c.sDims[last], c.kDims[last]
	if sL < 2 || at(p.strides, last) != 1 || at(p.inputDilations, last) != 1 || at(p.kernelDilations, last) != 1 ||
		4*(sL-1) > kL {
		return nil
	}
	sp := &tshiftPlan{
		sL: sL, kL: kL, ext: kL + sL - 1,
		lastAxis: newLastAxis(c, xs, p, axes),
	}
	sp.blocks = c.channels * sp.nkOuter
	if !gemmFits(sp.blocks*sp.ext, sp.nsOuter, c.outChannels) {
		return nil
	}
	// The rows, (example, outer output position) pairs, in one tile per
	// worker: the gemms' n is then as large as it can be (the kernel
	// gradient has few outer output positions, 9 for a 3x3x3 weight, but
	// as many examples as the layer has input channels); the contraction
	// in chunks of blocks that keep the patches within the budget.
	sp.rowsPerTile = max(1, min(ceilDiv(c.batch*sp.nsOuter, workers()), patchBudget/(sp.ext*elemSize)))
	sp.blocksPer = max(1, min(sp.blocks, patchBudget/(sp.rowsPerTile*sp.ext*elemSize)))
	return sp
}

// convTShift computes the planned convolution of x with kernel w into out
// by the transposed shifted im2col.
func convTShift[T float](c *convPlan, x, w, out []T, flip bool) {
	nativeTShiftCalls.Add(1)
	sp := c.tshift
	wm, pooled := packKernel(c, w, flip)
	// A: the kernel's rows [outChannels][blocks·ext], zero past kL in each
	// block.
	k := sp.blocks * sp.ext
	a := getBuf[T](c.outChannels * k)
	for o := range c.outChannels {
		for bl := range sp.blocks {
			dst := a[o*k+bl*sp.ext : o*k+(bl+1)*sp.ext]
			copy(dst, wm[o*c.nr+bl*sp.kL:o*c.nr+(bl+1)*sp.kL])
			clear(dst[sp.kL:])
		}
	}
	if pooled {
		putBuf(wm)
	}
	total := c.batch * sp.nsOuter
	parallelFor(ceilDiv(total, sp.rowsPerTile), func(t int) {
		y0 := t * sp.rowsPerTile
		y1 := min(total, y0+sp.rowsPerTile)
		rows := y1 - y0
		chunk := sp.blocksPer * sp.ext
		buf := getBuf[T](rows*chunk + sp.sL - 1 + sp.sL*c.outChannels*rows)
		patches, acc := buf[:rows*chunk+sp.sL-1], buf[rows*chunk+sp.sL-1:]
		for b0 := 0; b0 < sp.blocks; b0 += sp.blocksPer {
			b1 := min(sp.blocks, b0+sp.blocksPer)
			kc := (b1 - b0) * sp.ext
			fillTShifted(c, patches[:rows*kc], x, y0, y1, b0, b1)
			clear(patches[rows*kc : rows*kc+sp.sL-1])
			var beta T
			if b0 > 0 {
				beta = 1
			}
			for sl := range sp.sL {
				gemm(false, true, c.outChannels, rows, kc, a[b0*sp.ext:], k, patches[sl:], kc, beta,
					acc[sl*c.outChannels*rows:], rows)
			}
		}
		scatterTShifted(c, out, acc, y0, y1)
		putBuf(buf)
	})
	putBuf(a)
}

// fillTShifted writes the transposed shifted patches of rows [g0, g1)
// (row g: example g/nsOuter, outer output position g%nsOuter) and blocks
// [b0, b1): row g − g0, column (block − b0)·ext + e, the input element at
// position e − padLow of the last axis (zero outside the input).
func fillTShifted[T float](c *convPlan, p, x []T, g0, g1, b0, b1 int) {
	sp := c.tshift
	last := len(c.sDims) - 1
	cols := (b1 - b0) * sp.ext
	k, y := make([]int, last), make([]int, last)
	lo, hi := max(0, sp.padLow), min(sp.ext, sp.inW+sp.padLow)
	unflatten(y, sp.sOuterDims, g0%sp.nsOuter)
	for g := g0; g < g1; g++ {
		b := g / sp.nsOuter
		dstRow := p[(g-g0)*cols : (g-g0+1)*cols]
		for bl := b0; bl < b1; bl++ {
			ch, ko := bl/sp.nkOuter, bl%sp.nkOuter
			unflatten(k, sp.kOuterDims, ko)
			off, inside := outerSource(c, k, y, b*c.inBatch+ch*c.inChannel)
			extendedRun(dstRow[(bl-b0)*sp.ext:(bl-b0+1)*sp.ext], x, off, inside, lo, hi, sp.padLow, sp.inStr)
		}
		increment(y, sp.sOuterDims) // wraps to the next example's first position
	}
}

// scatterTShifted writes acc, the [sL][outChannels][g1−g0] products for
// rows [g0, g1), to out.
func scatterTShifted[T float](c *convPlan, out, acc []T, g0, g1 int) {
	sp := c.tshift
	last := len(c.sDims) - 1
	rows := g1 - g0
	y := make([]int, last)
	for o := range c.outChannels {
		unflatten(y, sp.sOuterDims, g0%sp.nsOuter)
		for g := g0; g < g1; g++ {
			off := (g/sp.nsOuter)*c.outBatch + o*c.outChannel
			for i, yi := range y {
				off += yi * c.outSpatial[i]
			}
			for sl := range sp.sL {
				out[off+sl*c.outSpatial[last]] = acc[(sl*c.outChannels+o)*rows+g-g0]
			}
			increment(y, sp.sOuterDims)
		}
	}
}
