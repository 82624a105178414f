package onnx

import (
	"math"
	"strconv"

	"github.com/covseg/covseg/engine/onnx/onnxpb"
)

// namedTensor is a parameter made by folding.
type namedTensor struct {
	name string
	t    Tensor
}

// foldBatchNorms returns the graph's nodes with every
// BatchNormalization whose input is a Conv output used by nothing else folded
// into that Conv:
//
//	s = gamma / sqrt(var + eps),  W' = W * s (per output channel),  b' = (b - mean) * s + beta.
//
// The arithmetic is float64, rounded once to float32. It also returns the
// new parameters the folded convolutions read. b's own slices are not
// changed.
func (b *Builder) foldBatchNorms() ([]*onnxpb.NodeProto, []namedTensor) {
	producer := map[string]int{}
	uses := map[string]int{}
	for i, n := range b.nodes {
		for _, o := range n.Output {
			producer[o] = i
		}
		for _, in := range n.Input {
			uses[in]++
		}
	}
	for _, o := range b.outputs {
		uses[o.GetName()]++
	}

	taken := map[string]bool{}
	unique := func(base string) string {
		name := base
		for i := 1; ; i++ {
			_, v := b.values[name]
			_, w := b.weights[name]
			if !v && !w && !taken[name] {
				taken[name] = true
				return name
			}
			name = base + "_" + strconv.Itoa(i)
		}
	}

	nodes := append([]*onnxpb.NodeProto(nil), b.nodes...)
	var extra []namedTensor
	for i, bn := range b.nodes {
		if bn.GetOpType() != "BatchNormalization" {
			continue
		}
		x := bn.Input[0]
		ci, ok := producer[x]
		if !ok || uses[x] != 1 || b.nodes[ci].GetOpType() != "Conv" {
			continue
		}
		conv, inits := b.foldOne(b.nodes[ci], bn, unique)
		nodes[ci] = conv
		nodes[i] = nil
		extra = append(extra, inits...)
	}

	kept := nodes[:0]
	for _, n := range nodes {
		if n != nil {
			kept = append(kept, n)
		}
	}
	return kept, extra
}

// foldOne returns a copy of conv that computes bn(conv(x)), writing bn's
// output, and the two new initializers it reads.
func (b *Builder) foldOne(conv, bn *onnxpb.NodeProto, unique func(string) string) (*onnxpb.NodeProto, []namedTensor) {
	w := b.weights[conv.Input[1]]
	gamma := b.weights[bn.Input[1]].Data
	beta := b.weights[bn.Input[2]].Data
	mean := b.weights[bn.Input[3]].Data
	variance := b.weights[bn.Input[4]].Data
	var bias []float32
	if len(conv.Input) > 2 {
		bias = b.weights[conv.Input[2]].Data
	}

	eps := float64(float32(bnEpsilon)) // the float32 attribute an unfolded node carries
	out := len(gamma)
	per := len(w.Data) / out
	nw := make([]float32, len(w.Data))
	nb := make([]float32, out)
	for o := range out {
		s := float64(gamma[o]) / math.Sqrt(float64(variance[o])+eps)
		for j := o * per; j < (o+1)*per; j++ {
			nw[j] = float32(float64(w.Data[j]) * s)
		}
		b0 := 0.0
		if bias != nil {
			b0 = float64(bias[o])
		}
		nb[o] = float32((b0-float64(mean[o]))*s + float64(beta[o]))
	}

	prefix := conv.Output[0] + "+" + bn.GetName()
	wt := namedTensor{unique(prefix + ".weight"), Tensor{Shape: w.Shape, Data: nw}}
	bt := namedTensor{unique(prefix + ".bias"), Tensor{Shape: []int{out}, Data: nb}}
	c := &onnxpb.NodeProto{
		OpType:    conv.OpType,
		Name:      conv.Name,
		Input:     []string{conv.Input[0], wt.name, bt.name},
		Output:    []string{bn.Output[0]},
		Attribute: conv.Attribute,
	}
	return c, []namedTensor{wt, bt}
}
