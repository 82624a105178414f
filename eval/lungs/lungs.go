package lungs

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"

	"github.com/covseg/covseg/volume"
)

// Labels of the mask Segment returns.
const (
	Background uint8 = 0
	Right      uint8 = 1 // the patient's right lung
	Left       uint8 = 2 // the patient's left lung
)

// Method names the algorithm and its version, for reports that record how
// a lung mask was made.
const Method = "covseg lungs v1 (threshold, outside air, airway tracking, midline split, costal closing)"

// Options are the thresholds and sizes of the method (see the package
// documentation for what each step does with them).
type Options struct {
	// AirHU: voxels below are air (lung parenchyma, airways, outside air).
	AirHU float64
	// AirwayHU: a region whose median is below is pure gas (airway lumen,
	// outside air, bowel gas) rather than lung parenchyma.
	AirwayHU float64
	// BoneHU: voxels at or above are bone (the rib cage's hull) and are
	// never added by the closing.
	BoneHU float64
	// ClosingRadiusMM is the radius of the disc of the per-slice closing
	// that brings dense lung at the pleura back into the lung; 0 turns
	// the closing and the bridging off.
	ClosingRadiusMM float64
	// BridgeMM is the longest chord across the mouth of a bite in the
	// lung's border that the bridging fills, where the closing filled the
	// bite's inside; 0 turns the bridging off.
	BridgeMM float64
	// CostalBandMM is how far from the rib cage's hull the closing and
	// the bridging may add voxels.
	CostalBandMM float64
	// Workers is the number of goroutines; 0 means GOMAXPROCS.
	Workers int
}

// DefaultOptions returns the settings the package documentation describes.
func DefaultOptions() Options {
	return Options{AirHU: -320, AirwayHU: -950, BoneHU: 200, ClosingRadiusMM: 30, BridgeMM: 60, CostalBandMM: 40}
}

func (o Options) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"AirHU", o.AirHU}, {"AirwayHU", o.AirwayHU}, {"BoneHU", o.BoneHU},
		{"ClosingRadiusMM", o.ClosingRadiusMM}, {"BridgeMM", o.BridgeMM}, {"CostalBandMM", o.CostalBandMM}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("lungs: option %s is %v", f.name, f.v)
		}
	}
	switch {
	case o.AirwayHU >= o.AirHU:
		return fmt.Errorf("lungs: AirwayHU %g must be below AirHU %g", o.AirwayHU, o.AirHU)
	case o.BoneHU <= o.AirHU:
		return fmt.Errorf("lungs: BoneHU %g must be above AirHU %g", o.BoneHU, o.AirHU)
	case o.ClosingRadiusMM < 0 || o.BridgeMM < 0 || o.CostalBandMM < 0:
		return fmt.Errorf("lungs: ClosingRadiusMM %g, BridgeMM %g and CostalBandMM %g must not be negative", o.ClosingRadiusMM, o.BridgeMM, o.CostalBandMM)
	case o.ClosingRadiusMM > 200 || o.BridgeMM > 400:
		return fmt.Errorf("lungs: ClosingRadiusMM %g or BridgeMM %g is beyond any lung (at most 200 and 400)", o.ClosingRadiusMM, o.BridgeMM)
	}
	return nil
}

// Result is a lung mask and what Segment found on the way.
type Result struct {
	// Mask lies on the input's grid (same dims and affine): Background,
	// Right or Left per voxel.
	Mask *volume.Label
	// RightML and LeftML are the volumes of the two lungs in millilitres.
	RightML, LeftML float64
	// AirwayML is the volume removed as trachea, main bronchi (and air in
	// the esophagus).
	AirwayML float64
	// MidlineX is the world x (RAS+ mm) of the plane that separates right
	// from left; MidlineFrom says how it was found: "airway" or "tissue".
	MidlineX    float64
	MidlineFrom string
	// Split says how the lungs were told apart: "separate" (they were
	// separate components), "erosion N mm" (they touched and were
	// separated by eroding N mm), "midline plane", "one side" when only
	// one lung was found, or "none".
	Split string
}

// Constants of the method that are not options (see the package
// documentation).
const (
	tissueKeepFrac   = 0.05 // tissue components spanning the body hull, of the largest
	boneKeepFrac     = 0.25 // tissue components whose bone spans the rib cage, of the largest
	seedDepthMM      = 20   // depth of the slab where airways may start
	maxAirwayAreaMM2 = 1200 // largest airway cross-section
	minSeedAreaMM2   = 25   // smallest cross-section that starts an airway
	airwayRingPx     = 2    // the airway wall's partial volume, in pixels
	keepBridgeFrac   = 0.3  // share of a bridged region the closing must have filled
	airwayGrowth     = 2    // largest area ratio between an airway slice and the one above
	minComponentML   = 0.5  // smallest 3D air component considered
	minSureFrac      = 0.05 // share of a 3D component that must be surely inside the body
	sideFrac         = 0.8  // share of a component on one side that puts it there
	splitSideFrac    = 0.10 // share of the eroded volume each side needs for a split
	splitPieceFrac   = 0.01 // eroded pieces smaller than this share of the eroded volume are no seeds
	planeCutFrac     = 0.2  // share on the minor side for a midline-plane cut
	keepFrac         = 0.10 // pieces kept on a side, of that side's largest; sides kept, of the other's
)

// splitRadiiMM are the erosion radii tried, in order, to separate lungs that
// touch.
var splitRadiiMM = [...]float64{2, 4, 7, 10, 15}

// Segment returns the lung mask of ct, a CT in Hounsfield units in any
// orientation. It fails on malformed volumes and bad options only; a CT
// without lungs gives an empty mask.
func Segment(ct *volume.Volume, opt Options) (*Result, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	if err := ct.Dims.Valid(); err != nil {
		return nil, fmt.Errorf("lungs: %w", err)
	}
	if len(ct.Data) != ct.Dims.Len() {
		return nil, fmt.Errorf("lungs: volume has %d voxels but dims %v need %d", len(ct.Data), ct.Dims, ct.Dims.Len())
	}
	if _, err := ct.Affine.Inverse(); err != nil {
		return nil, fmt.Errorf("lungs: %w", err)
	}
	plan := volume.PlanCanonical(ct.Dims, ct.Affine)
	can := ct
	if !plan.IsIdentity() {
		var err error
		if can, err = plan.Apply(ct); err != nil {
			return nil, fmt.Errorf("lungs: %w", err)
		}
	}
	s := newSeg(can, opt)
	s.run()
	res := s.result()
	mask := &volume.Label{Dims: can.Dims, Affine: can.Affine, Data: s.out}
	if !plan.IsIdentity() {
		var err error
		if mask, err = plan.UndoLabel(mask); err != nil {
			return nil, fmt.Errorf("lungs: %w", err)
		}
	}
	mask.Affine = ct.Affine // bit for bit the input's
	res.Mask = mask
	return res, nil
}

// Voxel classes, held in seg.cls.
const (
	vTissue  uint8 = iota // not air
	vAir                  // air that may be lung
	vOutside              // air around the patient
	vAirway               // trachea, main bronchi, esophageal air, with their wall's partial volume
	vRing                 // transient: being added to vAirway
	vMaybe                // air that may be lung, or outside air that is not pure gas
)

// comp2D describes one 4-connected component of candidate air in one slice.
type comp2D struct {
	area, dark, right int32
	maybe             int32 // voxels of class vMaybe
	sumI, sumJ        float64
	x0, y0, x1, y1    int32 // bounding box
}

// pair records that component c of slice k and component u of slice k+1
// (0-based) overlap.
type pair struct{ c, u int32 }

// slice2D is what the slice-wise steps found in one axial slice.
type slice2D struct {
	comps      []comp2D
	pairs      []pair // overlaps with the slice above
	bone       hull   // the rib cage
	tissueSumI float64
	tissueSumJ float64
	tissueN    int
	airwaySumI float64
	airwaySumJ float64
	airwayN    int
}

// seg holds the state of one segmentation on the canonical grid.
type seg struct {
	opt            Options
	nx, ny, nz, ns int
	sx, sy, sz     float64
	voxelML        float64
	aff            volume.Affine
	hu             []float32
	cls            []uint8 // voxel class
	lab            []int32 // candidate-air component (1-based, within its slice); 0: none
	sl             []slice2D
	off            []int32 // global id of slice k's first component
	parent         []int32 // union-find over global ids; roots are set minima
	midX           float64
	midFrom        string
	split          string
	out            []uint8
}

func newSeg(v *volume.Volume, opt Options) *seg {
	sp := v.Affine.Spacing()
	a := v.Affine
	det := a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) - a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) + a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
	s := &seg{
		opt: opt, nx: v.Dims[0], ny: v.Dims[1], nz: v.Dims[2],
		sx: sp[0], sy: sp[1], sz: sp[2], voxelML: math.Abs(det) / 1000,
		aff: v.Affine, hu: v.Data,
	}
	s.ns = s.nx * s.ny
	return s
}

func (s *seg) run() {
	s.cls = make([]uint8, len(s.hu))
	s.sl = make([]slice2D, s.nz)
	s.scanSlices()
	s.trackAirways()
	s.findMidline()
	s.lab = make([]int32, len(s.hu))
	s.labelCandidates()
	s.findPairs()
	s.out = make([]uint8, len(s.hu))
	s.assignLungs()
	s.refine()
}

// worldX is the RAS+ x in mm of voxel (i, j, k) of the canonical grid.
func (s *seg) worldX(i, j, k float64) float64 {
	a := s.aff
	return a[0][0]*i + a[0][1]*j + a[0][2]*k + a[0][3]
}

// sliceScratch holds one goroutine's buffers for slice-wise work.
type sliceScratch struct {
	lb        labeler
	mask      []uint8
	ext, bext rowExtent
}

func (s *seg) newSliceScratch() *sliceScratch {
	return &sliceScratch{
		mask: make([]uint8, s.ns),
		ext:  newRowExtent(s.ny), bext: newRowExtent(s.ny),
	}
}

// scanSlices finds, per slice, the tissue's and bone's hulls and the air,
// and marks outside air (steps 1 and 2).
func (s *seg) scanSlices() {
	forEach(s.opt.Workers, s.nz, s.newSliceScratch, func(sc *sliceScratch, k int) {
		s.scanSlice(sc, k)
	})
}

func (s *seg) scanSlice(sc *sliceScratch, k int) {
	nx, ny := s.nx, s.ny
	hu := s.hu[k*s.ns : (k+1)*s.ns]
	cls := s.cls[k*s.ns : (k+1)*s.ns]
	airHU, boneHU := float32(s.opt.AirHU), float32(s.opt.BoneHU)
	for p, v := range hu {
		sc.mask[p] = b2u(v >= airHU)
	}
	lb := &sc.lb
	lb.scan(sc.mask, nx, ny, true)
	largest := int32(0)
	for _, a := range lb.area[1:] {
		largest = max(largest, a)
	}
	sc.ext.reset()
	sc.bext.reset()
	sl := &s.sl[k]
	for _, r := range lb.runs {
		a := float64(lb.area[r.label])
		if a < tissueKeepFrac*float64(largest) {
			continue
		}
		y := int(r.y)
		sc.ext.add(int(r.x0), y)
		sc.ext.add(int(r.x1), y)
		n := float64(r.x1 - r.x0 + 1)
		sl.tissueSumI += n * float64(r.x0+r.x1) / 2
		sl.tissueSumJ += n * float64(y)
		sl.tissueN += int(n)
		if a < boneKeepFrac*float64(largest) {
			continue
		}
		row := hu[y*nx : (y+1)*nx]
		for x := r.x0; x <= r.x1; x++ {
			if row[x] >= boneHU {
				sc.bext.add(int(x), y)
				break
			}
		}
		for x := r.x1; x >= r.x0; x-- {
			if row[x] >= boneHU {
				sc.bext.add(int(x), y)
				break
			}
		}
	}
	body := hullOf(sc.ext)
	sl.bone = hullOf(sc.bext)

	// Air: 4-connected components, each outside air, maybe or candidate.
	for p, v := range hu {
		sc.mask[p] = b2u(!(v >= airHU)) // NaN is air
	}
	n := lb.scan(sc.mask, nx, ny, false)
	inHull := make([]int32, n+1)
	dark := make([]int32, n+1)
	border := make([]bool, n+1)
	darkHU := float32(s.opt.AirwayHU)
	for _, r := range lb.runs {
		y := int(r.y)
		if y == 0 || y == ny-1 || r.x0 == 0 || int(r.x1) == nx-1 {
			border[r.label] = true
		}
		if row := y - body.y0; row >= 0 && row < len(body.lo) {
			inHull[r.label] += max(0, min(r.x1, body.hi[row])-max(r.x0, body.lo[row])+1)
		}
		for _, v := range hu[y*nx+int(r.x0) : y*nx+int(r.x1)+1] {
			if v < darkHU {
				dark[r.label]++
			}
		}
	}
	clear(cls)
	for _, r := range lb.runs {
		l, c := r.label, vAir
		switch {
		case !border[l] || 2*inHull[l] >= lb.area[l]:
		case 2*dark[l] > lb.area[l]:
			c = vOutside
		default:
			c = vMaybe
		}
		fill := cls[int(r.y)*nx+int(r.x0) : int(r.y)*nx+int(r.x1)+1]
		for i := range fill {
			fill[i] = c
		}
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// trackAirways marks trachea, main bronchi and esophageal air, top down,
// as components of the dark (below AirwayHU) part of the candidate air
// (step 3). Slices are labelled in parallel batches and tracked in order.
func (s *seg) trackAirways() {
	top := -1
	for k := s.nz - 1; k >= 0 && top < 0; k-- {
		if cls := s.cls[k*s.ns : (k+1)*s.ns]; slices.Contains(cls, vAir) || slices.Contains(cls, vMaybe) {
			top = k
		}
	}
	if top < 0 {
		return
	}
	seedBottom := top - int(math.Floor(seedDepthMM/s.sz+1e-9))
	maxArea := int64(maxAirwayAreaMM2 / (s.sx * s.sy))
	minSeed := int64(math.Ceil(minSeedAreaMM2 / (s.sx * s.sy)))
	batch := 2 * max(1, s.opt.Workers, runtime.GOMAXPROCS(0))
	labs := make([][]int32, batch)
	counts := make([]int, batch)
	for b := range labs {
		labs[b] = make([]int32, s.ns)
	}
	prev := make([]int32, s.ns)
	var prevAirway []bool // per label of prev, 1-based
	var prevArea []int64
	darkHU := float32(s.opt.AirwayHU)
	for k0 := top; k0 >= 0; k0 -= batch {
		nb := min(batch, k0+1)
		forEach(s.opt.Workers, nb, s.newSliceScratch, func(sc *sliceScratch, b int) {
			k := k0 - b
			hu, cls := s.hu[k*s.ns:(k+1)*s.ns], s.cls[k*s.ns:(k+1)*s.ns]
			for p, c := range cls {
				sc.mask[p] = b2u((c == vAir || c == vMaybe) && hu[p] < darkHU)
			}
			counts[b] = sc.lb.label(labs[b], sc.mask, s.nx, s.ny, false)
		})
		for b := 0; b < nb; b++ {
			k, lab, n := k0-b, labs[b], counts[b]
			area := make([]int64, n+1)
			above := make([]int64, n+1) // airway area above each component
			for _, l := range lab {
				area[l]++
			}
			if k < top {
				for _, pr := range overlaps(lab, prev) {
					if prevAirway[pr.u+1] {
						above[pr.c+1] += prevArea[pr.u+1]
					}
				}
			}
			airwayOf := make([]bool, n+1)
			for l := 1; l <= n; l++ {
				switch {
				case area[l] > maxArea:
				case above[l] > 0:
					airwayOf[l] = area[l] <= airwayGrowth*above[l]
				case k >= seedBottom:
					airwayOf[l] = area[l] >= minSeed
				}
			}
			cls := s.cls[k*s.ns : (k+1)*s.ns]
			sl := &s.sl[k]
			for p, l := range lab {
				if l != 0 && airwayOf[l] {
					cls[p] = vAirway
					sl.airwaySumI += float64(p % s.nx)
					sl.airwaySumJ += float64(p / s.nx)
					sl.airwayN++
				}
			}
			copy(prev, lab)
			prevAirway, prevArea = airwayOf, area
		}
	}
	s.airwayRing()
}

// overlaps lists the distinct pairs of components (0-based) of lo and hi,
// two label images of the same size, that share a pixel.
func overlaps(lo, hi []int32) []pair {
	var keys []uint64
	last := uint64(math.MaxUint64)
	for p, c := range lo {
		u := hi[p]
		if c == 0 || u == 0 {
			continue
		}
		key := uint64(c-1)<<32 | uint64(u-1)
		if key != last {
			keys = append(keys, key)
			last = key
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	ps := make([]pair, len(keys))
	for i, key := range keys {
		ps[i] = pair{int32(key >> 32), int32(uint32(key))}
	}
	return ps
}

// airwayRing adds to the airway the candidate air within airwayRingPx
// pixels (in-plane) of it: the partial volume of the airway wall, which is
// air at AirHU but not dark, and would otherwise remain as a thin tube
// joining the lungs.
func (s *seg) airwayRing() {
	const r = airwayRingPx
	forEach(s.opt.Workers, s.nz, noScratch, func(_ struct{}, k int) {
		cls := s.cls[k*s.ns : (k+1)*s.ns]
		if s.sl[k].airwayN == 0 {
			return
		}
		for y := 0; y < s.ny; y++ {
			for x := 0; x < s.nx; x++ {
				if cls[y*s.nx+x] != vAirway {
					continue
				}
				for yy := max(0, y-r); yy <= min(s.ny-1, y+r); yy++ {
					for xx := max(0, x-r); xx <= min(s.nx-1, x+r); xx++ {
						if q := yy*s.nx + xx; cls[q] == vAir || cls[q] == vMaybe {
							cls[q] = vRing
						}
					}
				}
			}
		}
		for p, c := range cls {
			if c == vRing {
				cls[p] = vAirway
			}
		}
	})
}

// findMidline sets the x of the plane between right and left (step 4).
func (s *seg) findMidline() {
	var xs []float64
	for k, sl := range s.sl {
		if sl.airwayN > 0 {
			n := float64(sl.airwayN)
			xs = append(xs, s.worldX(sl.airwaySumI/n, sl.airwaySumJ/n, float64(k)))
		}
	}
	s.midFrom = "airway"
	if len(xs) == 0 {
		s.midFrom = "tissue"
		for k, sl := range s.sl {
			if sl.tissueN > 0 {
				n := float64(sl.tissueN)
				xs = append(xs, s.worldX(sl.tissueSumI/n, sl.tissueSumJ/n, float64(k)))
			}
		}
	}
	if len(xs) == 0 {
		s.midX = s.worldX(float64(s.nx-1)/2, float64(s.ny-1)/2, float64(s.nz-1)/2)
		s.midFrom = "grid centre"
		return
	}
	sort.Float64s(xs)
	s.midX = xs[len(xs)/2]
	if len(xs)%2 == 0 {
		s.midX = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
}

// labelCandidates labels each slice's candidate air and gathers each
// component's figures.
func (s *seg) labelCandidates() {
	forEach(s.opt.Workers, s.nz, s.newSliceScratch, func(sc *sliceScratch, k int) {
		hu, cls := s.hu[k*s.ns:(k+1)*s.ns], s.cls[k*s.ns:(k+1)*s.ns]
		lab := s.lab[k*s.ns : (k+1)*s.ns]
		for p, c := range cls {
			sc.mask[p] = b2u(c == vAir || c == vMaybe)
		}
		comps := make([]comp2D, sc.lb.label(lab, sc.mask, s.nx, s.ny, false))
		for c := range comps {
			comps[c].x0, comps[c].y0 = int32(s.nx), int32(s.ny)
		}
		darkHU := float32(s.opt.AirwayHU)
		for y := 0; y < s.ny; y++ {
			for x := 0; x < s.nx; x++ {
				p := y*s.nx + x
				l := lab[p]
				if l == 0 {
					continue
				}
				c := &comps[l-1]
				c.area++
				if hu[p] < darkHU {
					c.dark++
				}
				if cls[p] == vMaybe {
					c.maybe++
				}
				c.sumI += float64(x)
				c.sumJ += float64(y)
				c.x0, c.x1 = min(c.x0, int32(x)), max(c.x1, int32(x))
				c.y0, c.y1 = min(c.y0, int32(y)), max(c.y1, int32(y))
			}
		}
		s.sl[k].comps = comps
	})
}

// findPairs lists, for every slice but the top one, which of its candidate
// components overlap which of the slice above.
func (s *seg) findPairs() {
	forEach(s.opt.Workers, s.nz-1, noScratch, func(_ struct{}, k int) {
		s.sl[k].pairs = overlaps(s.lab[k*s.ns:(k+1)*s.ns], s.lab[(k+1)*s.ns:(k+2)*s.ns])
	})
}

// result summarises the canonical mask.
func (s *seg) result() *Result {
	var n [3]int64
	for _, l := range s.out {
		n[l]++
	}
	var airwayVox int64
	for _, c := range s.cls {
		if c == vAirway {
			airwayVox++
		}
	}
	return &Result{
		RightML: float64(n[Right]) * s.voxelML, LeftML: float64(n[Left]) * s.voxelML,
		AirwayML: float64(airwayVox) * s.voxelML,
		MidlineX: s.midX, MidlineFrom: s.midFrom, Split: s.split,
	}
}
