package severity

import (
	"fmt"
	"image"
	"image/color"
	"strings"

	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/volume"
)

// Markdown renders the report for people: the category, a table of
// volumes and percentages, warnings, and what it was computed from.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# COVID-19 severity report\n\n")
	if r.Category == "" {
		b.WriteString("**No category**: the lung mask is empty.\n\n")
	} else {
		fmt.Fprintf(&b, "**Category %s** (%s): %s of the lungs involved.\n\n", r.Category, r.CategoryRange, pct(r.InvolvementPct))
	}
	b.WriteString("| | both lungs | right lung | left lung |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| lung volume (ml) | %.1f | %.1f | %.1f |\n", r.LungML, r.LungRightML, r.LungLeftML)
	fmt.Fprintf(&b, "| infiltrate in the lung (ml) | %.1f | %.1f | %.1f |\n", r.InfiltrateML, r.InfiltrateRightML, r.InfiltrateLeftML)
	fmt.Fprintf(&b, "| involvement | %s | %s | %s |\n\n", pct(r.InvolvementPct), pct(r.InvolvementRightPct), pct(r.InvolvementLeftPct))
	fmt.Fprintf(&b, "Infiltrate outside the lung mask (not counted): %.1f ml.\n\n", r.InfiltrateOutsideML)
	if len(r.Warnings) > 0 {
		b.WriteString("Warnings:\n\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "- %s\n", w)
		}
		b.WriteString("\n")
	}
	b.WriteString("Inputs:\n\n")
	fmt.Fprintf(&b, "- CT: `%s` (%d x %d x %d voxels of %.3g x %.3g x %.3g mm)\n", r.Inputs.CT,
		r.Dims[0], r.Dims[1], r.Dims[2], r.Spacing[0], r.Spacing[1], r.Spacing[2])
	fmt.Fprintf(&b, "- infiltrate mask: `%s` (voxels > 0)\n", r.Inputs.Mask)
	if r.Inputs.LungsComputed {
		fmt.Fprintf(&b, "- lung mask: computed by %s\n", r.Versions["lungs"])
	} else {
		fmt.Fprintf(&b, "- lung mask: `%s` (1 right, 2 left)\n", r.Inputs.Lungs)
	}
	fmt.Fprintf(&b, "- covseg %s\n\n", r.Versions["covseg"])
	b.WriteString("Categories (MosMedData): CT-0 no infiltrate; CT-1 under 25 %; CT-2 25 % to under 50 %; " +
		"CT-3 50 % to under 75 %; CT-4 75 % or more of the lungs involved.\n")
	return b.String()
}

// pct formats an optional percentage.
func pct(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %%", *p)
}

// Colours of the montage.
var (
	RightColor      = color.RGBA{70, 170, 255, 255}
	LeftColor       = color.RGBA{255, 200, 40, 255}
	InfiltrateColor = color.RGBA{255, 40, 40, 255}
)

// Montage draws axial slices of ct (see package montage: radiological
// view, patient's right on the image's left, anterior up) with the lungs
// outlined, right and left in their colours, and the infiltrate (mask > 0)
// filled semi-transparently. An empty opt.Title becomes the report's
// headline.
func (r *Report) Montage(ct *volume.Volume, infiltrate *volume.Label, opt montage.Options) (*image.RGBA, error) {
	if err := sameGrid("infiltrate mask", infiltrate, ct); err != nil {
		return nil, err
	}
	if err := sameGrid("lung mask", r.Lungs, ct); err != nil {
		return nil, err
	}
	inf := &volume.Label{Dims: infiltrate.Dims, Affine: infiltrate.Affine, Data: make([]uint8, len(infiltrate.Data))}
	for p, v := range infiltrate.Data {
		if v > 0 {
			inf.Data[p] = 1
		}
	}
	if opt.Title == "" {
		opt.Title = r.Headline()
	}
	return montage.Render(ct, []montage.Overlay{
		{Label: inf, Styles: map[uint8]montage.Style{1: {Name: "infiltrate", Color: InfiltrateColor, Fill: 0.45}}},
		{Label: r.Lungs, Styles: map[uint8]montage.Style{
			1: {Name: "right lung", Color: RightColor, Outline: true},
			2: {Name: "left lung", Color: LeftColor, Outline: true},
		}},
	}, opt)
}

// Headline is the report in one line.
func (r *Report) Headline() string {
	if r.Category == "" {
		return "no lungs in the lung mask"
	}
	return fmt.Sprintf("%s: %s of the lungs involved (right %s, left %s)", r.Category,
		pct(r.InvolvementPct), pct(r.InvolvementRightPct), pct(r.InvolvementLeftPct))
}
