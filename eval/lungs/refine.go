package lungs

import (
	"math"
	"slices"
)

// refineScratch holds one goroutine's buffers for refine.
type refineScratch struct {
	e       edt
	lb      labeler
	m, bg   []uint8
	cand    []uint8
	d       []float64
	lab     []int32
	holeish []bool
	count   [][2]int32
	shift   []int
}

// refine fills each lung's holes and, slice by slice, brings the dense
// lung at its costal border back into it (step 7).
func (s *seg) refine() {
	mx, my := s.margins()
	n := (s.nx + 2*mx) * (s.ny + 2*my)
	forEach(s.opt.Workers, s.nz, func() *refineScratch {
		return &refineScratch{m: make([]uint8, n), bg: make([]uint8, n), cand: make([]uint8, n),
			d: make([]float64, n), lab: make([]int32, n), shift: make([]int, max(s.nx, s.ny))}
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
	mNone   = 0
	mLung   = 1
	mHole   = 2 // enclosed by the lung
	mClosed = 3 // added by the closing
	mBridge = 4 // bridged: kept only with enough mClosed beside it
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
	// of view, and a region open to that border is no hole.
	mx, my := s.margins()
	wx0, wy0 := x0-mx, y0-my
	w, h := x1-x0+1+2*mx, y1-y0+1+2*my
	m := sc.m[:w*h]
	clear(m)
	for y := max(0, wy0); y < min(ny, wy0+h); y++ {
		for x := max(0, wx0); x < min(nx, wx0+w); x++ {
			if out[y*nx+x] == l {
				m[(y-wy0)*w+x-wx0] = mLung
			}
		}
	}
	s.fillHoles(sc, m, w, h)
	bone := &s.sl[k].bone
	if s.opt.ClosingRadiusMM > 0 && len(bone.poly) >= 3 {
		hu := s.hu[k*s.ns : (k+1)*s.ns]
		airHU, boneHU := float32(s.opt.AirHU), float32(s.opt.BoneHU)
		// addable: soft tissue inside the rib cage, on the costal side.
		addable := func(i, x, y int) bool {
			gx, gy := wx0+x, wy0+y
			if gx < 0 || gy < 0 || gx >= nx || gy >= ny || m[i] != mNone {
				return false
			}
			p := gy*nx + gx
			v := hu[p]
			return out[p] == 0 && v >= airHU && v < boneHU && bone.contains(gx, gy) && s.costal(out, bone, gx, gy)
		}
		s.closing(sc, m, w, h)
		if s.opt.BridgeMM > 0 {
			s.bridge(sc, m, sc.cand[:w*h], w, h, mx, my, mx+x1-x0, my+y1-y0)
		}
		cand := sc.cand[:w*h]
		added := false
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				i := y*w + x
				if c := cand[i]; c != 0 && addable(i, x, y) {
					m[i] = c
					added = true
				}
			}
		}
		if added {
			s.keepBridges(sc, m, w, h)
			s.fillHoles(sc, m, w, h)
		}
	}
	for y := max(0, -wy0); y < min(h, ny-wy0); y++ {
		for x := max(0, -wx0); x < min(w, nx-wx0); x++ {
			p := (wy0+y)*nx + wx0 + x
			if m[y*w+x] != mNone && out[p] == 0 {
				out[p] = l
			}
		}
	}
}

// closing sets cand to mClosed where a closing of the lung (marks other
// than mNone) by a disc of ClosingRadiusMM adds a pixel, through two exact
// Euclidean distance transforms, and to 0 elsewhere.
func (s *seg) closing(sc *refineScratch, m []uint8, w, h int) {
	R := s.opt.ClosingRadiusMM
	r2 := R * R
	d, cand := sc.d[:w*h], sc.cand[:w*h]
	for i, v := range m {
		cand[i] = b2u(v != mNone)
	}
	sc.e.transform(d, cand, 1, w, h, s.sx, s.sy) // distance to the lung
	for i, v := range d {
		cand[i] = b2u(v <= r2) // dilated
	}
	sc.e.transform(d, cand, 0, w, h, s.sx, s.sy) // distance to outside the dilation
	for i, v := range d {
		cand[i] = 0
		if v > r2 && m[i] == mNone {
			cand[i] = mClosed
		}
	}
}

// keepBridges keeps the bridged pixels of a 4-connected region of
// additions only where the closing made at least keepBridgeFrac of it: a
// bite in the lung's border that the disc filled but for the lens at its
// mouth. A thin region that only bridging finds (a chord along the heart's
// or the vertebra's curve) is dropped.
func (s *seg) keepBridges(sc *refineScratch, m []uint8, w, h int) {
	bg := sc.bg[:w*h]
	for i, v := range m {
		bg[i] = b2u(v == mClosed || v == mBridge)
	}
	lab := sc.lab[:w*h]
	n := sc.lb.label(lab, bg, w, h, false)
	sc.count = slices.Grow(sc.count[:0], n+1)[:n+1]
	clear(sc.count)
	for i, l := range lab {
		if l != 0 {
			sc.count[l][b2u(m[i] == mBridge)]++
		}
	}
	for i, l := range lab {
		if l != 0 && m[i] == mBridge {
			if c := sc.count[l]; float64(c[0]) < keepBridgeFrac*float64(c[0]+c[1]) {
				m[i] = mNone
			}
		}
	}
}

// fillHoles marks as mHole the background of the window that does not
// reach its border.
func (s *seg) fillHoles(sc *refineScratch, m []uint8, w, h int) {
	bg := sc.bg[:w*h]
	for i, v := range m {
		bg[i] = b2u(v == mNone)
	}
	lab := sc.lab[:w*h]
	n := sc.lb.label(lab, bg, w, h, false)
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
	for i, l := range lab {
		if hole[l] {
			m[i] = mHole
		}
	}
}

// bridgeDirections are the pixel steps of the lines along which bridge
// looks for gaps: eight directions, at most 27° apart.
var bridgeDirections = [...][2]int{{1, 0}, {2, 1}, {1, 1}, {1, 2}, {0, 1}, {-1, 2}, {-1, 1}, {-2, 1}}

// bridge sets cand to mBridge, where it is 0, for every background pixel
// of the window that lies on a straight line between two lung pixels at
// most BridgeMM apart, in one of eight directions: a closing by line
// segments, whose union is a convex hull limited to chords of BridgeMM.
// Unlike a closing by a disc it fills a bite in the lung's border right up
// to the chord across its mouth.
func (s *seg) bridge(sc *refineScratch, m, cand []uint8, w, h, bx0, by0, bx1, by1 int) {
	for _, d := range bridgeDirections {
		// Walk lines along the major axis u (x when |dx| ≥ |dy|), one pixel
		// per step, the minor coordinate v shifting by round(u·slope), over
		// the lung's bounding box only: chords between lung pixels stay in
		// it.
		xMajor := abs(d[0]) >= abs(d[1])
		u0, u1, v0, v1 := bx0, bx1, by0, by1
		su, sv := s.sx, s.sy
		strideU, strideV := 1, w
		slope := float64(d[1]) / float64(d[0])
		if !xMajor {
			u0, u1, v0, v1 = by0, by1, bx0, bx1
			su, sv = s.sy, s.sx
			strideU, strideV = w, 1
			slope = float64(d[0]) / float64(d[1])
		}
		step := math.Hypot(su, slope*sv) // mm per step along the line
		maxSteps := int(math.Floor(s.opt.BridgeMM/step + 1e-9))
		nu := u1 - u0 + 1
		shift := sc.shift[:nu]
		lo, hi := 0, 0
		for t := range shift {
			shift[t] = int(math.Floor(float64(t)*slope + 0.5))
			lo, hi = min(lo, shift[t]), max(hi, shift[t])
		}
		for line := v0 - hi; line <= v1-lo; line++ {
			last := -1
			for t := 0; t < nu; t++ {
				v := line + shift[t]
				if v < v0 || v > v1 {
					last = -1
					continue
				}
				i := (u0+t)*strideU + v*strideV
				if mk := m[i]; mk != mLung && mk != mHole {
					continue
				}
				if last >= 0 && t-last > 2 && t-last <= maxSteps {
					for g := last + 1; g < t; g++ {
						if j := (u0+g)*strideU + (line+shift[g])*strideV; cand[j] == 0 {
							cand[j] = mBridge
						}
					}
				}
				last = t
			}
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
