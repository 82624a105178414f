package covcpu

// This is the only file that touches simplego's unexported internals. It
// was written against github.com/gomlx/gomlx v0.26.0 and relies on:
//
//   - the executor table simplego.nodeExecutors ([backends.OpTypeLast]
//     nodeExecutor, filled by simplego's init functions and read each time a
//     node executes), reached with //go:linkname (which Go 1.26 allows for
//     packages outside the standard library);
//   - the layout of simplego.Node and of the parameters DotGeneral and
//     ConvGeneral nodes keep in Node.data (*dotGeneralNodeData, *convNode),
//     mirrored below as sgNode, sgDotParams and sgConvParams;
//   - that ReduceSum and BroadcastInDim nodes keep a []int in Node.data
//     (the reduced axes; the output axis of each operand axis), and that
//     executors take over an input buffer by setting its entry in inputs
//     to nil (simplego's unaryOperandAndOutput and
//     binaryOperandsAndOutput), for the elementwise executors
//     (elementwise.go).
//
// checkInternals compares the mirrors with simplego's types field by field
// (name, type, offset) through reflection before the first native kernel
// runs; on any difference the native kernels stay off and covseg runs on
// simplego's own kernels, with a warning. TestGoMLXVersion fails loudly
// when the build uses another GoMLX version: re-read simplego's exec.go,
// builder.go, dotgeneral.go, convgeneral.go, exec_binary.go and
// exec_special_ops.go before changing wantGoMLXVersion.

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// wantGoMLXVersion is the GoMLX version this file was written for.
const wantGoMLXVersion = "v0.26.0"

// sgExecutor is simplego's nodeExecutor.
type sgExecutor func(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer, inputsOwned []bool) (*simplego.Buffer, error)

//go:linkname sgNodeExecutors github.com/gomlx/gomlx/backends/simplego.nodeExecutors
var sgNodeExecutors [backends.OpTypeLast]sgExecutor

// sgNode mirrors simplego.Node.
type sgNode struct {
	builderIdx         int
	inputs             []*simplego.Node
	opType             backends.OpType
	shape              shapes.Shape
	builder            *simplego.Builder
	multiOutputsShapes []shapes.Shape
	multiOutputsNodes  []*simplego.Node
	isNodeSelectOutput bool
	selectOutputIdx    int
	data               any
}

// sgDotParams mirrors simplego's dotGeneralNodeData.
type sgDotParams struct {
	lhsContractingAxes, lhsBatchAxes                       []int
	rhsContractingAxes, rhsBatchAxes                       []int
	batchSize, lhsCrossSize, rhsCrossSize, contractingSize int
	lhsBlockedShape, rhsBlockedShape, outputBlockedShape   shapes.Shape
}

// sgConvParams mirrors simplego's convNode.
type sgConvParams struct {
	axes                                             backends.ConvolveAxesConfig
	strides                                          []int
	paddings                                         [][2]int
	inputDilations                                   []int
	kernelDilations                                  []int
	channelGroupCount                                int
	batchGroupCount                                  int
	hasInputDilations, hasKernelDilations            bool
	inputStrides, inputSpatialStrides, kernelStrides []int
	dilatedInputSpatialDims                          []int
}

// nodeShape returns the output shape of a simplego node.
func nodeShape(n *simplego.Node) shapes.Shape {
	return (*sgNode)(unsafe.Pointer(n)).shape
}

// nodeData returns a pointer to the parameters a node keeps (a *T held
// in Node.data), or nil if it holds none.
func nodeData[T any](n *simplego.Node) *T {
	data := (*sgNode)(unsafe.Pointer(n)).data
	if data == nil {
		return nil
	}
	// An interface holding a pointer stores the pointer as its data word.
	return (*T)((*[2]unsafe.Pointer)(unsafe.Pointer(&data))[1])
}

var (
	internalsOnce sync.Once
	internalsErr  error
)

// checkInternals verifies once that the binary links the GoMLX version
// the mirrors were written for (when it records its dependencies: go
// test's binaries do not) and that sgNode matches simplego.Node.
func checkInternals() error {
	internalsOnce.Do(func() {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, dep := range info.Deps {
				if dep.Path == "github.com/gomlx/gomlx" && dep.Replace == nil && dep.Version != wantGoMLXVersion {
					internalsErr = fmt.Errorf("GoMLX %s is linked; covcpu's native kernels were written for %s", dep.Version, wantGoMLXVersion)
					return
				}
			}
		}
		internalsErr = sameLayout(reflect.TypeFor[simplego.Node](), reflect.TypeFor[sgNode]())
	})
	return internalsErr
}

// dataType returns the type of the parameters a node points to in
// Node.data (simplego's types are unexported), or nil. checkInternals must
// have succeeded.
func dataType(n *simplego.Node) reflect.Type {
	t := reflect.TypeOf((*sgNode)(unsafe.Pointer(n)).data)
	if t == nil || t.Kind() != reflect.Pointer {
		return nil
	}
	return t.Elem()
}

// sameLayout reports an error unless the struct types have the same fields:
// names, types (by string) and offsets.
func sameLayout(theirs, ours reflect.Type) error {
	if theirs == nil || theirs.Kind() != reflect.Struct || theirs.NumField() != ours.NumField() || theirs.Size() != ours.Size() {
		return fmt.Errorf("simplego's %s does not match covcpu's mirror %s (GoMLX changed?)", theirs, ours)
	}
	for i := range theirs.NumField() {
		a, b := theirs.Field(i), ours.Field(i)
		if a.Name != b.Name || a.Type.String() != b.Type.String() || a.Offset != b.Offset {
			return fmt.Errorf("simplego's %s field %d is %s %s at %d; covcpu's mirror has %s %s at %d (GoMLX changed?)",
				theirs, i, a.Name, a.Type, a.Offset, b.Name, b.Type, b.Offset)
		}
	}
	return nil
}

// simplegoDot and simplegoConv are simplego's own DotGeneral and
// ConvGeneral executors, and simplegoExecutors its executors of
// elementwiseOps, saved before installNative replaces them.
var (
	simplegoDot, simplegoConv sgExecutor
	simplegoExecutors         [backends.OpTypeLast]sgExecutor
)

// nodeInts returns the []int a node keeps as its parameters, if it does.
func nodeInts(n *simplego.Node) ([]int, bool) {
	v, ok := (*sgNode)(unsafe.Pointer(n)).data.([]int)
	return v, ok
}

// installNative puts the native executors in simplego's table, keeping
// simplego's own ones for the backends and cases the native kernels do not
// handle. It runs from init, after simplego's init functions (this package
// imports simplego).
func installNative() {
	simplegoDot = sgNodeExecutors[backends.OpTypeDotGeneral]
	simplegoConv = sgNodeExecutors[backends.OpTypeConvGeneral]
	if simplegoDot == nil || simplegoConv == nil {
		return // a GoMLX without these executors: TestGoMLXVersion says so
	}
	sgNodeExecutors[backends.OpTypeDotGeneral] = execDotGeneral
	sgNodeExecutors[backends.OpTypeConvGeneral] = execConvGeneral
	for _, op := range elementwiseOps {
		if simplegoExecutors[op] = sgNodeExecutors[op]; simplegoExecutors[op] != nil {
			sgNodeExecutors[op] = elementwiseExecutor(op)
		}
	}
}
