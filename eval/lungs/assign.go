package lungs

import "fmt"

// box3 is a voxel bounding box, bounds inclusive.
type box3 struct{ lo, hi [3]int }

func emptyBox() box3 {
	return box3{lo: [3]int{1 << 30, 1 << 30, 1 << 30}, hi: [3]int{-1, -1, -1}}
}

func (b *box3) addRect(x0, y0, x1, y1, k int) {
	b.lo = [3]int{min(b.lo[0], x0), min(b.lo[1], y0), min(b.lo[2], k)}
	b.hi = [3]int{max(b.hi[0], x1), max(b.hi[1], y1), max(b.hi[2], k)}
}

// comp3D gathers the 2D components joined into one 3D component.
type comp3D struct {
	root               int32
	vol, dark, right   int64
	maybe              int64
	box                box3
	side               uint8 // Right, Left, or 0 when it straddles
	split              *splitResult
	keep, keepR, keepL bool
}

// piece is a part of the lungs on one side: a whole component or one side
// of a split one.
type piece struct {
	comp *comp3D
	side uint8
	vol  int64
}

func (s *seg) find(x int32) int32 {
	p := s.parent
	for p[x] != x {
		p[x] = p[p[x]]
		x = p[x]
	}
	return x
}

func (s *seg) union(a, b int32) {
	ra, rb := s.find(a), s.find(b)
	if ra < rb {
		s.parent[rb] = ra
	} else if rb < ra {
		s.parent[ra] = rb
	}
}

// assignLungs joins the candidate air into 3D components, drops what is not
// lung and labels the rest right or left (steps 5 and 6).
func (s *seg) assignLungs() {
	s.off = make([]int32, s.nz+1)
	for k, sl := range s.sl {
		s.off[k+1] = s.off[k] + int32(len(sl.comps))
	}
	s.parent = make([]int32, s.off[s.nz])
	for i := range s.parent {
		s.parent[i] = int32(i)
	}
	for k := 0; k+1 < s.nz; k++ {
		for _, pr := range s.sl[k].pairs {
			s.union(s.off[k]+pr.c, s.off[k+1]+pr.u)
		}
	}
	// Compress fully: from here on parent[g] is g's root, also for
	// concurrent readers.
	for g := range s.parent {
		s.parent[g] = s.find(int32(g))
	}
	s.countRight()

	byRoot := map[int32]*comp3D{}
	var comps []*comp3D
	for k, sl := range s.sl {
		for c, cc := range sl.comps {
			r := s.find(s.off[k] + int32(c))
			t := byRoot[r]
			if t == nil {
				t = &comp3D{root: r, box: emptyBox()}
				byRoot[r] = t
				comps = append(comps, t)
			}
			t.vol += int64(cc.area)
			t.dark += int64(cc.dark)
			t.maybe += int64(cc.maybe)
			t.right += int64(cc.right)
			t.box.addRect(int(cc.x0), int(cc.y0), int(cc.x1), int(cc.y1), k)
		}
	}
	pieces := s.classify(comps)
	s.choose(pieces)
	s.writeLabels(byRoot)
}

// countRight counts, per candidate 2D component, its voxels on the right of
// the midline.
func (s *seg) countRight() {
	forEach(s.opt.Workers, s.nz, noScratch, func(_ struct{}, k int) {
		comps := s.sl[k].comps
		lab := s.lab[k*s.ns : (k+1)*s.ns]
		for y := 0; y < s.ny; y++ {
			x0 := s.worldX(0, float64(y), float64(k))
			for x := 0; x < s.nx; x++ {
				l := lab[y*s.nx+x]
				if l != 0 && x0+s.aff[0][0]*float64(x) > s.midX {
					comps[l-1].right++
				}
			}
		}
	})
}

// classify drops gas and specks, puts each component on its side and
// splits those that straddle the midline.
func (s *seg) classify(comps []*comp3D) []piece {
	minVox := int64(minComponentML / s.voxelML)
	var pieces []piece
	s.split = "separate"
	for _, t := range comps {
		if 2*t.dark >= t.vol || t.vol < max(minVox, 1) || float64(t.vol-t.maybe) < minSureFrac*float64(t.vol) {
			continue
		}
		fr := float64(t.right) / float64(t.vol)
		switch {
		case fr >= sideFrac:
			t.side = Right
		case fr <= 1-sideFrac:
			t.side = Left
		}
		if t.side != 0 {
			pieces = append(pieces, piece{t, t.side, t.vol})
			continue
		}
		sp := s.splitComponent(t)
		if sp == nil { // one lung astride the midline estimate
			t.side = Left
			if fr >= 0.5 {
				t.side = Right
			}
			pieces = append(pieces, piece{t, t.side, t.vol})
			continue
		}
		t.split = sp
		s.split = sp.how
		pieces = append(pieces, piece{t, Right, sp.vol[Right]}, piece{t, Left, sp.vol[Left]})
	}
	return pieces
}

// choose keeps on each side the pieces of at least keepFrac of that side's
// largest, and drops a side whose largest is under keepFrac of the other's.
func (s *seg) choose(pieces []piece) {
	var largest [3]int64
	for _, p := range pieces {
		largest[p.side] = max(largest[p.side], p.vol)
	}
	for _, side := range []uint8{Right, Left} {
		other := Left + Right - side
		if float64(largest[side]) < keepFrac*float64(largest[other]) {
			largest[side] = -1 // dropped: no piece reaches it
		}
	}
	switch {
	case largest[Right] <= 0 && largest[Left] <= 0:
		s.split = "none"
	case largest[Right] <= 0 || largest[Left] <= 0:
		s.split = "one side"
	}
	for _, p := range pieces {
		if largest[p.side] <= 0 || float64(p.vol) < keepFrac*float64(largest[p.side]) {
			continue
		}
		switch {
		case p.comp.split == nil:
			p.comp.keep = true
		case p.side == Right:
			p.comp.keepR = true
		default:
			p.comp.keepL = true
		}
	}
}

// writeLabels writes the canonical mask of the kept components.
func (s *seg) writeLabels(byRoot map[int32]*comp3D) {
	// A label per global 2D id: 0 drop, 1/2 side, 3 look up the split.
	const fromSplit = 3
	dec := make([]uint8, len(s.parent))
	split := map[int32]*comp3D{}
	for k, sl := range s.sl {
		for c := range sl.comps {
			g := s.off[k] + int32(c)
			t := byRoot[s.find(g)]
			switch {
			case t.split != nil && (t.keepR || t.keepL):
				dec[g] = fromSplit
				split[t.root] = t
			case t.keep:
				dec[g] = t.side
			}
		}
	}
	forEach(s.opt.Workers, s.nz, noScratch, func(_ struct{}, k int) {
		lab := s.lab[k*s.ns : (k+1)*s.ns]
		out := s.out[k*s.ns : (k+1)*s.ns]
		for p, l := range lab {
			if l == 0 {
				continue
			}
			g := s.off[k] + l - 1
			switch d := dec[g]; d {
			case 0:
			case fromSplit:
				t := split[s.parent[g]]
				side := t.split.at(p%s.nx, p/s.nx, k)
				if (side == Right && t.keepR) || (side == Left && t.keepL) {
					out[p] = side
				}
			default:
				out[p] = d
			}
		}
	})
}

// splitResult holds the side of every voxel of a component that had to be
// split, over its bounding box.
type splitResult struct {
	box  box3
	w, h int
	side []uint8
	vol  [3]int64
	how  string
}

func (r *splitResult) at(x, y, k int) uint8 {
	return r.side[((k-r.box.lo[2])*r.h+y-r.box.lo[1])*r.w+x-r.box.lo[0]]
}

// splitComponent separates a component that straddles the midline by
// erosion and regrowth, or by the midline plane; it returns nil when the
// component is one lung (step 6).
func (s *seg) splitComponent(t *comp3D) *splitResult {
	b := t.box
	w, h, d := b.hi[0]-b.lo[0]+1, b.hi[1]-b.lo[1]+1, b.hi[2]-b.lo[2]+1
	n := w * h * d
	member := make([]uint8, n)
	forEach(s.opt.Workers, d, noScratch, func(_ struct{}, z int) {
		k := b.lo[2] + z
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				l := s.lab[k*s.ns+(b.lo[1]+y)*s.nx+b.lo[0]+x]
				if l != 0 && s.parent[s.off[k]+l-1] == t.root {
					member[(z*h+y)*w+x] = 1
				}
			}
		}
	})
	dist := s.insideDistance(member, w, h, d)
	res := &splitResult{box: b, w: w, h: h, side: make([]uint8, n)}
	eroded := make([]uint8, n)
	for _, r := range splitRadiiMM {
		r2 := r * r
		for i := range eroded {
			eroded[i] = b2u(member[i] != 0 && float64(dist[i]) > r2)
		}
		if s.seedSides(eroded, res) {
			s.regrow(member, res)
			res.how = fmt.Sprintf("erosion %g mm", r)
			return res
		}
	}
	fr := float64(t.right) / float64(t.vol)
	if min(fr, 1-fr) < planeCutFrac {
		return nil
	}
	for i, m := range member {
		if m == 0 {
			continue
		}
		x, y, k := b.lo[0]+i%w, b.lo[1]+(i/w)%h, b.lo[2]+i/(w*h)
		side := Left
		if s.worldX(float64(x), float64(y), float64(k)) > s.midX {
			side = Right
		}
		res.side[i] = side
		res.vol[side]++
	}
	res.how = "midline plane"
	return res
}

// insideDistance returns, per voxel of the box, the squared in-plane
// distance in mm² from a member voxel to the nearest non-member (voxels
// outside the box count as non-members).
func (s *seg) insideDistance(member []uint8, w, h, d int) []float32 {
	dist := make([]float32, len(member))
	type scratch struct {
		e   edt
		m   []uint8
		buf []float64
	}
	pw, ph := w+2, h+2 // a ring of non-members
	forEach(s.opt.Workers, d, func() *scratch {
		return &scratch{m: make([]uint8, pw*ph), buf: make([]float64, pw*ph)}
	}, func(sc *scratch, z int) {
		clear(sc.m)
		for y := 0; y < h; y++ {
			copy(sc.m[(y+1)*pw+1:(y+1)*pw+1+w], member[(z*h+y)*w:(z*h+y+1)*w])
		}
		sc.e.transform(sc.buf, sc.m, 0, pw, ph, s.sx, s.sy)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				dist[(z*h+y)*w+x] = float32(sc.buf[(y+1)*pw+x+1])
			}
		}
	})
	return dist
}

// seedSides labels the 3D components of eroded and, when both sides hold
// at least splitSideFrac of the eroded volume in pieces that lie on one
// side, writes those pieces as seeds into res.side.
func (s *seg) seedSides(eroded []uint8, res *splitResult) bool {
	w, h := res.w, res.h
	d := len(eroded) / (w * h)
	lab, n := s.label3D(eroded, w, h, d)
	if n < 2 {
		return false
	}
	vol := make([]int64, n+1)
	right := make([]int64, n+1)
	var total int64
	for i, l := range lab {
		if l == 0 {
			continue
		}
		x, y, k := res.box.lo[0]+i%w, res.box.lo[1]+(i/w)%h, res.box.lo[2]+i/(w*h)
		vol[l]++
		total++
		if s.worldX(float64(x), float64(y), float64(k)) > s.midX {
			right[l]++
		}
	}
	side := make([]uint8, n+1)
	var sideVol [3]int64
	for l := 1; l <= n; l++ {
		if float64(vol[l]) < splitPieceFrac*float64(total) {
			continue
		}
		fr := float64(right[l]) / float64(vol[l])
		switch {
		case fr >= sideFrac:
			side[l] = Right
		case fr <= 1-sideFrac:
			side[l] = Left
		default:
			continue
		}
		sideVol[side[l]] += vol[l]
	}
	if float64(min(sideVol[Right], sideVol[Left])) < splitSideFrac*float64(total) {
		return false
	}
	for i, l := range lab {
		res.side[i] = side[l]
	}
	return true
}

// regrow grows the seeds in res.side through the member voxels,
// breadth-first from all seeds at once (6-connectivity), so every voxel
// goes to the side whose seed is nearest through the component.
func (s *seg) regrow(member []uint8, res *splitResult) {
	w, h := res.w, res.h
	d := len(member) / (w * h)
	queue := make([]int32, 0, len(member)/4)
	for i, sd := range res.side {
		if sd != 0 {
			queue = append(queue, int32(i))
		}
	}
	for head := 0; head < len(queue); head++ {
		i := int(queue[head])
		sd := res.side[i]
		x, y, z := i%w, (i/w)%h, i/(w*h)
		try := func(j int) {
			if member[j] != 0 && res.side[j] == 0 {
				res.side[j] = sd
				queue = append(queue, int32(j))
			}
		}
		if x > 0 {
			try(i - 1)
		}
		if x < w-1 {
			try(i + 1)
		}
		if y > 0 {
			try(i - w)
		}
		if y < h-1 {
			try(i + w)
		}
		if z > 0 {
			try(i - w*h)
		}
		if z < d-1 {
			try(i + w*h)
		}
	}
	clear(res.vol[:])
	for i, m := range member {
		if m == 0 {
			res.side[i] = 0
		}
		res.vol[res.side[i]]++
	}
	res.vol[0] = 0
}

// label3D labels the 6-connected components of a w×h×d mask: 4-connected
// components per slice (in parallel), joined where they overlap between
// slices. Labels are 1..n, numbered by first voxel.
func (s *seg) label3D(mask []uint8, w, h, d int) ([]int32, int) {
	ns := w * h
	lab := make([]int32, len(mask))
	counts := make([]int32, d)
	forEach(s.opt.Workers, d, func() *labeler { return &labeler{} }, func(lb *labeler, z int) {
		counts[z] = int32(lb.label(lab[z*ns:(z+1)*ns], mask[z*ns:(z+1)*ns], w, h, false))
	})
	off := make([]int32, d+1)
	for z := 0; z < d; z++ {
		off[z+1] = off[z] + counts[z]
	}
	parent := make([]int32, off[d]+1)
	for i := range parent {
		parent[i] = int32(i)
	}
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for z := 0; z+1 < d; z++ {
		for p := 0; p < ns; p++ {
			a, b := lab[z*ns+p], lab[(z+1)*ns+p]
			if a == 0 || b == 0 {
				continue
			}
			ra, rb := find(off[z]+a), find(off[z+1]+b)
			if ra < rb {
				parent[rb] = ra
			} else if rb < ra {
				parent[ra] = rb
			}
		}
	}
	final := make([]int32, len(parent))
	n := int32(0)
	for g := int32(1); g < int32(len(parent)); g++ {
		if r := find(g); r == g {
			n++
			final[g] = n
		} else {
			final[g] = final[r]
		}
	}
	for z := 0; z < d; z++ {
		for p := z * ns; p < (z+1)*ns; p++ {
			if lab[p] != 0 {
				lab[p] = final[off[z]+lab[p]]
			}
		}
	}
	return lab, int(n)
}
