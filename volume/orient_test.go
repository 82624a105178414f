package volume

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/covseg/covseg/internal/testutil"
)

// randomAffine returns an affine with random spacing, origin and, when
// oblique, a random rotation; axis-aligned ones get a random permutation
// and signs.
func randomAffine(rng *rand.Rand, oblique bool) Affine {
	var m [3][3]float64
	if oblique {
		// Gram-Schmidt on random vectors.
		for c := 0; c < 3; c++ {
			for r := 0; r < 3; r++ {
				m[r][c] = rng.NormFloat64()
			}
			for p := 0; p < c; p++ {
				dot := m[0][c]*m[0][p] + m[1][c]*m[1][p] + m[2][c]*m[2][p]
				for r := 0; r < 3; r++ {
					m[r][c] -= dot * m[r][p]
				}
			}
			n := math.Sqrt(m[0][c]*m[0][c] + m[1][c]*m[1][c] + m[2][c]*m[2][c])
			for r := 0; r < 3; r++ {
				m[r][c] /= n
			}
		}
	} else {
		perm := rng.Perm(3)
		for c := 0; c < 3; c++ {
			m[perm[c]][c] = float64(1 - 2*rng.IntN(2))
		}
	}
	a := Identity()
	for c := 0; c < 3; c++ {
		s := 0.3 + 4*rng.Float64()
		for r := 0; r < 3; r++ {
			a[r][c] = m[r][c] * s
		}
	}
	for r := 0; r < 3; r++ {
		a[r][3] = 400 * (rng.Float64() - 0.5)
	}
	return a
}

func randomVolume(rng *rand.Rand, d Dims, a Affine) *Volume {
	v, _ := New(d, a)
	for i := range v.Data {
		v.Data[i] = rng.Float32()*2000 - 1000
	}
	return v
}

// voxelOf maps a world position to the voxel index of a grid, failing the
// test unless it lands on a whole voxel.
func voxelOf(t *testing.T, a Affine, w [3]float64) [3]int {
	t.Helper()
	inv, err := a.Inverse()
	if err != nil {
		t.Fatal(err)
	}
	p := inv.Apply(w)
	var q [3]int
	for ax := range p {
		q[ax] = int(math.Round(p[ax]))
		if math.Abs(p[ax]-float64(q[ax])) > 1e-6 {
			t.Fatalf("world %v is voxel %v of the source, not a whole voxel", w, p)
		}
	}
	return q
}

// checkSameWorld checks that every voxel of got sits at the world position
// of a source voxel holding the same value.
func checkSameWorld(t *testing.T, src, got *Volume) {
	t.Helper()
	d := got.Dims
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				q := voxelOf(t, src.Affine, got.Affine.Apply([3]float64{float64(i), float64(j), float64(k)}))
				for ax := range q {
					if q[ax] < 0 || q[ax] >= src.Dims[ax] {
						t.Fatalf("voxel (%d,%d,%d) lands outside the source at %v", i, j, k, q)
					}
				}
				if got.At(i, j, k) != src.At(q[0], q[1], q[2]) {
					t.Fatalf("voxel (%d,%d,%d) holds %v; source voxel %v at the same world position holds %v",
						i, j, k, got.At(i, j, k), q, src.At(q[0], q[1], q[2]))
				}
			}
		}
	}
}

var allCodes = func() []string {
	var out []string
	letters := [3][2]byte{{'R', 'L'}, {'A', 'P'}, {'S', 'I'}}
	for _, p := range [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		for s := 0; s < 8; s++ {
			out = append(out, string([]byte{letters[p[0]][s&1], letters[p[1]][s>>1&1], letters[p[2]][s>>2&1]}))
		}
	}
	return out
}()

func TestReorientKeepsWorldPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 12; trial++ {
		d := Dims{2 + rng.IntN(5), 2 + rng.IntN(5), 2 + rng.IntN(5)}
		v := randomVolume(rng, d, randomAffine(rng, trial%2 == 1))
		c := v.Canonical()
		if c.Dims.Len() != d.Len() {
			t.Fatalf("canonical dims %v from %v", c.Dims, d)
		}
		checkSameWorld(t, v, c)
		if trial%2 == 0 && c.Affine.AxCodes() != "RAS" {
			t.Fatalf("canonical of %s reads as %s", v.Affine.AxCodes(), c.Affine.AxCodes())
		}
		for _, codes := range allCodes {
			r, err := v.Reorient(codes)
			if err != nil {
				t.Fatal(err)
			}
			checkSameWorld(t, v, r)
			if trial%2 == 0 && r.Affine.AxCodes() != codes {
				t.Fatalf("reoriented to %s reads as %s", codes, r.Affine.AxCodes())
			}
		}
		for ax := 0; ax < 3; ax++ {
			f, err := v.Flip(ax)
			if err != nil {
				t.Fatal(err)
			}
			checkSameWorld(t, v, f)
		}
	}
}

func TestReorientRoundTripIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 8; trial++ {
		d := Dims{1 + rng.IntN(6), 1 + rng.IntN(6), 1 + rng.IntN(6)}
		v := randomVolume(rng, d, randomAffine(rng, trial%2 == 1))
		l := LabelFrom(v)
		for _, codes := range allCodes {
			plan, err := PlanReorient(v.Dims, v.Affine, codes)
			if err != nil {
				t.Fatal(err)
			}
			there, err := plan.Apply(v)
			if err != nil {
				t.Fatal(err)
			}
			back, err := plan.Undo(there)
			if err != nil {
				t.Fatal(err)
			}
			if back.Dims != v.Dims || back.Affine != v.Affine {
				t.Fatalf("%s and back: grid %v %v, want %v %v", codes, back.Dims, back.Affine, v.Dims, v.Affine)
			}
			for i := range v.Data {
				if math.Float32bits(back.Data[i]) != math.Float32bits(v.Data[i]) {
					t.Fatalf("%s and back: voxel %d changed", codes, i)
				}
			}
			lt, err := plan.ApplyLabel(l)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := plan.UndoLabel(lt)
			if err != nil {
				t.Fatal(err)
			}
			if lb.Affine != l.Affine || string(lb.Data) != string(l.Data) {
				t.Fatalf("%s and back: label map changed", codes)
			}
			// Reorienting anything back to canonical gives the canonical volume.
			if trial%2 == 0 {
				a, b := there.Canonical(), v.Canonical()
				if a.Dims != b.Dims || !a.Affine.Equal(b.Affine, 1e-9) || !equalData(a.Data, b.Data) {
					t.Fatalf("canonical of the %s copy differs from canonical of the original", codes)
				}
			}
		}
	}
}

func equalData(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestCanonicalMarker places one bright voxel in an LPS volume and in a
// permuted (PIR-like) one and checks exactly where it lands: a flipped or
// swapped axis moves it.
func TestCanonicalMarker(t *testing.T) {
	d := Dims{5, 6, 7}
	// LPS: i runs to the left, j to posterior, k superior.
	lps := Affine{{-0.8, 0, 0, 100}, {0, -0.9, 0, 50}, {0, 0, 2.5, -30}, {0, 0, 0, 1}}
	v, _ := New(d, lps)
	v.Set(1, 2, 3, 1)
	c := v.Canonical()
	if c.Dims != d || c.At(5-1-1, 6-1-2, 3) != 1 {
		t.Fatalf("LPS marker (1,2,3) not at (3,3,3) in RAS: dims %v", c.Dims)
	}
	if w0, w1 := lps.Apply([3]float64{1, 2, 3}), c.Affine.Apply([3]float64{3, 3, 3}); !near3(w0, w1, 1e-9) {
		t.Fatalf("marker moved in the world: %v → %v", w0, w1)
	}
	if c.Affine.Spacing() != lps.Spacing() || c.Affine[0][0] <= 0 || c.Affine[1][1] <= 0 || c.Affine[2][2] <= 0 {
		t.Fatalf("canonical affine %v", c.Affine)
	}
	// i points inferior (world −z), j right (+x), k posterior (−y): "IRP".
	irp := Affine{{0, 0.7, 0, 0}, {0, 0, -1.1, 0}, {-3, 0, 0, 0}, {0, 0, 0, 1}}
	if got := irp.AxCodes(); got != "IRP" {
		t.Fatalf("axcodes %s, want IRP", got)
	}
	p, _ := New(d, irp)
	p.Set(1, 2, 3, 1)
	c = p.Canonical()
	// RAS axis 0 = old j (6), axis 1 = old k flipped (7), axis 2 = old i flipped (5).
	if c.Dims != (Dims{6, 7, 5}) || c.At(2, 7-1-3, 5-1-1) != 1 {
		t.Fatalf("IRP marker (1,2,3) not at (2,3,3) of dims 6x7x5: dims %v", c.Dims)
	}
	// Flip of axis 1 of the LPS volume: j → 5−j.
	f, _ := v.Flip(1)
	if f.At(1, 3, 3) != 1 || f.Affine.AxCodes() != "LAS" {
		t.Fatalf("flip j: marker or axcodes %s wrong", f.Affine.AxCodes())
	}
}

func near3(a, b [3]float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

// TestCanonicalFixtures feeds every fixture's on-disk dims and affine (as
// nibabel read them) to Canonical and expects nibabel's canonical dims and
// affine. expected.json rounds affines to 5 decimals, and the canonical
// origin adds up to (n−1) rounded spacings, so the tolerance per entry is
// the rounding that can reach it.
func TestCanonicalFixtures(t *testing.T) {
	raw, err := os.ReadFile(testutil.IO(t, "expected.json"))
	if err != nil {
		t.Fatalf("fixture missing (../shared beside the repository): %v", err)
	}
	var entries map[string]struct {
		Dims        Dims          `json:"dims"`
		AffineRAS   [4][4]float64 `json:"affine_ras"`
		DimsOnDisk  []int         `json:"dims_on_disk"`
		AffineDisk  [4][4]float64 `json:"affine_on_disk"`
		AxcodesDisk string        `json:"axcodes_on_disk"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("expected.json has no entries")
	}
	for name, e := range entries {
		d := Dims{e.DimsOnDisk[0], e.DimsOnDisk[1], e.DimsOnDisk[2]}
		a := Affine(e.AffineDisk)
		if got := a.AxCodes(); got != e.AxcodesDisk {
			t.Errorf("%s: axcodes %s, nibabel %s", name, got, e.AxcodesDisk)
		}
		// A marker voxel near one corner checks the data as well as the grid.
		l, err := NewLabel(d, a)
		if err != nil {
			t.Fatal(err)
		}
		m := [3]int{1, 2, min(3, d[2]-1)}
		l.Data[d.Index(m[0], m[1], m[2])] = 7
		c := l.Canonical()
		if c.Dims != e.Dims {
			t.Errorf("%s: canonical dims %v, nibabel %v", name, c.Dims, e.Dims)
			continue
		}
		const round = 5e-6
		for r := 0; r < 3; r++ {
			for col := 0; col < 4; col++ {
				tol := round + 1e-9
				if col == 3 {
					tol += round
					for ax := 0; ax < 3; ax++ {
						tol += round * float64(d[ax]-1)
					}
				}
				if math.Abs(c.Affine[r][col]-e.AffineRAS[r][col]) > tol {
					t.Errorf("%s: canonical affine[%d][%d] = %.6f, nibabel %.6f (tolerance %.2g)",
						name, r, col, c.Affine[r][col], e.AffineRAS[r][col], tol)
				}
			}
		}
		inv, _ := c.Affine.Inverse()
		p := inv.Apply(a.Apply([3]float64{float64(m[0]), float64(m[1]), float64(m[2])}))
		q := [3]int{int(math.Round(p[0])), int(math.Round(p[1])), int(math.Round(p[2]))}
		if c.Data[c.Dims.Index(q[0], q[1], q[2])] != 7 {
			t.Errorf("%s: marker voxel %v is not at its world position in the canonical copy (%v)", name, m, q)
		}
	}
}

func TestOrntSingularAffine(t *testing.T) {
	for _, a := range []Affine{
		{{0, 0, 0, 1}, {0, 1, 0, 2}, {0, 0, 1, 3}, {0, 0, 0, 1}},
		{{1, 1, 0, 0}, {1, 1, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 1}},
		{},
	} {
		w, _ := a.Ornt()
		if w[0]+w[1]+w[2] != 3 || w[0] == w[1] || w[1] == w[2] || w[0] == w[2] {
			t.Fatalf("Ornt of singular %v gives %v, not a permutation", a, w)
		}
		v, _ := New(Dims{2, 3, 4}, a)
		v.Set(1, 2, 3, 5)
		c := v.Canonical()
		if c.Dims.Len() != 24 {
			t.Fatalf("canonical of singular: dims %v", c.Dims)
		}
	}
}

func TestReorientErrors(t *testing.T) {
	v, _ := New(Dims{2, 2, 2}, Identity())
	for _, codes := range []string{"", "RA", "RASL", "RRS", "RAX", "LRS", "SIA"} {
		if _, err := v.Reorient(codes); err == nil {
			t.Errorf("Reorient(%q) accepted", codes)
		}
	}
	if _, err := v.Reorient("lps"); err != nil {
		t.Errorf("lower-case codes refused: %v", err)
	}
	for _, ax := range []int{-1, 3} {
		if _, err := v.Flip(ax); err == nil {
			t.Errorf("Flip(%d) accepted", ax)
		}
	}
	plan := PlanCanonical(Dims{2, 2, 3}, Identity())
	if _, err := plan.Apply(v); err == nil {
		t.Error("Apply accepted a volume of other dims")
	}
	w, _ := New(Dims{2, 2, 3}, Diag([3]float64{2, 1, 1}, [3]float64{}))
	if _, err := plan.Apply(w); err == nil {
		t.Error("Apply accepted a volume of another affine")
	}
	bad := &Volume{Dims: Dims{2, 2, 3}, Affine: Identity(), Data: make([]float32, 5)}
	if _, err := plan.Apply(bad); err == nil {
		t.Error("Apply accepted a volume with too few voxels")
	}
}
