package onnx

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
)

// Info is what an engine needs to know about a serialized model before it
// runs it.
type Info struct {
	IRVersion int64
	// Opsets maps operator set domains ("" is ai.onnx) to versions.
	Opsets map[string]int64
	// Inputs are the graph inputs that are not initializers (values the
	// caller feeds); Outputs the graph outputs.
	Inputs, Outputs []*onnxpb.ValueInfoProto
	// Props holds metadata_props.
	Props map[string]string
}

// Field numbers of onnx.proto that Describe reads.
const (
	modelIRVersion   = 1
	modelOpsetImport = 8
	modelGraph       = 7
	modelMetadata    = 14
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12
	tensorName       = 8
)

// Describe reads a serialized ModelProto's IR version, opsets, graph inputs
// and outputs and metadata_props. It walks the protobuf fields and skips
// nodes and initializer data, so describing a large model costs little.
func Describe(data []byte) (Info, error) {
	info := Info{Opsets: map[string]int64{}, Props: map[string]string{}}
	var graph []byte
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == modelIRVersion && typ == protowire.VarintType:
			info.IRVersion = int64(x)
		case num == modelOpsetImport && typ == protowire.BytesType:
			var op onnxpb.OperatorSetIdProto
			if err := proto.Unmarshal(v, &op); err != nil {
				return fmt.Errorf("opset_import: %w", err)
			}
			info.Opsets[op.GetDomain()] = op.GetVersion()
		case num == modelGraph && typ == protowire.BytesType:
			graph = v
		case num == modelMetadata && typ == protowire.BytesType:
			var e onnxpb.StringStringEntryProto
			if err := proto.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("metadata_props: %w", err)
			}
			info.Props[e.GetKey()] = e.GetValue()
		}
		return nil
	})
	if err != nil {
		return Info{}, fmt.Errorf("not an ONNX model: %w", err)
	}
	if graph == nil {
		return Info{}, fmt.Errorf("not an ONNX model: no graph")
	}
	if err := describeGraph(graph, &info); err != nil {
		return Info{}, fmt.Errorf("not an ONNX model: graph: %w", err)
	}
	return info, nil
}

func describeGraph(graph []byte, info *Info) error {
	initializers := map[string]bool{}
	var inputs []*onnxpb.ValueInfoProto
	err := eachField(graph, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case graphInitializer:
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == tensorName && typ == protowire.BytesType {
					initializers[string(v)] = true
				}
				return nil
			})
		case graphInput, graphOutput:
			vi := &onnxpb.ValueInfoProto{}
			if err := proto.Unmarshal(v, vi); err != nil {
				return fmt.Errorf("input/output: %w", err)
			}
			if num == graphInput {
				inputs = append(inputs, vi)
			} else {
				info.Outputs = append(info.Outputs, vi)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// IR versions before 4 list initializers among the inputs too.
	for _, vi := range inputs {
		if !initializers[vi.GetName()] {
			info.Inputs = append(info.Inputs, vi)
		}
	}
	return nil
}

// eachField calls fn for each field of the protobuf message in data, with
// its bytes (length-delimited fields) or value (varints).
func eachField(data []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("bad protobuf tag: %w", protowire.ParseError(n))
		}
		data = data[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(data)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return fmt.Errorf("bad protobuf field %d: %w", num, protowire.ParseError(n))
		}
		data = data[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
