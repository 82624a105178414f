// Package severity measures how much of the lungs a COVID-19 infiltrate
// involves, from a CT, an infiltrate mask and a lung mask (computed with
// package lungs when none is given), and renders the result as JSON,
// Markdown and a PNG montage.
//
// Conventions:
//
//   - The infiltrate mask is read as "value > 0": every non-zero label
//     (ground glass, consolidation, or a single infiltrate class) counts.
//   - The lung mask holds 0 (background), 1 (the patient's right lung) and
//     2 (the left lung), as covseg lungs and lungmask write it; any other
//     value is an error.
//   - CT, infiltrate mask and lung mask must lie on one grid: the same dims
//     and affines within 1e-3 mm (or 1e-3 per entry of the rotation and
//     zoom part).
//   - Volumes are voxel counts times the voxel volume, |det| of the
//     affine's 3x3 part, in millilitres. Infiltrate "in the lungs" is the
//     infiltrate inside the lung mask; the rest is reported apart
//     (infiltrate_outside_lungs_ml) as a quality flag: a lung mask that
//     misses dense lung, or an infiltrate mask that strays.
//   - Involvement is infiltrate in the lungs over lung volume, in percent,
//     overall and per lung; null where the lung volume is 0.
//   - The category follows MosMedData's CT-0..CT-4 scale on the overall
//     involvement p: CT-0 when no infiltrate voxel lies in the lungs
//     (p = 0 exactly), CT-1 for 0 < p < 25 %, CT-2 for 25 % ≤ p < 50 %,
//     CT-3 for 50 % ≤ p < 75 % and CT-4 for p ≥ 75 %. Each boundary belongs
//     to the higher category, and the comparisons are made on voxel counts
//     (4·infiltrate against lung voxels), so no rounding decides them.
package severity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/volume"
)

// GridTolerance is how far (mm, or per entry of the affine's 3x3 part) the
// affines of the CT and the masks may differ.
const GridTolerance = 1e-3

// Options control Compute.
type Options struct {
	// Version is the software version recorded in the report.
	Version string
	// Lungs are the settings of the lung mask computed when none is given.
	Lungs lungs.Options
}

// Inputs names what a report was computed from; the caller fills it in.
type Inputs struct {
	CT            string `json:"ct"`
	Mask          string `json:"mask"`
	Lungs         string `json:"lungs,omitempty"`
	LungsComputed bool   `json:"lungs_computed"`
}

// Voxels are the counts the volumes come from.
type Voxels struct {
	LungRight         int64 `json:"lung_right"`
	LungLeft          int64 `json:"lung_left"`
	InfiltrateRight   int64 `json:"infiltrate_right"`
	InfiltrateLeft    int64 `json:"infiltrate_left"`
	InfiltrateOutside int64 `json:"infiltrate_outside_lungs"`
}

// Report is the severity of one CT.
type Report struct {
	Inputs   Inputs            `json:"inputs"`
	Versions map[string]string `json:"versions"`
	Dims     [3]int            `json:"dims"`
	Spacing  [3]float64        `json:"spacing_mm"`
	VoxelML  float64           `json:"voxel_ml"`

	LungML              float64  `json:"lung_ml"`
	LungRightML         float64  `json:"lung_right_ml"`
	LungLeftML          float64  `json:"lung_left_ml"`
	InfiltrateML        float64  `json:"infiltrate_ml"`
	InfiltrateRightML   float64  `json:"infiltrate_right_ml"`
	InfiltrateLeftML    float64  `json:"infiltrate_left_ml"`
	InfiltrateOutsideML float64  `json:"infiltrate_outside_lungs_ml"`
	InvolvementPct      *float64 `json:"involvement_pct"`
	InvolvementRightPct *float64 `json:"involvement_right_pct"`
	InvolvementLeftPct  *float64 `json:"involvement_left_pct"`
	Category            string   `json:"category"`
	CategoryRange       string   `json:"category_range"`
	Voxels              Voxels   `json:"voxels"`
	Warnings            []string `json:"warnings"`

	// Lungs is the lung mask the figures come from (given or computed).
	Lungs *volume.Label `json:"-"`
}

// Category returns the MosMedData category of infiltrate voxels inside lung
// voxels (see the package documentation), and the range it covers. With no
// lung voxels it returns "".
func Category(infiltrate, lung int64) (name, rng string) {
	switch {
	case lung <= 0:
		return "", ""
	case infiltrate <= 0:
		return "CT-0", "no infiltrate in the lungs"
	case 4*infiltrate < lung:
		return "CT-1", "0 % < involvement < 25 %"
	case 4*infiltrate < 2*lung:
		return "CT-2", "25 % ≤ involvement < 50 %"
	case 4*infiltrate < 3*lung:
		return "CT-3", "50 % ≤ involvement < 75 %"
	}
	return "CT-4", "involvement ≥ 75 %"
}

// Compute measures the infiltrate in the lungs. lungMask may be nil: the
// lungs are then segmented from ct with package lungs.
func Compute(ct *volume.Volume, infiltrate, lungMask *volume.Label, opt Options) (*Report, error) {
	if err := ct.Dims.Valid(); err != nil {
		return nil, fmt.Errorf("report: CT: %w", err)
	}
	if len(ct.Data) != ct.Dims.Len() {
		return nil, fmt.Errorf("report: CT has %d voxels for dims %v", len(ct.Data), ct.Dims)
	}
	if err := sameGrid("infiltrate mask", infiltrate, ct); err != nil {
		return nil, err
	}
	r := &Report{Versions: map[string]string{"covseg": opt.Version}}
	if lungMask == nil {
		res, err := lungs.Segment(ct, opt.Lungs)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		lungMask = res.Mask
		r.Inputs.LungsComputed = true
		r.Versions["lungs"] = lungs.Method
	} else if err := sameGrid("lung mask", lungMask, ct); err != nil {
		return nil, err
	}
	r.Lungs = lungMask
	if err := r.count(infiltrate, lungMask); err != nil {
		return nil, err
	}
	a := ct.Affine
	det := a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) - a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) + a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
	r.Dims, r.Spacing, r.VoxelML = ct.Dims, ct.Spacing(), math.Abs(det)/1000
	r.fill()
	return r, nil
}

// sameGrid checks that a mask lies on the CT's grid.
func sameGrid(what string, l *volume.Label, ct *volume.Volume) error {
	if l == nil {
		return fmt.Errorf("report: no %s", what)
	}
	if l.Dims != ct.Dims || len(l.Data) != ct.Dims.Len() {
		return fmt.Errorf("report: %s has dims %v, the CT %v: they must lie on one grid (resample the mask onto the CT)", what, l.Dims, ct.Dims)
	}
	if !l.Affine.Equal(ct.Affine, GridTolerance) {
		return fmt.Errorf("report: %s affine %v differs from the CT's %v by more than %g mm: they must lie on one grid (resample the mask onto the CT)",
			what, l.Affine, ct.Affine, GridTolerance)
	}
	return nil
}

// count tallies lung and infiltrate voxels.
func (r *Report) count(infiltrate, lungMask *volume.Label) error {
	var bad, badValue int64
	v := &r.Voxels
	for p, l := range lungMask.Data {
		inf := infiltrate.Data[p] > 0
		switch l {
		case 0:
			if inf {
				v.InfiltrateOutside++
			}
		case lungs.Right:
			v.LungRight++
			if inf {
				v.InfiltrateRight++
			}
		case lungs.Left:
			v.LungLeft++
			if inf {
				v.InfiltrateLeft++
			}
		default:
			if bad == 0 {
				badValue = int64(l)
			}
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("report: lung mask holds value %d (and %d voxels of values other than 0, 1 = right lung, 2 = left lung in all): give a mask with the lungs labelled 1 (right) and 2 (left)", badValue, bad)
	}
	return nil
}

// fill derives volumes, percentages, the category and warnings from the
// counts.
func (r *Report) fill() {
	v, ml := r.Voxels, r.VoxelML
	lung := v.LungRight + v.LungLeft
	inf := v.InfiltrateRight + v.InfiltrateLeft
	r.LungRightML, r.LungLeftML, r.LungML = float64(v.LungRight)*ml, float64(v.LungLeft)*ml, float64(lung)*ml
	r.InfiltrateRightML, r.InfiltrateLeftML = float64(v.InfiltrateRight)*ml, float64(v.InfiltrateLeft)*ml
	r.InfiltrateML, r.InfiltrateOutsideML = float64(inf)*ml, float64(v.InfiltrateOutside)*ml
	r.InvolvementPct = percent(inf, lung)
	r.InvolvementRightPct = percent(v.InfiltrateRight, v.LungRight)
	r.InvolvementLeftPct = percent(v.InfiltrateLeft, v.LungLeft)
	r.Category, r.CategoryRange = Category(inf, lung)
	r.Warnings = []string{}
	switch {
	case lung == 0:
		r.Warnings = append(r.Warnings, "the lung mask is empty: no involvement can be given")
	case v.LungRight == 0:
		r.Warnings = append(r.Warnings, "the lung mask holds no right lung (label 1)")
	case v.LungLeft == 0:
		r.Warnings = append(r.Warnings, "the lung mask holds no left lung (label 2)")
	}
	if v.InfiltrateOutside > 0 {
		all := inf + v.InfiltrateOutside
		r.Warnings = append(r.Warnings, fmt.Sprintf("%.1f ml of infiltrate (%.1f %% of it) lies outside the lung mask and is not counted",
			r.InfiltrateOutsideML, 100*float64(v.InfiltrateOutside)/float64(all)))
	}
}

func percent(part, whole int64) *float64 {
	if whole <= 0 {
		return nil
	}
	p := 100 * float64(part) / float64(whole)
	return &p
}

// JSON returns the report as indented JSON (with "<" and "≥" as they are,
// not escaped for HTML).
func (r *Report) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return b.Bytes(), nil
}
