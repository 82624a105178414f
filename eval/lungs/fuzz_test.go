package lungs

import (
	"math"
	"testing"

	"github.com/covseg/covseg/volume"
)

// FuzzSegment runs Segment on small volumes of arbitrary content, spacing
// and orientation: it must neither fail nor panic, and must return a mask
// of labels 0, 1 and 2 on the input's grid.
func FuzzSegment(f *testing.F) {
	f.Add([]byte{5, 6, 3, 0, 1, 2, 3, 4, 0, 0, 1, 1, 2, 2, 3, 3})
	f.Add([]byte{12, 12, 4, 7, 1, 1, 1, 1, 2, 2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		d := volume.Dims{1 + int(b[0])%16, 1 + int(b[1])%16, 1 + int(b[2])%8}
		code := b[3]
		sp := [3]float64{0.5 + float64(code%4), 0.5 + float64(code/4%4), 1 + float64(code/16%4)}
		a := volume.Diag(sp, [3]float64{})
		if code&0x40 != 0 { // LPS
			a = volume.LPSToRAS(a)
		}
		if code&0x80 != 0 { // axes permuted
			a[0], a[1] = a[1], a[0]
		}
		v, err := volume.New(d, a)
		if err != nil {
			t.Fatal(err)
		}
		values := [...]float32{-1000, -850, -960, 40, 700, float32(math.NaN()), -400, float32(math.Inf(1))}
		for i := range v.Data {
			if len(b) > 4 {
				v.Data[i] = values[b[4+i%(len(b)-4)]%8]
			}
		}
		r, err := Segment(v, DefaultOptions())
		if err != nil {
			t.Fatalf("Segment: %v", err)
		}
		if r.Mask.Dims != d || r.Mask.Affine != a || len(r.Mask.Data) != d.Len() {
			t.Fatalf("mask grid %v %v, want %v %v", r.Mask.Dims, r.Mask.Affine, d, a)
		}
		for _, l := range r.Mask.Data {
			if l > Left {
				t.Fatalf("label %d", l)
			}
		}
	})
}
