package covcpu

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// ConvGeneral fills nil strides and dilations with ones and computes the
// convolution as im2col + one DotGeneral (see convIm2col). Grouped
// convolutions and non-float dtypes are handed to simplego, with the
// defaults filled in.
func (b *Builder) ConvGeneral(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (backends.Op, error) {
	xs, err := b.shape("ConvGeneral", input)
	if err != nil {
		return nil, err
	}
	ks, err := b.shape("ConvGeneral", kernel)
	if err != nil {
		return nil, err
	}
	spatial := max(xs.Rank()-2, 0)
	c := convParams{
		axes:            axes,
		strides:         onesIfEmpty(strides, spatial),
		paddings:        slices.Clone(paddings),
		inputDilations:  onesIfEmpty(inputDilations, spatial),
		kernelDilations: onesIfEmpty(kernelDilations, spatial),
	}
	if len(c.paddings) == 0 {
		c.paddings = make([][2]int, spatial)
	}
	channelGroupCount, batchGroupCount = max(channelGroupCount, 1), max(batchGroupCount, 1)
	out, err := shapeinference.ConvGeneralOp(xs, ks, axes, c.strides, c.paddings,
		c.inputDilations, c.kernelDilations, channelGroupCount, batchGroupCount)
	if err != nil {
		return nil, fmt.Errorf("backend: ConvGeneral: %w", err)
	}
	native := b.nativeConv && channelGroupCount == 1 && batchGroupCount == 1 && isFloat(xs.DType) && ks.DType == xs.DType
	if r, ok := b.reversed[kernel]; ok && native && reversesSpatial(r.axes, axes.KernelSpatial, ks.Dimensions) {
		// The native kernel reads the kernel flipped: no Gather.
		op, err := b.Builder.ConvGeneral(input, r.x, axes, c.strides, c.paddings,
			c.inputDilations, c.kernelDilations, channelGroupCount, batchGroupCount)
		if err != nil {
			return nil, err
		}
		markFlipped(op.(*simplego.Node))
		return op, nil
	}
	if b.directConv || channelGroupCount > 1 || batchGroupCount > 1 || !isFloat(xs.DType) || ks.DType != xs.DType {
		return b.Builder.ConvGeneral(input, kernel, axes, c.strides, c.paddings,
			c.inputDilations, c.kernelDilations, channelGroupCount, batchGroupCount)
	}
	op, err := b.convIm2col(input, kernel, xs, ks, out, c)
	if err != nil {
		return nil, fmt.Errorf("backend: ConvGeneral(input %s, kernel %s, %+v): %w", xs, ks, c, err)
	}
	return op, nil
}

// reversesSpatial reports whether a Reverse of the axes rev (those longer
// than 1) reverses exactly the spatial axes of a kernel (reversing an
// axis of length 1 changes nothing).
func reversesSpatial(rev, spatial, dims []int) bool {
	for _, a := range rev {
		if !slices.Contains(spatial, a) {
			return false
		}
	}
	for _, a := range spatial {
		if dims[a] > 1 && !slices.Contains(rev, a) {
			return false
		}
	}
	return true
}

// isFloat reports whether the adapter's convolution handles dtype; other
// dtypes go to simplego's own convolution.
func isFloat(dtype dtypes.DType) bool {
	return dtype == dtypes.Float32 || dtype == dtypes.Float64
}

// convParams are ConvGeneral's parameters with every default filled in.
type convParams struct {
	axes                            backends.ConvolveAxesConfig
	strides                         []int
	paddings                        [][2]int
	inputDilations, kernelDilations []int
}

// onesIfEmpty returns a copy of v, or n ones if v is empty.
func onesIfEmpty(v []int, n int) []int {
	if len(v) > 0 {
		return slices.Clone(v)
	}
	ones := make([]int, n)
	for i := range ones {
		ones[i] = 1
	}
	return ones
}

// convIm2col computes the convolution in a canonical layout:
//
//	x [B, C, S...] padded (negative padding trims, input dilation is
//	interior padding), w [O, C, K...], result [O, B, P...]
//
// out[o, b, p] = Σ_{c,k} x[b, c, p·stride + k·kernelDilation] · w[o, c, k].
//
// The patches of x are gathered with one strided Slice per position of the
// smaller of the two grids K (kernel positions) and P (output positions),
// each slice spanning the larger grid; they are concatenated and contracted
// with w in a DotGeneral, which simplego runs in parallel. Usually K is
// smaller (one slice per kernel position, each over all outputs); in the
// kernel gradient, whose "kernel" is the output gradient, P is (one slice per
// output position, each over the whole contraction).
//
// The patches take min(|K|, |P|) times the memory of x, so the spanned grid
// is cut into tiles whose patches fit the im2col budget (see planTiles),
// computed one after the other: tiles of P give blocks of the output, which are
// concatenated; tiles of K give partial sums of the contraction, which are
// added.
func (b *Builder) convIm2col(input, kernel backends.Op, xs, ks, outShape shapes.Shape, c convParams) (backends.Op, error) {
	axes := c.axes
	n := len(axes.InputSpatial)
	x, xDims, err := b.permute(input, xs, append([]int{axes.InputBatch, axes.InputChannels}, axes.InputSpatial...))
	if err != nil {
		return nil, err
	}
	w, wDims, err := b.permute(kernel, ks, append([]int{axes.KernelOutputChannels, axes.KernelInputChannels}, axes.KernelSpatial...))
	if err != nil {
		return nil, err
	}
	if x, xDims, err = b.padSpatial(x, xs.DType, xDims, c); err != nil {
		return nil, err
	}
	batch, channels := xDims[0], xDims[1]
	kDims, pDims := wDims[2:], make([]int, n)
	kTotal, pTotal := 1, 1
	for i := range n {
		span := (kDims[i]-1)*c.kernelDilations[i] + 1
		pDims[i] = (xDims[2+i]-span)/c.strides[i] + 1
		if want := outShape.Dimensions[axes.OutputSpatial[i]]; pDims[i] != want {
			return nil, fmt.Errorf("spatial axis %d: im2col gives %d outputs, shape inference %d", i, pDims[i], want)
		}
		kTotal *= kDims[i]
		pTotal *= pDims[i]
	}
	g := &im2col{
		b: b, x: x, w: w, xDims: xDims, wDims: wDims,
		overK: kTotal <= pTotal,
	}
	if g.overK {
		g.partDims, g.partStep, g.spanDims, g.spanStep = kDims, c.kernelDilations, pDims, c.strides
	} else {
		g.partDims, g.partStep, g.spanDims, g.spanStep = pDims, c.strides, kDims, c.kernelDilations
	}
	// Bytes of patches per position of the spanned grid.
	perSpan := int64(batch) * int64(channels) * int64(min(kTotal, pTotal)) * int64(xs.DType.Size())
	plan := planTiles(make([]int, n), g.spanDims, 0, perSpan, b.im2colBudget)

	var res backends.Op
	if g.overK {
		res, err = g.outputBlocks(plan) // [O, B, P...]
	} else {
		res, err = g.contractionSum(plan) // [O, B, P]
		if err == nil {
			res, err = b.Reshape(res, append([]int{wDims[0], batch}, pDims...)...)
		}
	}
	if err != nil {
		return nil, err
	}
	// Result axis for each output axis.
	perm := make([]int, outShape.Rank())
	perm[axes.OutputChannels], perm[axes.OutputBatch] = 0, 1
	for i, axis := range axes.OutputSpatial {
		perm[axis] = 2 + i
	}
	res, _, err = b.permute(res, shapes.Make(xs.DType, append([]int{wDims[0], batch}, pDims...)...), perm)
	return res, err
}

// tile is a box [lo, hi) of the spanned grid whose patches fit the im2col
// budget (a leaf), or such a box cut along axis into parts, in order.
type tile struct {
	lo, hi []int
	axis   int
	parts  []*tile
}

// planTiles cuts the box [lo, hi) of a grid into tiles whose patches, at
// perPos bytes per grid position, fit budget (no limit if budget <= 0). It
// cuts the first axis from axis on that has more than one position into
// slabs of equal thickness (the last may be thinner); when even a slab one
// position thick is too big, it cuts each of them along the next axes. A
// single position is never cut, whatever its size.
func planTiles(lo, hi []int, axis int, perPos, budget int64) *tile {
	t := &tile{lo: lo, hi: hi}
	total := perPos
	for i := range lo {
		total *= int64(hi[i] - lo[i])
	}
	for axis < len(lo) && hi[axis]-lo[axis] == 1 {
		axis++
	}
	if budget <= 0 || total <= budget || axis == len(lo) {
		return t
	}
	t.axis = axis
	extent := hi[axis] - lo[axis]
	slab := total / int64(extent) // bytes of a slab one position thick
	thick := 1
	if slab <= budget {
		thick = int(budget / slab)
		count := (extent + thick - 1) / thick
		thick = (extent + count - 1) / count // even out the slabs
	}
	for start := lo[axis]; start < hi[axis]; start += thick {
		plo, phi := slices.Clone(lo), slices.Clone(hi)
		plo[axis], phi[axis] = start, min(start+thick, hi[axis])
		if thick == 1 && slab > budget {
			t.parts = append(t.parts, planTiles(plo, phi, axis+1, perPos, budget))
		} else {
			t.parts = append(t.parts, &tile{lo: plo, hi: phi})
		}
	}
	return t
}

// leaves returns t's leaf tiles in order.
func (t *tile) leaves() []*tile {
	if t.parts == nil {
		return []*tile{t}
	}
	var out []*tile
	for _, p := range t.parts {
		out = append(out, p.leaves()...)
	}
	return out
}

// im2col holds one convolution in canonical layout (see convIm2col) while
// its tiles are built. x is read at part·partStep + span·spanStep along each
// spatial axis, for part in the grid of the slices (partDims) and span in
// the grid each slice spans (spanDims).
type im2col struct {
	b            *Builder
	x, w         backends.Op
	wMat         backends.Op // w as [O, C·K], when slicing over K
	xDims, wDims []int
	overK        bool // slices over kernel positions, spanning output positions

	partDims, partStep []int
	spanDims, spanStep []int

	// after is the result of the previous tile, on which the next tile's
	// inputs are made to depend (see gate); nil before the first tile.
	after backends.Op
}

// outputBlocks computes the output [O, B, P...] of the tiles of the output
// grid P under t, concatenating the blocks.
func (g *im2col) outputBlocks(t *tile) (backends.Op, error) {
	if t.parts == nil {
		return g.outputLeaf(t)
	}
	blocks := make([]backends.Op, len(t.parts))
	for i, p := range t.parts {
		var err error
		if blocks[i], err = g.outputBlocks(p); err != nil {
			return nil, err
		}
	}
	return g.b.Concatenate(2+t.axis, blocks...)
}

// outputLeaf computes the block [O, B, hi-lo...] of the output for the
// output positions of leaf t: one slice per kernel position, joined into
// [B, C·K, P] and contracted with w [O, C·K].
func (g *im2col) outputLeaf(t *tile) (backends.Op, error) {
	batch, channels, outChannels := g.xDims[0], g.xDims[1], g.wDims[0]
	spanTotal, partTotal := boxSize(t.lo, t.hi), size(g.partDims)
	cols, err := g.patches(t, []int{batch, channels, 1, spanTotal}, 2, []int{batch, channels * partTotal, spanTotal})
	if err != nil {
		return nil, err
	}
	if g.wMat == nil {
		if g.wMat, err = g.b.Reshape(g.w, outChannels, channels*partTotal); err != nil {
			return nil, err
		}
	}
	res, err := g.b.DotGeneral(g.wMat, []int{1}, nil, cols, []int{1}, nil) // [O, B, P]
	if err != nil {
		return nil, err
	}
	g.after = res
	dims := []int{outChannels, batch}
	for i := range t.lo {
		dims = append(dims, t.hi[i]-t.lo[i])
	}
	return g.b.Reshape(res, dims...)
}

// contractionSum computes the output [O, B, P] as the sum over the leaf
// tiles of the contracted grid K of their partial products.
func (g *im2col) contractionSum(t *tile) (backends.Op, error) {
	var sum backends.Op
	for _, leaf := range t.leaves() {
		part, err := g.contractionLeaf(leaf)
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = part
		} else if sum, err = g.b.Add(sum, part); err != nil {
			return nil, err
		}
		g.after = sum
	}
	return sum, nil
}

// contractionLeaf computes the partial product [O, B, P] of the kernel
// positions of leaf t: one slice per output position, joined into
// [B, P, C·K], contracted with the matching part of w, [O, C·K].
func (g *im2col) contractionLeaf(t *tile) (backends.Op, error) {
	batch, channels, outChannels := g.xDims[0], g.xDims[1], g.wDims[0]
	spanTotal, partTotal := boxSize(t.lo, t.hi), size(g.partDims)
	cols, err := g.patches(t, []int{batch, 1, channels * spanTotal}, 1, []int{batch, partTotal, channels * spanTotal})
	if err != nil {
		return nil, err
	}
	wlo, whi := append([]int{0, 0}, t.lo...), append([]int{g.wDims[0], g.wDims[1]}, t.hi...)
	wPart, err := g.box(g.w, g.wDims, wlo, whi)
	if err != nil {
		return nil, err
	}
	wMat, err := g.b.Reshape(wPart, outChannels, channels*spanTotal)
	if err != nil {
		return nil, err
	}
	return g.b.DotGeneral(wMat, []int{1}, nil, cols, []int{2}, nil) // [O, B, P]
}

// patches builds the patches of leaf t: one strided slice of x per
// position of the part grid (row-major), each reshaped to partDims,
// concatenated on joinAxis and reshaped to outDims. The first tile slices x
// itself; later ones slice a gated copy of the region of x they read (see
// gate).
func (g *im2col) patches(t *tile, partDims []int, joinAxis int, outDims []int) (backends.Op, error) {
	n := len(g.partDims)
	src, srcDims, base := g.x, g.xDims, make([]int, n)
	if g.after != nil {
		lo, hi := []int{0, 0}, []int{g.xDims[0], g.xDims[1]}
		for i := range n {
			lo = append(lo, t.lo[i]*g.spanStep[i])
			hi = append(hi, (t.hi[i]-1)*g.spanStep[i]+(g.partDims[i]-1)*g.partStep[i]+1)
		}
		var err error
		if src, err = g.gatedBox(g.x, g.xDims, lo, hi); err != nil {
			return nil, err
		}
		srcDims = make([]int, len(lo))
		for i := range lo {
			srcDims[i] = hi[i] - lo[i]
		}
	} else {
		for i := range n {
			base[i] = t.lo[i] * g.spanStep[i]
		}
	}
	return g.b.patches(src, srcDims, g.partDims, joinAxis, func(q []int, starts, limits, strides []int) {
		for i := range n {
			starts[2+i] = base[i] + q[i]*g.partStep[i]
			limits[2+i] = starts[2+i] + (t.hi[i]-t.lo[i]-1)*g.spanStep[i] + 1
			strides[2+i] = g.spanStep[i]
		}
	}, partDims, outDims)
}

// box returns the box [lo, hi) of op (of dimensions dims): op itself if
// the box is all of it, a Slice for the first tile, a gated copy for the
// others (see gatedBox).
func (g *im2col) box(op backends.Op, dims, lo, hi []int) (backends.Op, error) {
	if isWhole(dims, lo, hi, onesIfEmpty(nil, len(dims))) {
		return op, nil
	}
	if g.after == nil {
		return g.b.Slice(op, lo, hi, onesIfEmpty(nil, len(dims)))
	}
	return g.gatedBox(op, dims, lo, hi)
}

// gatedBox returns the box [lo, hi) of op (of dimensions dims) as a
// Gather whose start indices depend on the previous tile's result (see
// gate), so that simplego computes it only once that tile is done.
func (g *im2col) gatedBox(op backends.Op, dims, lo, hi []int) (backends.Op, error) {
	start := make([]int32, len(lo))
	sizes := make([]int, len(lo))
	for i := range lo {
		start[i], sizes[i] = int32(lo[i]), hi[i]-lo[i]
	}
	startOp, err := g.gate(start)
	if err != nil {
		return nil, err
	}
	all := make([]int, len(dims))
	for i := range all {
		all[i] = i
	}
	return g.b.Gather(op, startOp, 0, all, nil, all, sizes, false)
}

// gate returns the constant vector v as an op that simplego can compute only
// after g.after: Where(true, v, int32(first element of g.after)), which is
// always v.
//
// Why: simplego's executor (backends/simplego/exec.go, v0.26.0) runs a
// graph's nodes in parallel as soon as their inputs are ready, in the order
// they become ready, and frees a buffer after its last use. Without this
// dependency, every tile's slices of x would be ready together and be built
// before the first tile's DotGeneral consumed its own, and the tiles would
// take as much memory as unblocked im2col. The adapter runs ops
// sequentially by default (see simplegoConfig), in the order they were
// built, which already builds one tile at a time; the gate keeps that true
// under "ops_parallel" too. It costs a few scalar ops
// and the Gather that copies the tile's region of x (about the size of x
// divided by the number of tiles, plus the kernel's overlap).
func (g *im2col) gate(v []int32) (backends.Op, error) {
	b := g.b
	s, err := b.OpShape(g.after)
	if err != nil {
		return nil, err
	}
	first, err := b.Slice(g.after, make([]int, s.Rank()), onesIfEmpty(nil, s.Rank()), onesIfEmpty(nil, s.Rank()))
	if err != nil {
		return nil, err
	}
	if first, err = b.Reshape(first); err != nil {
		return nil, err
	}
	if first, err = b.ConvertDType(first, dtypes.Int32); err != nil {
		return nil, err
	}
	yes, err := b.Constant([]bool{true})
	if err != nil {
		return nil, err
	}
	vOp, err := b.Constant(v, len(v))
	if err != nil {
		return nil, err
	}
	return b.Where(yes, vOp, first)
}

// boxSize is the number of positions in the box [lo, hi).
func boxSize(lo, hi []int) int {
	n := 1
	for i := range lo {
		n *= hi[i] - lo[i]
	}
	return n
}

// size is the number of elements of dims.
func size(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// patches slices x once per position of the grid dims (row-major), with
// set filling the spatial starts, limits and strides of each slice;
// reshapes every slice to partDims, concatenates them on joinAxis and
// reshapes the result to outDims.
func (b *Builder) patches(x backends.Op, xDims, grid []int, joinAxis int,
	set func(pos, starts, limits, strides []int), partDims, outDims []int) (backends.Op, error) {
	total := size(grid)
	parts := make([]backends.Op, 0, total)
	pos := make([]int, len(grid))
	for range total {
		starts := make([]int, len(xDims))
		limits := slices.Clone(xDims)
		strides := make([]int, len(xDims))
		strides[0], strides[1] = 1, 1
		set(pos, starts, limits, strides)
		part := x
		if !isWhole(xDims, starts, limits, strides) {
			var err error
			if part, err = b.Slice(x, starts, limits, strides); err != nil {
				return nil, err
			}
		}
		part, err := b.Reshape(part, partDims...)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
		for i := len(pos) - 1; i >= 0; i-- {
			pos[i]++
			if pos[i] < grid[i] {
				break
			}
			pos[i] = 0
		}
	}
	joined := parts[0]
	if len(parts) > 1 {
		var err error
		if joined, err = b.Concatenate(joinAxis, parts...); err != nil {
			return nil, err
		}
	}
	return b.Reshape(joined, outDims...)
}

// isWhole reports whether a slice covers all of dims.
func isWhole(dims, starts, limits, strides []int) bool {
	for i, d := range dims {
		if starts[i] != 0 || limits[i] != d || (strides[i] != 1 && d > 1) {
			return false
		}
	}
	return true
}

// padSpatial applies the convolution's padding and input dilation to the
// spatial axes of canonical x, returning the new dimensions.
func (b *Builder) padSpatial(x backends.Op, dtype dtypes.DType, dims []int, c convParams) (backends.Op, []int, error) {
	cfg := make([]backends.PadAxis, len(dims))
	needed := false
	for i, p := range c.paddings {
		cfg[2+i] = backends.PadAxis{Start: p[0], End: p[1], Interior: c.inputDilations[i] - 1}
		needed = needed || cfg[2+i] != backends.PadAxis{}
	}
	if !needed {
		return x, dims, nil
	}
	var zero any
	switch dtype {
	case dtypes.Float32:
		zero = []float32{0}
	case dtypes.Float64:
		zero = []float64{0}
	default:
		return nil, nil, fmt.Errorf("padding dtype %s not supported", dtype)
	}
	zeroOp, err := b.Constant(zero)
	if err != nil {
		return nil, nil, err
	}
	if x, err = b.Pad(x, zeroOp, cfg...); err != nil {
		return nil, nil, err
	}
	s, err := b.OpShape(x)
	if err != nil {
		return nil, nil, err
	}
	return x, s.Dimensions, nil
}

// permute returns x transposed so that its axis i is x's axis perm[i],
// with the new dimensions. It emits nothing for the identity and a Reshape
// when only axes of size 1 move.
func (b *Builder) permute(x backends.Op, s shapes.Shape, perm []int) (backends.Op, []int, error) {
	dims := make([]int, len(perm))
	var order []int // non-1 axes in their new order
	identity := true
	for i, axis := range perm {
		dims[i] = s.Dimensions[axis]
		identity = identity && axis == i
		if dims[i] != 1 {
			order = append(order, axis)
		}
	}
	if identity {
		return x, dims, nil
	}
	var op backends.Op
	var err error
	if slices.IsSorted(order) {
		op, err = b.Reshape(x, dims...)
	} else {
		op, err = b.Transpose(x, perm...)
	}
	return op, dims, err
}
