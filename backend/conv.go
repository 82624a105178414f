package backend

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
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
// The patches of x are gathered with one strided Slice per kernel position
// (or, when there are fewer output positions than kernel positions, as in
// the kernel gradient, one per output position), concatenated and
// contracted with w in a single DotGeneral, which simplego runs in parallel.
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
	batch, channels, outChannels := xDims[0], xDims[1], wDims[0]
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
	ck := channels * kTotal
	wMat, err := b.Reshape(w, outChannels, ck)
	if err != nil {
		return nil, err
	}

	var cols backends.Op
	var colsContract int
	if kTotal <= pTotal {
		// One slice per kernel position: [B, C, P...] -> [B, C, 1, P]; joined [B, C·K, P].
		cols, err = b.patches(x, xDims, kDims, 2, func(k []int, starts, limits, strides []int) {
			for i := range n {
				starts[2+i] = k[i] * c.kernelDilations[i]
				limits[2+i] = starts[2+i] + (pDims[i]-1)*c.strides[i] + 1
				strides[2+i] = c.strides[i]
			}
		}, []int{batch, channels, 1, pTotal}, []int{batch, ck, pTotal})
		colsContract = 1
	} else {
		// One slice per output position: [B, C, K...] -> [B, 1, C·K]; joined [B, P, C·K].
		cols, err = b.patches(x, xDims, pDims, 1, func(p []int, starts, limits, strides []int) {
			for i := range n {
				starts[2+i] = p[i] * c.strides[i]
				limits[2+i] = starts[2+i] + (kDims[i]-1)*c.kernelDilations[i] + 1
				strides[2+i] = c.kernelDilations[i]
			}
		}, []int{batch, 1, ck}, []int{batch, pTotal, ck})
		colsContract = 2
	}
	if err != nil {
		return nil, err
	}
	res, err := b.DotGeneral(wMat, []int{1}, nil, cols, []int{colsContract}, nil) // [O, B, P]
	if err != nil {
		return nil, err
	}
	resDims := append([]int{outChannels, batch}, pDims...)
	if res, err = b.Reshape(res, resDims...); err != nil {
		return nil, err
	}
	// Result axis for each output axis.
	perm := make([]int, outShape.Rank())
	perm[axes.OutputChannels], perm[axes.OutputBatch] = 0, 1
	for i, axis := range axes.OutputSpatial {
		perm[axis] = 2 + i
	}
	res, _, err = b.permute(res, shapes.Make(xs.DType, resDims...), perm)
	return res, err
}

// patches slices x once per position of the grid dims (row-major), with
// set filling the spatial starts, limits and strides of each slice;
// reshapes every slice to partDims, concatenates them on joinAxis and
// reshapes the result to outDims.
func (b *Builder) patches(x backends.Op, xDims, grid []int, joinAxis int,
	set func(pos, starts, limits, strides []int), partDims, outDims []int) (backends.Op, error) {
	total := 1
	for _, d := range grid {
		total *= d
	}
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
