package pipeline

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
)

// SyntheticCT makes a chest-CT-like volume in HU for benchmarks: air
// outside an elliptic body of soft tissue under a ring of fat, two lungs
// (−850 HU) holding ground-glass blobs (−350 HU) and vessels, a spine, and
// noise. The geometry is DICOM's usual: LPS voxel order (i towards the
// patient's left, j posterior, k superior), centred on the origin.
func SyntheticCT(d volume.Dims, spacing [3]float64, seed uint64) (*volume.Volume, error) {
	a := volume.Identity()
	for ax, s := range spacing {
		a[ax][ax] = s
		a[ax][3] = -s * float64(d[ax]-1) / 2
	}
	a[0][0], a[1][1] = -a[0][0], -a[1][1] // LPS voxel axes in RAS+ world
	a[0][3], a[1][3] = -a[0][3], -a[1][3]
	v, err := volume.New(d, a)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	var blobs []blob
	for range 40 {
		side := 1.0
		if rng.IntN(2) == 0 {
			side = -1
		}
		blobs = append(blobs, blob{side * (40 + 60*rng.Float64()), -50 + 90*rng.Float64(), -80 + 160*rng.Float64(), 8 + 22*rng.Float64()})
	}
	ext := [3]float64{float64(d[0]) * spacing[0], float64(d[1]) * spacing[1], float64(d[2]) * spacing[2]}
	body := [2]float64{0.47 * ext[0], 0.36 * ext[1]}
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			noise := rand.New(rand.NewPCG(seed, uint64(w)))
			for k := w; k < d[2]; k += workers {
				for j := range d[1] {
					for i := range d[0] {
						p := a.Apply([3]float64{float64(i), float64(j), float64(k)})
						v.Data[d.Index(i, j, k)] = float32(math.Round(tissue(p, body, blobs) + 15*noise.NormFloat64()))
					}
				}
			}
		}()
	}
	wg.Wait()
	return v, nil
}

// blob is a sphere of ground glass: centre and radius in mm.
type blob struct{ x, y, z, r float64 }

// tissue is the HU at world point p (x right, y anterior, z superior).
func tissue(p [3]float64, body [2]float64, blobs []blob) float64 {
	x, y, z := p[0], p[1], p[2]
	e := sq(x/body[0]) + sq(y/body[1])
	if e > 1 {
		return -1000
	}
	if e > 0.85 {
		return -100 // subcutaneous fat
	}
	if sq(x/20)+sq((y+0.7*body[1])/20) < 1 {
		return 700 // spine
	}
	for _, side := range []float64{-1, 1} {
		if sq((x-side*0.45*body[0])/(0.38*body[0]))+sq((y+5)/(0.65*body[1]))+sq(z/150) < 1 {
			for _, b := range blobs {
				if sq(x-b.x)+sq(y-b.y)+sq(z-b.z) < sq(b.r) {
					return -350 // ground glass
				}
			}
			if math.Mod(math.Abs(x*0.37+y*0.61+z*0.23), 17) < 1.2 {
				return 30 // vessels
			}
			return -850
		}
	}
	return 40
}

func sq(x float64) float64 { return x * x }

// WriteInt16 writes v as int16 NIfTI, as scanners' HU are stored.
func WriteInt16(path string, v *volume.Volume) error {
	if err := nifti.WriteVolume(path, v, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		return fmt.Errorf("synthetic CT: %w", err)
	}
	return nil
}
