package covcpu

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Builder builds a computation with simplego's builder, adding Pad and
// Reverse and replacing ConvGeneral. All ops it emits are simplego ops, so
// the compiled executable is simplego's.
type Builder struct {
	backends.Builder       // simplego's
	directConv       bool  // hand convolutions to simplego (with defaults filled)
	nativeConv       bool  // the native kernel executes them (see conv_native.go)
	im2colBudget     int64 // bytes of patches per im2col tile; 0: no cap
	// reversed records the Reverse ops built for native convolutions: a
	// convolution of a kernel reversed on its spatial axes reads the
	// kernel flipped instead.
	reversed map[backends.Op]reversal
}

// reversal is a Reverse op's operand and reversed axes (those longer than 1).
type reversal struct {
	x    backends.Op
	axes []int
}

// shape returns the shape of op or an error naming the operation.
func (b *Builder) shape(opName string, op backends.Op) (shapes.Shape, error) {
	s, err := b.OpShape(op)
	if err != nil {
		return s, fmt.Errorf("backend: %s: %w", opName, err)
	}
	return s, nil
}

// Reverse reverses x along the given axes with a single Gather whose index
// vectors count down on the reversed axes; the gathered (batch) axes are
// placed where the reversed axes were, so no transpose is needed.
func (b *Builder) Reverse(x backends.Op, axes ...int) (backends.Op, error) {
	xs, err := b.shape("Reverse", x)
	if err != nil {
		return nil, err
	}
	rank := xs.Rank()
	reversed := make([]bool, rank)
	for _, axis := range axes {
		if axis < 0 || axis >= rank {
			return nil, fmt.Errorf("backend: Reverse: axis %d out of range for shape %s", axis, xs)
		}
		reversed[axis] = true
	}
	var revAxes, offsetAxes []int
	for axis, r := range reversed {
		if r && xs.Dimensions[axis] > 1 {
			revAxes = append(revAxes, axis)
		} else {
			offsetAxes = append(offsetAxes, axis)
		}
	}
	if len(revAxes) == 0 {
		return b.Identity(x)
	}
	out, err := b.reverseGather(x, xs, revAxes, offsetAxes)
	if err != nil {
		return nil, err
	}
	if b.nativeConv {
		if b.reversed == nil {
			b.reversed = make(map[backends.Op]reversal)
		}
		b.reversed[out] = reversal{x: x, axes: revAxes}
	}
	return out, nil
}

// reverseGather reverses the axes revAxes of x (shape xs) with a Gather.
func (b *Builder) reverseGather(x backends.Op, xs shapes.Shape, revAxes, offsetAxes []int) (backends.Op, error) {

	// Index vectors: one per element of the reversed sub-shape, in row-major order.
	revDims := make([]int, len(revAxes))
	count := 1
	for i, axis := range revAxes {
		revDims[i] = xs.Dimensions[axis]
		count *= revDims[i]
	}
	k := len(revAxes)
	indices := make([]int32, count*k)
	idx := make([]int, k)
	for n := range count {
		for i := range k {
			indices[n*k+i] = int32(revDims[i] - 1 - idx[i])
		}
		for i := k - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < revDims[i] {
				break
			}
			idx[i] = 0
		}
	}
	indicesOp, err := b.Constant(indices, append(slices.Clone(revDims), k)...)
	if err != nil {
		return nil, fmt.Errorf("backend: Reverse: %w", err)
	}
	sliceSizes := slices.Clone(xs.Dimensions)
	for _, axis := range revAxes {
		sliceSizes[axis] = 1
	}
	out, err := b.Gather(x, indicesOp, k, offsetAxes, revAxes, revAxes, sliceSizes, false)
	if err != nil {
		return nil, fmt.Errorf("backend: Reverse of %s on axes %v: %w", xs, revAxes, err)
	}
	return out, nil
}

// Pad pads x with fillValue (a scalar of x's dtype) following XLA's
// semantics: interior padding first, then start/end padding, where a
// negative start or end removes elements (and, past them, fill values of
// the other end).
func (b *Builder) Pad(x, fillValue backends.Op, axesConfig ...backends.PadAxis) (backends.Op, error) {
	xs, err := b.shape("Pad", x)
	if err != nil {
		return nil, err
	}
	fs, err := b.shape("Pad", fillValue)
	if err != nil {
		return nil, err
	}
	if !fs.IsScalar() || fs.DType != xs.DType {
		return nil, fmt.Errorf("backend: Pad: fill value must be a scalar of %s, got %s", xs.DType, fs)
	}
	if len(axesConfig) > xs.Rank() {
		return nil, fmt.Errorf("backend: Pad: %d axes configured for shape %s", len(axesConfig), xs)
	}
	for axis, cfg := range axesConfig {
		if cfg.Interior < 0 {
			return nil, fmt.Errorf("backend: Pad: negative interior padding %d on axis %d", cfg.Interior, axis)
		}
		// simplego cannot hold empty tensors.
		if n := interiorPadded(xs.Dimensions[axis], cfg.Interior); n+cfg.Start+cfg.End < 1 {
			return nil, fmt.Errorf("backend: Pad: padding %+v removes all %d elements of axis %d of %s",
				cfg, n, axis, xs)
		}
	}
	out := x
	for axis, cfg := range axesConfig {
		if out, err = b.padAxis(out, fillValue, axis, cfg); err != nil {
			return nil, fmt.Errorf("backend: Pad of %s with %v: %w", xs, axesConfig, err)
		}
	}
	if out == x {
		return b.Identity(x)
	}
	return out, nil
}

// interiorPadded is the size of an axis of n elements after inserting
// interior fill values between neighbours.
func interiorPadded(n, interior int) int {
	if n == 0 {
		return 0
	}
	return n + (n-1)*interior
}

// padAxis applies one axis' padding configuration: interior padding,
// trimming of negative start/end, then fill blocks for positive start/end.
func (b *Builder) padAxis(x, fill backends.Op, axis int, cfg backends.PadAxis) (backends.Op, error) {
	xs, err := b.OpShape(x)
	if err != nil {
		return nil, err
	}
	n := interiorPadded(xs.Dimensions[axis], cfg.Interior)
	keepFrom, keepTo := max(0, -cfg.Start), n-max(0, -cfg.End)
	if keepTo <= keepFrom {
		// Every element is trimmed: only fill values remain.
		return b.fillBlock(fill, xs, axis, n+cfg.Start+cfg.End)
	}
	if cfg.Interior > 0 {
		if x, err = b.padInterior(x, fill, axis, cfg.Interior); err != nil {
			return nil, err
		}
	}
	if keepFrom > 0 || keepTo < n {
		starts := make([]int, xs.Rank())
		limits := slices.Clone(xs.Dimensions)
		starts[axis], limits[axis] = keepFrom, keepTo
		if x, err = b.Slice(x, starts, limits, onesIfEmpty(nil, xs.Rank())); err != nil {
			return nil, err
		}
	}
	parts := make([]backends.Op, 0, 3)
	if cfg.Start > 0 {
		block, err := b.fillBlock(fill, xs, axis, cfg.Start)
		if err != nil {
			return nil, err
		}
		parts = append(parts, block)
	}
	parts = append(parts, x)
	if cfg.End > 0 {
		block, err := b.fillBlock(fill, xs, axis, cfg.End)
		if err != nil {
			return nil, err
		}
		parts = append(parts, block)
	}
	if len(parts) == 1 {
		return x, nil
	}
	return b.Concatenate(axis, parts...)
}

// padInterior inserts n fill values between consecutive elements of axis:
// [.., d, ..] -> [.., d, 1, ..] ++ fill [.., d, n, ..] -> [.., d*(n+1), ..],
// then drops the n trailing fill values.
func (b *Builder) padInterior(x, fill backends.Op, axis, n int) (backends.Op, error) {
	xs, err := b.OpShape(x)
	if err != nil {
		return nil, err
	}
	d := xs.Dimensions[axis]
	if d <= 1 {
		return x, nil
	}
	expanded := slices.Insert(slices.Clone(xs.Dimensions), axis+1, 1)
	x1, err := b.Reshape(x, expanded...)
	if err != nil {
		return nil, err
	}
	block, err := b.fillBlock(fill, shapes.Make(xs.DType, expanded...), axis+1, n)
	if err != nil {
		return nil, err
	}
	joined, err := b.Concatenate(axis+1, x1, block)
	if err != nil {
		return nil, err
	}
	flat := slices.Clone(xs.Dimensions)
	flat[axis] = d * (n + 1)
	joined, err = b.Reshape(joined, flat...)
	if err != nil {
		return nil, err
	}
	starts := make([]int, len(flat))
	limits := slices.Clone(flat)
	limits[axis] -= n
	return b.Slice(joined, starts, limits, onesIfEmpty(nil, len(flat)))
}

// fillBlock broadcasts the scalar fill to shape s with axis resized to size.
func (b *Builder) fillBlock(fill backends.Op, s shapes.Shape, axis, size int) (backends.Op, error) {
	dims := slices.Clone(s.Dimensions)
	dims[axis] = size
	return b.BroadcastInDim(fill, shapes.Make(s.DType, dims...), nil)
}
