package dicomseries

import (
	"fmt"
	"math"
	"testing"

	"github.com/covseg/covseg/volume"
)

// FuzzAssemble feeds the series assembler slices derived from the input:
// a base orientation, a step, per-slice jitter and a shuffled order. It
// must never panic, and when it accepts a stack every slice must lie where
// the affine puts it, within the stated tolerances.
func FuzzAssemble(f *testing.F) {
	f.Add([]byte{5, 0, 16, 3, 7, 7})
	f.Add([]byte{1, 1, 0, 10, 0})
	f.Add([]byte{9, 3, 250, 12, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27})
	f.Add([]byte{4, 0x82, 8, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 1, 0})
	f.Add([]byte{3, 2, 8, 5, 5, 0, 40, 0, 0, 80, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := geomFrom(data)
		order, aff, err := assemble(g)
		if err != nil {
			return
		}
		checkAssembled(t, g, order, aff)
	})
}

// geomFrom decodes fuzz input into slice geometry.
func geomFrom(data []byte) []sliceGeom {
	at := func(i int) byte {
		if i < len(data) {
			return data[i]
		}
		return 0
	}
	signed := func(i int) float64 { return float64(int8(at(i))) }
	n := 1 + int(at(0))%12
	s30, c30 := math.Sin(0.5), math.Cos(0.5)
	bases := [][6]float64{
		{1, 0, 0, 0, 1, 0}, {1, 0, 0, 0, 0, -1}, {0, 1, 0, 0, 0, -1},
		{c30, s30, 0, -s30 * c30, c30 * c30, s30},
	}
	iop := bases[int(at(1)&0x7F)%len(bases)]
	if at(1)&0x80 != 0 { // raw cosines: mostly invalid ones
		for i := range iop {
			iop[i] = signed(20+i) / 64
		}
	}
	step := signed(2) / 8
	spacing := [2]float64{float64(1+at(3)%64) / 16, float64(1+at(4)%64) / 16}
	if at(1)&0x40 != 0 { // raw spacing: zero and negative too
		spacing = [2]float64{signed(3) / 8, signed(4) / 8}
	}
	r := [3]float64{iop[0], iop[1], iop[2]}
	c := [3]float64{iop[3], iop[4], iop[5]}
	nrm := cross(r, c)
	if l := norm(nrm); l > 0 {
		nrm = scale(nrm, 1/l)
	}
	g := make([]sliceGeom, n)
	for k := range g {
		// Each slice takes its place on the stack from a byte of the input
		// (so order is shuffled, and duplicates happen), plus jitter.
		place := float64(int(at(30+k)) % n)
		if len(data) <= 30+k {
			place = float64(k)
		}
		g[k] = sliceGeom{
			name: fmt.Sprintf("s%d", k), iop: iop, spacing: spacing, rows: 2, cols: 3,
			thickness: signed(5) / 4,
		}
		for a := 0; a < 3; a++ {
			g[k].ipp[a] = 10*float64(a) + place*step*nrm[a] + signed(6+3*k%12+a)/float64(1+int(at(19))%64)/16
		}
	}
	return g
}

// checkAssembled checks an accepted stack: order is a permutation, the
// affine is finite and right-handed, and every slice lies where the affine
// puts its plane.
func checkAssembled(t *testing.T, g []sliceGeom, order []int, aff volume.Affine) {
	t.Helper()
	if len(order) != len(g) {
		t.Fatalf("order has %d entries for %d slices", len(order), len(g))
	}
	seen := make([]bool, len(g))
	for _, i := range order {
		if i < 0 || i >= len(g) || seen[i] {
			t.Fatalf("order %v is not a permutation", order)
		}
		seen[i] = true
	}
	for _, row := range aff {
		for _, x := range row {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("affine holds %g: %v", x, aff)
			}
		}
	}
	col := func(c int) [3]float64 { return [3]float64{aff[0][c], aff[1][c], aff[2][c]} }
	if det := dot(cross(col(0), col(1)), col(2)); !(det > 0) {
		t.Fatalf("affine is not right-handed (det %g): %v", det, aff)
	}
	sp := aff.Spacing()
	extent := sp[2] * float64(len(g)-1)
	tol := gapRelTol*sp[2]*1.1 + gapAbsTol + tiltAbsTol + tiltRelTol*extent + 1e-9
	for k, i := range order {
		p := g[i].ipp
		want := [3]float64{-p[0], -p[1], p[2]} // LPS to RAS
		got := aff.Apply([3]float64{0, 0, float64(k)})
		if d := norm(sub(got, want)); d > tol {
			t.Fatalf("slice %d (%s) is %g mm from where the affine puts it (tolerance %g); affine %v", k, g[i].name, d, tol, aff)
		}
	}
}

// FuzzFile feeds one file's bytes through everything a slice goes
// through: structure walk, header parse, checks and pixel decoding. Errors
// are expected; panics and runaway allocations are not.
func FuzzFile(f *testing.F) {
	for _, ts := range []string{tsImplicitLE, tsExplicitLE, tsExplicitBE, tsDeflatedLE} {
		s := axialSpec("1.2.3", 3, 2)
		s.ts = ts
		s.stored = []uint32{1, 2, 3, 0xFFFF, 5, 0x8000}
		b := s.encode()
		f.Add(b)
		f.Add(b[:len(b)-3])
		s.noMeta = true
		f.Add(s.encode())
	}
	j := axialSpec("1.2.3", 4, 3)
	j.ts, j.jpeg, j.fragments = tsJPEGLosslessSV1, true, 2
	j.stored = []uint32{0, 1, 0x8000, 0x7FFF, 5, 6, 7, 8, 9, 10, 11, 0xFFFF}
	f.Add(j.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := headerOf(b, int64(len(b)))
		if err != nil {
			return
		}
		h.path = "fuzz"
		_, pf, err := check(h)
		if err != nil || h.rows*h.cols > 1<<20 {
			return
		}
		dst := make([]float32, h.rows*h.cols)
		_ = decodePixels(b, h, pf, dst)
	})
}
