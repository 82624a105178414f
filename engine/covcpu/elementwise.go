package covcpu

import (
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Elementwise kernels: simplego v0.26.0 runs broadcasting binary
// operations, BroadcastInDim and the reductions through per-element
// multi-index iterators (3 to 5 ns an element, and 500 ns an output element
// for the BatchNorm statistics' ReduceSum), and Sign with a branch the
// sign of a ReLU's input makes unpredictable. A training step of the demo
// network spent a third of its op time in them. The executors below run
// the same operations over runs of contiguous or repeated elements
// instead, for float32 and float64 (other dtypes go to simplego):
//
//   - Add, Sub, Mul, Div, Max and Min with implicit broadcasting (operands
//     of the output's rank with some axes of size 1, neither a scalar);
//     the other cases (equal shapes, a scalar side) are simplego's own
//     tight loops and stay with it;
//   - BroadcastInDim and ReduceSum over any axes;
//   - Sign.
//
// They give the same bits as simplego's kernels: the binary operations and
// BroadcastInDim compute the same element operations, and ReduceSum adds
// the elements into each output in simplego's order (the operand's flat
// order, starting from zero). Tests compare them bit for bit.

// elementwiseOps are the op types the elementwise executors handle.
var elementwiseOps = []backends.OpType{
	backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv,
	backends.OpTypeMax, backends.OpTypeMin,
	backends.OpTypeBroadcastInDim, backends.OpTypeReduceSum, backends.OpTypeSign,
}

// nativeElementwiseCalls counts the elementwise executors' runs, for tests
// that must know they ran.
var nativeElementwiseCalls [backends.OpTypeLast]atomic.Int64

// elementwiseExecutor returns the executor installed in simplego's table
// for op, one of elementwiseOps. The op is bound here rather than read
// from the node, so that backends without the elementwise executors (or a
// GoMLX whose nodes the mirrors do not match) never read a node through
// them.
func elementwiseExecutor(op backends.OpType) sgExecutor {
	return func(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
		return execElementwise(op, backend, node, inputs, owned)
	}
}

// execElementwise runs op with the elementwise kernels when backend uses
// them and they handle the case, else with simplego's executor.
func execElementwise(op backends.OpType, backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	if modeOf(backend).elem {
		var out *simplego.Buffer
		switch op {
		case backends.OpTypeBroadcastInDim:
			out = broadcastInDim(backend, node, inputs)
		case backends.OpTypeReduceSum:
			out = reduceSum(backend, node, inputs)
		case backends.OpTypeSign:
			out = sign(backend, inputs, owned)
		default:
			out = binaryBroadcast(backend, node, op, inputs, owned)
		}
		if out != nil {
			nativeElementwiseCalls[op].Add(1)
			return out, nil
		}
	}
	return simplegoExecutors[op](backend, node, inputs, owned)
}

// stridedLoop walks an output of the given dimensions in row-major order
// together with up to two operands read at strides (0 on an axis an
// operand repeats): axes that can be walked as one are merged first, so
// the innermost loop runs over as many elements as possible.
type stridedLoop struct {
	dims    []int
	strides [2][]int
}

// newStridedLoop merges the axes of dims (outer to inner) whose strides
// chain for every operand: axis i and i+1 join when stride[i] ==
// stride[i+1]·dims[i+1] for both operands (the output is contiguous).
// Axes of size 1 are dropped.
func newStridedLoop(dims []int, strides [2][]int) stridedLoop {
	var l stridedLoop
	for i, d := range dims {
		if d == 1 {
			continue
		}
		n := len(l.dims)
		if n > 0 && strides[0][i]*d == l.strides[0][n-1] && strides[1][i]*d == l.strides[1][n-1] {
			l.dims[n-1] *= d
			l.strides[0][n-1], l.strides[1][n-1] = strides[0][i], strides[1][i]
			continue
		}
		l.dims = append(l.dims, d)
		l.strides[0] = append(l.strides[0], strides[0][i])
		l.strides[1] = append(l.strides[1], strides[1][i])
	}
	if len(l.dims) == 0 {
		l.dims = []int{1}
		l.strides = [2][]int{{0}, {0}}
	}
	return l
}

// run calls inner for every innermost run: the output offset, the
// operands' offsets, the run's length and the operands' strides along it.
func (l stridedLoop) run(inner func(o, a, b, n, sa, sb int)) {
	last := len(l.dims) - 1
	n, sa, sb := l.dims[last], l.strides[0][last], l.strides[1][last]
	idx := make([]int, last)
	a, b := 0, 0
	for o := 0; ; o += n {
		inner(o, a, b, n, sa, sb)
		// Advance the outer axes' odometer.
		i := last - 1
		for ; i >= 0; i-- {
			idx[i]++
			a += l.strides[0][i]
			b += l.strides[1][i]
			if idx[i] < l.dims[i] {
				break
			}
			a -= l.strides[0][i] * l.dims[i]
			b -= l.strides[1][i] * l.dims[i]
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

// broadcastStrides returns the strides at which an operand of dims is read
// for an output of outDims (the same rank): row-major strides, 0 on the
// axes the operand repeats (size 1 where the output's is larger).
func broadcastStrides(dims, outDims []int) []int {
	s := rowMajorStrides(dims)
	for i := range s {
		if dims[i] == 1 && outDims[i] != 1 {
			s[i] = 0
		}
	}
	return s
}

// binaryBroadcast runs op with implicit broadcasting, or returns nil for
// the cases simplego's own loops handle as fast (equal shapes, a scalar
// side) and for other dtypes.
func binaryBroadcast(backend *simplego.Backend, node *simplego.Node, op backends.OpType, inputs []*simplego.Buffer, owned []bool) *simplego.Buffer {
	ls, _ := backend.BufferShape(inputs[0])
	rs, _ := backend.BufferShape(inputs[1])
	outShape := nodeShape(node)
	if outShape.Size() == 0 || ls.Equal(rs) || ls.Size() == 1 || rs.Size() == 1 || ls.DType != rs.DType || ls.DType != outShape.DType ||
		ls.Rank() != outShape.Rank() || rs.Rank() != outShape.Rank() {
		return nil
	}
	l := newStridedLoop(outShape.Dimensions, [2][]int{
		broadcastStrides(ls.Dimensions, outShape.Dimensions), broadcastStrides(rs.Dimensions, outShape.Dimensions)})
	lf, _ := backend.BufferData(inputs[0])
	rf, _ := backend.BufferData(inputs[1])
	if outShape.DType != dtypes.Float32 && outShape.DType != dtypes.Float64 || binaryFunc[float32](op) == nil {
		return nil
	}
	out := binaryOutput(backend, inputs, owned, outShape)
	of, _ := backend.BufferData(out)
	if outShape.DType == dtypes.Float32 {
		binaryLoop(binaryFunc[float32](op), l, lf.([]float32), rf.([]float32), of.([]float32))
	} else {
		binaryLoop(binaryFunc[float64](op), l, lf.([]float64), rf.([]float64), of.([]float64))
	}
	return out
}

// binaryOutput is simplego's choice of a binary operation's output buffer:
// an operand the executor owns and that has the output's shape (the right
// one first), written in place, else a new buffer.
func binaryOutput(backend *simplego.Backend, inputs []*simplego.Buffer, owned []bool, outShape shapes.Shape) *simplego.Buffer {
	for _, i := range []int{1, 0} {
		if s, _ := backend.BufferShape(inputs[i]); owned[i] && s.Equal(outShape) {
			out := inputs[i]
			inputs[i] = nil // the executor must not free the buffer returned
			return out
		}
	}
	return backend.NewBuffer(outShape)
}

// binaryFunc returns the element operation of op, or nil.
func binaryFunc[T float](op backends.OpType) func(x, y T) T {
	switch op {
	case backends.OpTypeAdd:
		return func(x, y T) T { return x + y }
	case backends.OpTypeSub:
		return func(x, y T) T { return x - y }
	case backends.OpTypeMul:
		return func(x, y T) T { return x * y }
	case backends.OpTypeDiv:
		return func(x, y T) T { return x / y }
	case backends.OpTypeMax:
		return func(x, y T) T { return max(x, y) }
	case backends.OpTypeMin:
		return func(x, y T) T { return min(x, y) }
	}
	return nil
}

// binaryLoop computes out = f(a, b) along l. out may be a or b itself
// (each element is read before it is written).
func binaryLoop[T float](f func(x, y T) T, l stridedLoop, a, b, out []T) {
	l.run(func(o, ia, ib, n, sa, sb int) {
		dst := out[o : o+n]
		switch {
		case sa == 1 && sb == 1:
			x, y := a[ia:ia+n], b[ib:ib+n]
			for j := range dst {
				dst[j] = f(x[j], y[j])
			}
		case sa == 1 && sb == 0:
			x, c := a[ia:ia+n], b[ib]
			for j := range dst {
				dst[j] = f(x[j], c)
			}
		case sa == 0 && sb == 1:
			c, y := a[ia], b[ib:ib+n]
			for j := range dst {
				dst[j] = f(c, y[j])
			}
		default:
			for j := range dst {
				dst[j] = f(a[ia+j*sa], b[ib+j*sb])
			}
		}
	})
}

// broadcastInDim runs BroadcastInDim: the operand's axis i becomes the
// output's axis axes[i] (simplego's node data), every other output axis
// repeats it.
func broadcastInDim(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer) *simplego.Buffer {
	axes, ok := nodeInts(node)
	xs, _ := backend.BufferShape(inputs[0])
	outShape := nodeShape(node)
	if !ok || len(axes) != xs.Rank() || xs.DType != outShape.DType || xs.Size() == 0 || outShape.Size() == 0 {
		return nil
	}
	dims := make([]int, outShape.Rank())
	for i := range dims {
		dims[i] = 1
	}
	for i, a := range axes {
		if a < 0 || a >= len(dims) {
			return nil
		}
		dims[a] = xs.Dimensions[i]
	}
	l := newStridedLoop(outShape.Dimensions, [2][]int{broadcastStrides(dims, outShape.Dimensions), make([]int, len(dims))})
	xf, _ := backend.BufferData(inputs[0])
	switch outShape.DType {
	case dtypes.Float32:
		return broadcastTyped(backend, outShape, l, xf.([]float32))
	case dtypes.Float64:
		return broadcastTyped(backend, outShape, l, xf.([]float64))
	}
	return nil
}

func broadcastTyped[T float](backend *simplego.Backend, outShape shapes.Shape, l stridedLoop, x []T) *simplego.Buffer {
	out := backend.NewBuffer(outShape)
	of, _ := backend.BufferData(out)
	o := of.([]T)
	l.run(func(io, ia, _, n, sa, _ int) {
		dst := o[io : io+n]
		if sa == 0 {
			v := x[ia]
			for j := range dst {
				dst[j] = v
			}
		} else if sa == 1 {
			copy(dst, x[ia:ia+n])
		} else {
			for j := range dst {
				dst[j] = x[ia+j*sa]
			}
		}
	})
	return out
}

// reduceSum runs ReduceSum over the axes in the node's data. It walks the
// operand in flat order, as simplego does, so that each output element
// sums its inputs in the same order.
func reduceSum(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer) *simplego.Buffer {
	axes, ok := nodeInts(node)
	xs, _ := backend.BufferShape(inputs[0])
	outShape := nodeShape(node)
	if !ok || len(axes) == 0 || xs.DType != outShape.DType || xs.Size() == 0 || outShape.Size() == 0 {
		return nil
	}
	// The output's strides over the operand's axes: 0 on reduced axes.
	outStr := make([]int, xs.Rank())
	reduced := make([]bool, xs.Rank())
	for _, a := range axes {
		if a < 0 || a >= len(reduced) {
			return nil
		}
		reduced[a] = true
	}
	stride := 1
	for i := xs.Rank() - 1; i >= 0; i-- {
		if !reduced[i] {
			outStr[i] = stride
			stride *= xs.Dimensions[i]
		}
	}
	if stride != outShape.Size() {
		return nil
	}
	// Walk the operand as the loop's "output" (contiguous) with the output
	// as its first strided operand.
	l := newStridedLoop(xs.Dimensions, [2][]int{outStr, make([]int, xs.Rank())})
	xf, _ := backend.BufferData(inputs[0])
	switch outShape.DType {
	case dtypes.Float32:
		return reduceTyped(backend, outShape, l, xf.([]float32))
	case dtypes.Float64:
		return reduceTyped(backend, outShape, l, xf.([]float64))
	}
	return nil
}

func reduceTyped[T float](backend *simplego.Backend, outShape shapes.Shape, l stridedLoop, x []T) *simplego.Buffer {
	out := backend.NewBuffer(outShape)
	of, _ := backend.BufferData(out)
	o := of.([]T)
	clear(o)
	l.run(func(ix, io, _, n, so, _ int) {
		src := x[ix : ix+n]
		switch so {
		case 0:
			s := o[io]
			for _, v := range src {
				s += v
			}
			o[io] = s
		case 1:
			dst := o[io : io+n]
			for j, v := range src {
				dst[j] += v
			}
		default:
			for j, v := range src {
				o[io+j*so] += v
			}
		}
	})
	return out
}

// sign runs Sign: 1 for positive, −1 for negative, 0 for zeros and NaN
// (simplego's rule), without a branch on the sign.
func sign(backend *simplego.Backend, inputs []*simplego.Buffer, owned []bool) *simplego.Buffer {
	xs, _ := backend.BufferShape(inputs[0])
	if xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64 {
		return nil
	}
	xf, _ := backend.BufferData(inputs[0])
	out := inputs[0]
	if owned[0] {
		inputs[0] = nil // the executor must not free the buffer returned
	} else {
		out = backend.NewBuffer(xs)
	}
	of, _ := backend.BufferData(out)
	if xs.DType == dtypes.Float32 {
		signTyped(xf.([]float32), of.([]float32))
	} else {
		signTyped(xf.([]float64), of.([]float64))
	}
	return out
}

func signTyped[T float](x, out []T) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = T(b2i(v > 0) - b2i(v < 0))
	}
}

// b2i is 1 for true, 0 for false; the compiler makes it a SETcc.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
