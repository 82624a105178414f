package volume

import (
	"math"
	"testing"
)

// patternValue and patternLabel rebuild the synthetic inputs of
// testdata/refs.py exactly (both are small integers over 8).
func patternValue(d Dims, a Affine) *Volume {
	v, err := New(d, a)
	if err != nil {
		panic(err)
	}
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				v.Set(i, j, k, float32((i*37+j*101+k*211+i*j*7+j*k*3+i*k*5)%97)/8-6)
			}
		}
	}
	return v
}

func patternLabel(d Dims, a Affine) *Label {
	l, err := NewLabel(d, a)
	if err != nil {
		panic(err)
	}
	for k := 0; k < d[2]; k++ {
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				l.Data[d.Index(i, j, k)] = uint8((i*3 + j*5 + k*7 + i*j) % 6)
			}
		}
	}
	return l
}

// indexVolume holds each voxel's own flat index, as refs.py's orientation
// data does.
func indexVolume(d Dims, a Affine) *Volume {
	v, err := New(d, a)
	if err != nil {
		panic(err)
	}
	for i := range v.Data {
		v.Data[i] = float32(i)
	}
	return v
}

func TestResizeMatchesTorch(t *testing.T) {
	for _, c := range refResize {
		v := patternValue(c.in, Identity())
		got, err := v.ResizeTo(c.out, Linear)
		if err != nil {
			t.Fatal(err)
		}
		if got.Dims != c.out {
			t.Fatalf("%v→%v: dims %v", c.in, c.out, got.Dims)
		}
		for i, want := range c.linear {
			if math.Abs(float64(got.Data[i]-want)) > 2e-6*(1+math.Abs(float64(want))) {
				t.Fatalf("%v→%v trilinear voxel %d: got %v, torch %v", c.in, c.out, i, got.Data[i], want)
			}
		}
		l := patternLabel(c.in, Identity())
		gl, err := l.ResizeTo(c.out)
		if err != nil {
			t.Fatal(err)
		}
		gv, err := l.ToVolume().ResizeTo(c.out, Nearest)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range c.nearest {
			if gl.Data[i] != want || gv.Data[i] != float32(want) {
				t.Fatalf("%v→%v nearest voxel %d: label %d, volume %v, torch nearest-exact %d", c.in, c.out, i, gl.Data[i], gv.Data[i], want)
			}
		}
	}
}

func TestResampleMatchesScipy(t *testing.T) {
	for n, c := range refResample {
		v := patternValue(c.srcDims, c.srcAffine)
		got, err := v.ResampleToGrid(c.dstDims, c.dstAffine, Linear, c.fill)
		if err != nil {
			t.Fatal(err)
		}
		if got.Affine != c.dstAffine || got.Dims != c.dstDims {
			t.Fatalf("case %d: grid %v %v", n, got.Dims, got.Affine)
		}
		fills := 0
		for i, want := range c.linear {
			if want == c.fill {
				fills++
			}
			if math.Abs(float64(got.Data[i]-want)) > 1e-5*(1+math.Abs(float64(want))) {
				t.Fatalf("case %d voxel %d: got %v, scipy %v", n, i, got.Data[i], want)
			}
		}
		if fills == 0 || fills == len(c.linear) {
			t.Fatalf("case %d: %d of %d voxels outside; the case does not test the border", n, fills, len(c.linear))
		}
		l := patternLabel(c.srcDims, c.srcAffine)
		gl, err := l.ResampleToGrid(c.dstDims, c.dstAffine, 255)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range c.nearest {
			if gl.Data[i] != want {
				t.Fatalf("case %d nearest voxel %d: got %d, scipy %d", n, i, gl.Data[i], want)
			}
		}
	}
}

func TestOrntMatchesNibabel(t *testing.T) {
	for n, c := range refOrient {
		world, neg := c.affine.Ornt()
		for ax := 0; ax < 3; ax++ {
			wantNeg := c.ornt[ax][1] < 0
			if world[ax] != c.ornt[ax][0] || neg[ax] != wantNeg {
				t.Errorf("case %d: Ornt %v %v, nibabel io_orientation %v", n, world, neg, c.ornt)
				break
			}
		}
	}
}

func TestCanonicalMatchesNibabel(t *testing.T) {
	for n, c := range refOrient {
		d := Dims{4, 3, 5}
		v := indexVolume(d, c.affine)
		got := v.Canonical()
		checkAgainst(t, n, "as_closest_canonical", got, c.canonDims, c.canonAffine, c.canonData)
		gl := LabelFrom(v).Canonical()
		checkAgainst(t, n, "as_closest_canonical (label)", gl.ToVolume(), c.canonDims, c.canonAffine, c.canonData)

		r, err := v.Reorient(c.codes)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainst(t, n, "as_reoriented "+c.codes, r, c.codesDims, c.codesAffine, c.codesData)
	}
}

func checkAgainst(t *testing.T, n int, what string, got *Volume, d Dims, a Affine, data []int32) {
	t.Helper()
	if got.Dims != d {
		t.Fatalf("case %d %s: dims %v, nibabel %v", n, what, got.Dims, d)
	}
	if !got.Affine.Equal(a, 1e-12) {
		t.Fatalf("case %d %s: affine\n%v\nnibabel\n%v", n, what, got.Affine, a)
	}
	for i, want := range data {
		if got.Data[i] != float32(want) {
			t.Fatalf("case %d %s: voxel %d holds %v, nibabel %d", n, what, i, got.Data[i], want)
		}
	}
}
