package onnx_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/covseg/covseg/engine/onnx"
	"github.com/covseg/covseg/model"
)

// vol is a float64 NCDHW tensor of the reference engine.
type vol struct {
	shape [5]int
	data  []float64
}

func newVol(shape [5]int) *vol {
	return &vol{shape: shape, data: make([]float64, shape[0]*shape[1]*shape[2]*shape[3]*shape[4])}
}

func (v *vol) at(n, c, d, h, w int) *float64 {
	s := v.shape
	return &v.data[(((n*s[1]+c)*s[2]+d)*s[3]+h)*s[4]+w]
}

// refOps is a plain, obviously-correct float64 implementation of model.Ops:
// the reference the ONNX graphs are checked against.
type refOps struct {
	w map[string]onnx.Tensor
}

var _ model.Ops[*vol] = refOps{}

func (r refOps) param(name string) []float32 {
	t, ok := r.w[name]
	if !ok {
		panic("reference: no parameter " + name)
	}
	return t.Data
}

func (r refOps) Conv3d(name string, x *vol, s model.ConvSpec) *vol {
	w := r.param(name + ".weight")
	var bias []float32
	if s.Bias {
		bias = r.param(name + ".bias")
	}
	var os [3]int
	for i := range 3 {
		os[i] = (x.shape[2+i]+2*s.Padding[i]-s.Kernel[i])/s.Stride[i] + 1
	}
	y := newVol([5]int{x.shape[0], s.Out, os[0], os[1], os[2]})
	k := s.Kernel
	for n := range y.shape[0] {
		for o := range s.Out {
			for d := range os[0] {
				for h := range os[1] {
					for wi := range os[2] {
						sum := 0.0
						if bias != nil {
							sum = float64(bias[o])
						}
						for c := range s.In {
							for a := range k[0] {
								zd := d*s.Stride[0] - s.Padding[0] + a
								if zd < 0 || zd >= x.shape[2] {
									continue
								}
								for b := range k[1] {
									zh := h*s.Stride[1] - s.Padding[1] + b
									if zh < 0 || zh >= x.shape[3] {
										continue
									}
									for e := range k[2] {
										zw := wi*s.Stride[2] - s.Padding[2] + e
										if zw < 0 || zw >= x.shape[4] {
											continue
										}
										wv := w[(((o*s.In+c)*k[0]+a)*k[1]+b)*k[2]+e]
										sum += float64(wv) * *x.at(n, c, zd, zh, zw)
									}
								}
							}
						}
						*y.at(n, o, d, h, wi) = sum
					}
				}
			}
		}
	}
	return y
}

func (r refOps) BatchNorm3d(name string, x *vol, s model.BNSpec) *vol {
	g, b := r.param(name+".weight"), r.param(name+".bias")
	m, v := r.param(name+".running_mean"), r.param(name+".running_var")
	y := newVol(x.shape)
	per := x.shape[2] * x.shape[3] * x.shape[4]
	for i := range x.data {
		c := (i / per) % x.shape[1]
		y.data[i] = (x.data[i]-float64(m[c]))/math.Sqrt(float64(v[c])+1e-5)*float64(g[c]) + float64(b[c])
	}
	return y
}

func (refOps) ReLU(x *vol) *vol {
	y := newVol(x.shape)
	for i, v := range x.data {
		y.data[i] = max(v, 0)
	}
	return y
}

func (refOps) Add(a, b *vol) *vol {
	if a.shape != b.shape {
		panic(fmt.Sprintf("reference add: %v + %v", a.shape, b.shape))
	}
	y := newVol(a.shape)
	for i := range a.data {
		y.data[i] = a.data[i] + b.data[i]
	}
	return y
}

func (refOps) Concat(xs ...*vol) *vol {
	s := xs[0].shape
	s[1] = 0
	for _, x := range xs {
		s[1] += x.shape[1]
	}
	y := newVol(s)
	for n := range s[0] {
		c0 := 0
		for _, x := range xs {
			for c := range x.shape[1] {
				for d := range s[2] {
					for h := range s[3] {
						for w := range s[4] {
							*y.at(n, c0+c, d, h, w) = *x.at(n, c, d, h, w)
						}
					}
				}
			}
			c0 += x.shape[1]
		}
	}
	return y
}

// ResizeNearestLike picks src = nearestIndices(in, out)[dst] on each axis.
func (refOps) ResizeNearestLike(x, ref *vol) *vol {
	s := x.shape
	s[2], s[3], s[4] = ref.shape[2], ref.shape[3], ref.shape[4]
	y := newVol(s)
	var idx [5][]int
	for a := 2; a < 5; a++ {
		idx[a] = nearestIndices(x.shape[a], s[a])
	}
	for n := range s[0] {
		for c := range s[1] {
			for d := range s[2] {
				for h := range s[3] {
					for w := range s[4] {
						*y.at(n, c, d, h, w) = *x.at(n, c, idx[2][d], idx[3][h], idx[4][w])
					}
				}
			}
		}
	}
	return y
}

// nearestIndices is PyTorch's CPU rule for F.interpolate(mode="nearest"):
// src = min(floor(float32(dst) * (float32(in) / float32(out))), in - 1) in
// float32 arithmetic.
func nearestIndices(in, out int) []int {
	scale := float32(in) / float32(out)
	idx := make([]int, out)
	for i := range idx {
		p := float32(float32(i) * scale)
		idx[i] = min(int(math.Floor(float64(p))), in-1)
	}
	return idx
}

// randWeights fills weights with the parameters a conv or BN layer needs,
// with BN statistics away from the identity so folding matters.
type randWeights struct {
	rng *rand.Rand
	w   map[string]onnx.Tensor
}

func newRandWeights(seed uint64) *randWeights {
	return &randWeights{rng: rand.New(rand.NewPCG(seed, 1)), w: map[string]onnx.Tensor{}}
}

func (r *randWeights) tensor(name string, scale, offset float64, shape ...int) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(offset + scale*r.rng.NormFloat64())
	}
	r.w[name] = onnx.Tensor{Shape: shape, Data: data}
}

func (r *randWeights) conv(name string, s model.ConvSpec) {
	fan := float64(s.In * s.Kernel[0] * s.Kernel[1] * s.Kernel[2])
	r.tensor(name+".weight", 1/math.Sqrt(fan), 0, s.Out, s.In, s.Kernel[0], s.Kernel[1], s.Kernel[2])
	if s.Bias {
		r.tensor(name+".bias", 0.5, 0, s.Out)
	}
}

func (r *randWeights) bn(name string, c int) {
	r.tensor(name+".weight", 0.3, 1, c)
	r.tensor(name+".bias", 0.3, 0, c)
	r.tensor(name+".running_mean", 0.5, 0, c)
	v := make([]float32, c)
	for i := range v {
		v[i] = float32(0.2 + 2*r.rng.Float64())
	}
	r.w[name+".running_var"] = onnx.Tensor{Shape: []int{c}, Data: v}
}

func (r *randWeights) input(shape [5]int) *vol {
	x := newVol(shape)
	for i := range x.data {
		x.data[i] = float64(float32(r.rng.NormFloat64()))
	}
	return x
}

func TestNearestIndicesReference(t *testing.T) {
	// PyTorch 1.13 F.interpolate(mode="nearest") on arange(2) to 82 and
	// arange(14) to 16.
	if got := nearestIndices(2, 82)[41]; got != 0 {
		t.Errorf("in 2, out 82, dst 41: %d, PyTorch takes 0", got)
	}
	want := []int{0, 0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10, 11, 12, 13}
	if got := nearestIndices(14, 16); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("in 14, out 16: %v, PyTorch %v", got, want)
	}
}

// The reference's rule is model.NearestIndices's, written independently.
func TestNearestIndicesMatchModel(t *testing.T) {
	for in := 1; in <= 100; in++ {
		for out := 1; out <= 100; out++ {
			if a, b := nearestIndices(in, out), model.NearestIndices(in, out); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("in %d, out %d: reference %v, model %v", in, out, a, b)
			}
		}
	}
}
