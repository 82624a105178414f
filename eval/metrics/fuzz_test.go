package metrics

import (
	"testing"

	"github.com/covseg/covseg/volume"
)

// FuzzCompare builds two small masks from the input bytes and checks every
// distance figure against whole-grid brute force, and the overlap figures
// against their definitions.
func FuzzCompare(f *testing.F) {
	f.Add([]byte{3, 3, 3, 10, 20, 30, 0xff, 0x0f, 0xf0, 0x55, 0xaa, 0x01, 0x80})
	f.Add([]byte{8, 1, 1, 1, 1, 1, 0x81, 0x18})
	f.Add([]byte{1, 1, 1, 5, 5, 5, 0x3})
	f.Add([]byte{5, 4, 2, 200, 3, 90, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 6 {
			return
		}
		d := volume.Dims{1 + int(b[0])%8, 1 + int(b[1])%8, 1 + int(b[2])%6}
		sp := [3]float64{0.1 + float64(b[3])/50, 0.1 + float64(b[4])/50, 0.1 + float64(b[5])/50}
		bits := b[6:]
		bit := func(n int) bool {
			if len(bits) == 0 {
				return false
			}
			return bits[(n/8)%len(bits)]>>(n%8)&1 == 1
		}
		tm, pm := newMask(d), newMask(d)
		for p := range tm.v {
			tm.v[p], pm.v[p] = bit(2*p), bit(2*p+1)
		}
		taus := []float64{0, sp[0], 1}
		r, err := Compare(tm.label(sp, 1), pm.label(sp, 9), Options{Taus: taus, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		var nt, np, ni int
		for p := range tm.v {
			if tm.v[p] {
				nt++
			}
			if pm.v[p] {
				np++
			}
			if tm.v[p] && pm.v[p] {
				ni++
			}
		}
		if r.TruthVoxels != nt || r.PredVoxels != np || r.IntersectionVoxels != ni {
			t.Fatalf("counts %d %d %d, want %d %d %d", r.TruthVoxels, r.PredVoxels, r.IntersectionVoxels, nt, np, ni)
		}
		if nt == 0 || np == 0 {
			return // conventions: TestEmptyMaskConventions
		}
		if want := Value(float64(2*ni) / float64(nt+np)); r.Dice != want {
			t.Fatalf("dice %v, want %v", r.Dice, want)
		}
		st, spr := bruteSurface(tm.v, d), bruteSurface(pm.v, d)
		dPT, dTP := bruteDirected(spr, st, d, sp), bruteDirected(st, spr, d, sp)
		hd95 := max(percentileSorted(dPT, 95), percentileSorted(dTP, 95))
		hd := max(dPT[len(dPT)-1], dTP[len(dTP)-1])
		if !close12(float64(r.HD95), hd95) || !close12(float64(r.HD), hd) {
			t.Fatalf("dims %v spacing %v: hd95 %v hd %v, brute force %v %v", d, sp, r.HD95, r.HD, hd95, hd)
		}
		nsd := func(tau float64) float64 {
			return float64(countAtMost(dPT, tau)+countAtMost(dTP, tau)) / float64(len(dPT)+len(dTP))
		}
		for i, tau := range taus {
			// Two features whose distances differ by an ulp (2·1.96 mm
			// against 3.92 mm, say) may be picked either way by any
			// floating-point transform, so a distance equal to τ within
			// rounding may count either way.
			lo, hi := nsd(tau*(1-1e-12)), nsd(tau*(1+1e-12))
			if got := float64(r.NSD[i]); got < lo || got > hi {
				t.Fatalf("dims %v spacing %v: nsd at %v = %v, brute force %v..%v", d, sp, tau, got, lo, hi)
			}
		}
	})
}

func close12(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-12*max(1, b)
}
