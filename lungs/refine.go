package lungs

import "math"

// refineScratch holds one goroutine's buffers for refine.
type refineScratch struct {
	e       edt
	lb      labeler
	m, dm   []uint8
	d       []float64
	lab     []int32
	holeish []bool
}

// refine closes each lung slice by slice within the costal band of the rib
// cage and fills its holes (step 7).
func (s *seg) refine() {
	mx, my := s.margins()
	n := (s.nx + 2*mx) * (s.ny + 2*my)
	forEach(s.opt.Workers, s.nz, func() *refineScratch {
		return &refineScratch{m: make([]uint8, n), dm: make([]uint8, n), d: make([]float64, n), lab: make([]int32, n)}
	}, func(sc *refineScratch, k int) {
		for _, l := range []uint8{Right, Left} {
			s.refineLabel(sc, k, l)
		}
	})
}

// margins returns how far, in pixels along x and y, the closing reaches
// beyond a lung, with a background ring of two pixels.
func (s *seg) margins() (mx, my int) {
	R := s.opt.ClosingRadiusMM
	return int(math.Ceil(R/s.sx)) + 2, int(math.Ceil(R/s.sy)) + 2
}

// costal reports whether pixel (x, y) of a slice lies on the costal side of
// the lungs: within CostalBandMM of the rib cage's hull, with no lung on the
// straight path to the nearest point of the hull. The second condition
// keeps the hilum and the mediastinum out even where a cropped field of
// view brings the hull near them.
func (s *seg) costal(out []uint8, bone *hull, x, y int) bool {
	d, qx, qy := bone.nearestEdge(x, y, s.sx, s.sy)
	if d > s.opt.CostalBandMM {
		return false
	}
	dx, dy := qx-float64(x), qy-float64(y)
	n := int(math.Ceil(max(math.Abs(dx), math.Abs(dy))))
	for t := 1; t <= n; t++ {
		f := float64(t) / float64(n)
		px, py := int(math.Round(float64(x)+f*dx)), int(math.Round(float64(y)+f*dy))
		if px >= 0 && py >= 0 && px < s.nx && py < s.ny && out[py*s.nx+px] != 0 {
			return false
		}
	}
	return true
}

// Marks in refineScratch.m.
const (
	mNone  = 0
	mLung  = 1
	mAdded = 2
)

func (s *seg) refineLabel(sc *refineScratch, k int, l uint8) {
	nx, ny := s.nx, s.ny
	out := s.out[k*s.ns : (k+1)*s.ns]
	x0, y0, x1, y1 := nx, ny, -1, -1
	for y := 0; y < ny; y++ {
		for x, v := range out[y*nx : (y+1)*nx] {
			if v == l {
				x0, x1 = min(x0, x), max(x1, x)
				y0, y1 = min(y0, y), max(y1, y)
			}
		}
	}
	if x1 < 0 {
		return
	}
	// The window reaches beyond the slice where the lung is near its
	// border: what lies beyond counts as background, so the closing does
	// not fill the strip between a lung and the border of a cropped field
	// of view.
	R := s.opt.ClosingRadiusMM
	mx, my := s.margins()
	wx0, wy0 := x0-mx, y0-my
	w, h := x1-x0+1+2*mx, y1-y0+1+2*my
	m := sc.m[:w*h]
	clear(m)
	for y := max(0, wy0); y < min(ny, wy0+h); y++ {
		for x := max(0, wx0); x < min(nx, wx0+w); x++ {
			m[(y-wy0)*w+x-wx0] = b2u(out[y*nx+x] == l)
		}
	}
	bone := &s.sl[k].bone
	if R > 0 && len(bone.poly) >= 3 {
		r2 := R * R
		d, dm := sc.d[:w*h], sc.dm[:w*h]
		sc.e.transform(d, m, mLung, w, h, s.sx, s.sy)
		for i, v := range d {
			dm[i] = b2u(v <= r2)
		}
		sc.e.transform(d, dm, 0, w, h, s.sx, s.sy)
		hu := s.hu[k*s.ns : (k+1)*s.ns]
		airHU, boneHU := float32(s.opt.AirHU), float32(s.opt.BoneHU)
		for y := max(0, -wy0); y < min(h, ny-wy0); y++ {
			for x := max(0, -wx0); x < min(w, nx-wx0); x++ {
				i := y*w + x
				if m[i] != mNone || d[i] <= r2 {
					continue
				}
				gx, gy := wx0+x, wy0+y
				p := gy*nx + gx
				if v := hu[p]; out[p] != 0 || !(v >= airHU && v < boneHU) || !bone.contains(gx, gy) {
					continue
				}
				if s.costal(out, bone, gx, gy) {
					m[i] = mAdded
				}
			}
		}
	}
	// Holes: background components that do not reach the window's border
	// (the window has a background margin, beyond the slice where it meets
	// the slice's border: a region open to that border is no hole).
	for i, v := range m {
		sc.dm[i] = b2u(v == mNone)
	}
	lab := sc.lab[:w*h]
	n := sc.lb.label(lab, sc.dm[:w*h], w, h, false)
	if cap(sc.holeish) < n+1 {
		sc.holeish = make([]bool, n+1)
	}
	hole := sc.holeish[:n+1]
	for i := range hole {
		hole[i] = true
	}
	hole[0] = false
	for x := 0; x < w; x++ {
		hole[lab[x]] = false
		hole[lab[(h-1)*w+x]] = false
	}
	for y := 0; y < h; y++ {
		hole[lab[y*w]] = false
		hole[lab[y*w+w-1]] = false
	}
	for y := max(0, -wy0); y < min(h, ny-wy0); y++ {
		for x := max(0, -wx0); x < min(w, nx-wx0); x++ {
			i := y*w + x
			p := (wy0+y)*nx + wx0 + x
			if out[p] == 0 && (m[i] == mAdded || hole[lab[i]]) {
				out[p] = l
			}
		}
	}
}
