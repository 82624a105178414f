package lungs

import (
	"math"

	"github.com/covseg/covseg/volume"
)

// phantom describes a synthetic chest CT on a canonical RAS+ grid: an
// elliptic body on a table, ribs and a spine, two ellipsoid lungs (the
// patient's right one at +x), a trachea that splits into two main bronchi
// running into the lungs, vessels, and a dense consolidation at the right
// lung's lateral border.
type phantom struct {
	spacing [3]float64
	dims    volume.Dims
	// bridge joins the lungs anteriorly over part of their height, as
	// lungs that touch at the anterior junction line.
	bridge bool
	// consolidation puts a dense (0 HU) sphere on the right lung's lateral
	// border.
	consolidation bool
}

// Geometry of the phantom in mm, around the grid's centre.
const (
	phBodyA, phBodyB           = 160.0, 115.0 // body semi-axes x, y
	phLungX                    = 75.0         // |x| of the lungs' centres
	phLungA, phLungB, phLungC  = 55.0, 75.0, 100.0
	phTracheaR                 = 9.0
	phTracheaY                 = 25.0
	phCarinaZ                  = 40.0 // above the lungs' centre
	phBronchusR                = 6.0
	phConsolidationR           = 20.0
	phLungHU, phTissueHU       = -850.0, 40.0
	phBoneHU, phAirHU, phDense = 700.0, -1000.0, 0.0
)

// phantomTruth labels what the phantom holds, voxel by voxel.
const (
	tBackground = iota
	tRightLung  // aerated or dense: the right lung as it should be segmented
	tLeftLung
	tTrachea // trachea and the main bronchi outside the lungs
	tDense   // the consolidation (also tRightLung in lungOf)
)

// build returns the CT (canonical RAS+, origin at the grid's centre) and,
// per voxel, the truth code.
func (ph phantom) build() (*volume.Volume, []uint8) {
	d := ph.dims
	sp := ph.spacing
	origin := [3]float64{-float64(d[0]-1) / 2 * sp[0], -float64(d[1]-1) / 2 * sp[1], -float64(d[2]-1) / 2 * sp[2]}
	v, err := volume.New(d, volume.Diag(sp, origin))
	if err != nil {
		panic(err)
	}
	truth := make([]uint8, d.Len())
	cz := 0.0
	bronchusEnd := [2][3]float64{{phLungX - 20, 0, cz + 10}, {-phLungX + 20, 0, cz + 10}}
	carina := [3]float64{0, phTracheaY, cz + phCarinaZ}
	forEach(0, d[2], noScratch, func(_ struct{}, k int) {
		seed := uint32(12345 + 7919*k)
		noise := func() float64 { // deterministic, roughly N(0, 25²)
			var s float64
			for i := 0; i < 4; i++ {
				seed = seed*1664525 + 1013904223
				s += float64(seed>>8)/float64(1<<24) - 0.5
			}
			return s * 43
		}
		for j := 0; j < d[1]; j++ {
			for i := 0; i < d[0]; i++ {
				p := d.Index(i, j, k)
				x, y, z := origin[0]+float64(i)*sp[0], origin[1]+float64(j)*sp[1], origin[2]+float64(k)*sp[2]
				hu := phAirHU
				code := uint8(tBackground)
				// Table: a plate under the body.
				if y < -phBodyB-8 && y > -phBodyB-16 && math.Abs(x) < 200 {
					hu = 150
				}
				if sq(x/phBodyA)+sq(y/phBodyB) <= 1 {
					hu = phTissueHU
					// Ribs: bone dots on an inner ellipse; spine at the back.
					ang := math.Atan2(y/(phBodyB-18), x/(phBodyA-18))
					rx, ry := (phBodyA-18)*math.Cos(ang), (phBodyB-18)*math.Sin(ang)
					step := 2 * math.Pi / 18
					a0 := math.Round(ang/step) * step
					bx, by := (phBodyA-18)*math.Cos(a0), (phBodyB-18)*math.Sin(a0)
					if math.Hypot(x-bx, y-by) < 6 && math.Hypot(x-rx, y-ry) < 6 {
						hu = phBoneHU
					}
					if math.Hypot(x, y+phBodyB-40) < 18 {
						hu = phBoneHU
					}
					for side, sx := range []float64{phLungX, -phLungX} {
						if sq((x-sx)/phLungA)+sq(y/phLungB)+sq((z-cz)/phLungC) <= 1 {
							hu = phLungHU
							code = uint8(tRightLung + side)
							// Vessels: a lattice of small tissue rods along z.
							if math.Mod(math.Abs(x-sx)+5, 20) < 3 && math.Mod(math.Abs(y)+5, 20) < 3 {
								hu = phTissueHU
							}
						}
					}
					if ph.bridge && math.Abs(x) < phLungX && y > 30 && y < 45 && math.Abs(z-cz) < 40 &&
						sq((x-phLungX)/phLungA)+sq(y/phLungB) > 1 && sq((x+phLungX)/phLungA)+sq(y/phLungB) > 1 {
						// A band of lung across the midline, straddling it.
						hu = phLungHU
						code = tRightLung
						if x < 0 {
							code = tLeftLung
						}
					}
					// Trachea down to the carina, then the main bronchi.
					if z >= carina[2] && math.Hypot(x, y-phTracheaY) <= phTracheaR {
						hu, code = phAirHU, tTrachea
					}
					for side, end := range bronchusEnd {
						if segDist3([3]float64{x, y, z}, carina, end) <= phBronchusR {
							hu = phAirHU
							if code != tRightLung && code != tLeftLung {
								code = tTrachea
							}
							_ = side
						}
					}
					if ph.consolidation && code == tRightLung {
						c := [3]float64{phLungX + phLungA, 0, cz}
						if math.Hypot(math.Hypot(x-c[0], y-c[1]), z-c[2]) <= phConsolidationR {
							hu, code = phDense, tDense
						}
					}
				}
				if hu < -500 || code == tRightLung || code == tLeftLung {
					hu += noise()
				}
				v.Data[p] = float32(hu)
				truth[p] = code
			}
		}
	})
	return v, truth
}

func sq(x float64) float64 { return x * x }

// segDist3 is the distance from p to the segment a–b.
func segDist3(p, a, b [3]float64) float64 {
	var ab, ap [3]float64
	var l2, t float64
	for i := range 3 {
		ab[i], ap[i] = b[i]-a[i], p[i]-a[i]
		l2 += ab[i] * ab[i]
		t += ab[i] * ap[i]
	}
	t = min(1, max(0, t/l2))
	var d2 float64
	for i := range 3 {
		d2 += sq(ap[i] - t*ab[i])
	}
	return math.Sqrt(d2)
}

// smallPhantom is a coarse phantom quick enough for unit tests.
func smallPhantom() phantom {
	return phantom{spacing: [3]float64{2, 2, 4}, dims: volume.Dims{180, 140, 64}, consolidation: true}
}
