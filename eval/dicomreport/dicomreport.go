// Package dicomreport writes covseg's results for a DICOM series back as
// DICOM, for PACS viewers: a Segmentation (infiltrate, right and left
// lung) on the series' own slices, and an RGB Secondary Capture of the
// severity report's montage with the figures burnt in, for viewers that
// cannot show a Segmentation. Both join the source's study as new series.
package dicomreport

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/eval/montage"
	"github.com/covseg/covseg/eval/severity"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/dicomout"
)

// NotForDiagnosis is burnt into every picture and named in its series
// description while the model is not validated on patients.
const NotForDiagnosis = "NOT FOR DIAGNOSTIC USE"

// Options choose what Write writes.
type Options struct {
	SEG, SC bool
	// Lungs adds the right and left lung segments to the SEG.
	Lungs bool
	// Version is covseg's version (software version, algorithm version).
	Version string
}

// Outputs are the objects written (nil where not asked for).
type Outputs struct {
	SEG, SC *dicomout.Written
	Report  *severity.Report
}

// Paths are where Write puts its files for an output stem.
func Paths(stem string) (seg, sc string) { return stem + "_seg.dcm", stem + "_sc.dcm" }

// Write writes the DICOM outputs of one case: STEM_seg.dcm and/or
// STEM_sc.dcm. ct and inf lie on the source series' grid (as read by
// dicomseries); rep may be nil, and is then computed (lungs segmented
// from ct) when the SC or the lung segments need it.
func Write(stem string, src *dicomout.Source, ct *volume.Volume, inf *volume.Label, rep *severity.Report, opt Options) (*Outputs, error) {
	out := &Outputs{Report: rep}
	if rep == nil && (opt.SC || opt.Lungs) {
		r, err := severity.Compute(ct, inf, nil, severity.Options{Version: opt.Version, Lungs: lungs.DefaultOptions()})
		if err != nil {
			return nil, fmt.Errorf("dicomreport: %w", err)
		}
		out.Report = r
	}
	segPath, scPath := Paths(stem)
	if opt.SEG {
		var lm *volume.Label
		if opt.Lungs {
			lm = out.Report.Lungs
		}
		w, err := WriteSEG(segPath, src, inf, lm, opt.Version)
		if err != nil {
			return nil, err
		}
		out.SEG = w
	}
	if opt.SC {
		w, err := WriteSC(scPath, src, ct, inf, out.Report, opt.Version)
		if err != nil {
			return nil, err
		}
		out.SC = w
	}
	return out, nil
}

// WriteSEG writes the Segmentation of one case to path: the infiltrate
// (inf > 0) and, when lungMask is not nil, the right (1) and left (2) lung.
func WriteSEG(path string, src *dicomout.Source, inf, lungMask *volume.Label, version string) (*dicomout.Written, error) {
	return dicomout.WriteSEG(path, src, dicomout.StandardSegments(inf, lungMask, version), dicomout.SEGOptions{
		Equipment:          dicomout.Equipment{SoftwareVersion: version},
		SeriesDescription:  "covseg segmentation - " + NotForDiagnosis,
		ContentDescription: "COVID-19 infiltrate and lungs by covseg " + version,
	})
}

// WriteSC renders the report montage with the figures under it and writes
// it to path as a Secondary Capture.
func WriteSC(path string, src *dicomout.Source, ct *volume.Volume, inf *volume.Label, r *severity.Report, version string) (*dicomout.Written, error) {
	img, err := r.Montage(ct, inf, montage.Options{})
	if err != nil {
		return nil, fmt.Errorf("dicomreport: %s: %w", path, err)
	}
	lines := FigureLines(r, version)
	pic := withText(img, lines)
	desc := asciiLines([]string{fmt.Sprintf("covseg %s %s involved - %s", r.Category, pct(r.InvolvementPct), NotForDiagnosis)})[0]
	return dicomout.WriteSC(path, src, pic, dicomout.SCOptions{
		Equipment:             dicomout.Equipment{SoftwareVersion: version},
		SeriesDescription:     desc,
		Comments:              joinLines(lines),
		DerivationDescription: "covseg severity report montage: axial CT slices, radiological view, lungs outlined, infiltrate filled",
	})
}

// FigureLines are the report's figures as the picture shows them, in
// ASCII: the picture's font has no other glyphs, and DICOM text in the
// source's character set may allow no other characters.
func FigureLines(r *severity.Report, version string) []string {
	return asciiLines([]string{
		fmt.Sprintf("%s (%s): %s of the lungs involved (right %s, left %s)", r.Category, r.CategoryRange,
			pct(r.InvolvementPct), pct(r.InvolvementRightPct), pct(r.InvolvementLeftPct)),
		fmt.Sprintf("Lungs %.1f mL (right %.1f, left %.1f); infiltrate %.1f mL in the lungs (right %.1f, left %.1f), %.1f mL outside",
			r.LungML, r.LungRightML, r.LungLeftML, r.InfiltrateRightML+r.InfiltrateLeftML, r.InfiltrateRightML, r.InfiltrateLeftML, r.InfiltrateOutsideML),
		fmt.Sprintf("covseg %s - %s: the model is not validated on patients", version, NotForDiagnosis),
	})
}

// asciiLines spells ≤ and ≥ (in the report's category ranges) as <= and
// >=, and replaces any other non-ASCII character with '?'.
func asciiLines(lines []string) []string {
	r := strings.NewReplacer("≤", "<=", "≥", ">=")
	for i, l := range lines {
		l = r.Replace(l)
		l = strings.Map(func(c rune) rune {
			if c > 0x7e || (c < 0x20 && c != '\n') {
				return '?'
			}
			return c
		}, l)
		lines[i] = l
	}
	return lines
}

func pct(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %%", *p)
}

func joinLines(l []string) string { return strings.Join(l, "\r\n") }

// withText returns img with a dark band under it holding the lines.
func withText(img image.Image, lines []string) *image.RGBA {
	const lineH, pad = 16, 8
	face := basicfont.Face7x13
	b := img.Bounds()
	w := b.Dx()
	for _, l := range lines {
		w = max(w, font.MeasureString(face, l).Ceil()+2*pad)
	}
	h := b.Dy() + len(lines)*lineH + 2*pad
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), &image.Uniform{color.RGBA{0, 0, 0, 255}}, image.Point{}, draw.Src)
	draw.Draw(out, image.Rect(0, 0, b.Dx(), b.Dy()), img, b.Min, draw.Src)
	for i, l := range lines {
		c := color.RGBA{255, 255, 255, 255}
		if i == len(lines)-1 {
			c = color.RGBA{255, 200, 0, 255} // the warning in amber
		}
		d := font.Drawer{Dst: out, Src: &image.Uniform{c}, Face: face,
			Dot: fixed.P(pad, b.Dy()+pad+(i+1)*lineH-4)}
		d.DrawString(l)
	}
	return out
}
