package quant

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/engine/onnx/onnxpb"
)

// FuzzModel feeds arbitrary bytes decoded as ONNX models to Targets and
// Model: malformed graphs must give errors, never panics.
func FuzzModel(f *testing.F) {
	net, w := convNet(2)
	m, err := onnx.Build(net, 2, w, testMeta, onnx.Options{})
	if err != nil {
		f.Fatal(err)
	}
	seed, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		var m onnxpb.ModelProto
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		ranges := map[string]Range{}
		for _, v := range Targets(&m) {
			ranges[v] = Range{-1, 2}
		}
		if g := m.GetGraph(); g != nil && len(g.Input) > 0 {
			ranges[g.Input[0].GetName()] = Range{-1, 1}
		}
		_, _ = Model(&m, ranges, nil)
	})
}
