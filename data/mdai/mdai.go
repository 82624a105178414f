// Package mdai reads annotation exports of the MD.ai platform (the format
// RICORD's annotations are published in) and rasterises their polygons.
//
// An export is a JSON object with datasets[].annotations[] and
// labelGroups[].labels[]. A label has an id, a name, a scope (INSTANCE,
// SERIES or STUDY) and an annotationMode. An annotation names its study,
// series and instance (SOPInstanceUID), its label (labelId), the image's
// size (height = rows, width = columns) and its geometry in data:
//
//   - freeform and polygon: {"vertices": [[x, y], ...]}
//   - mask: {"foreground": [polygon, ...], "background": [polygon, ...]},
//     the background polygons being holes cut out of the foreground
//   - bbox: {"x": x, "y": y, "width": w, "height": h}
//
// with x the column and y the row in the instance's pixels. Annotations
// whose data is null (study and series labels) carry no geometry.
//
// Rasterisation (see Fill) uses MD.ai's own convention, that of its Python
// client, which draws with OpenCV: pixel (column c, row r) has its centre
// at (x, y) = (c, r).
package mdai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Scopes of a label.
const (
	ScopeInstance = "INSTANCE"
	ScopeSeries   = "SERIES"
	ScopeStudy    = "STUDY"
)

// Limits that refuse absurd exports before they allocate: images of more
// than 65535 rows or columns (DICOM's own limit), polygons of more than a
// million vertices.
const (
	MaxSide     = 65535
	MaxVertices = 1 << 20
)

// Export is a parsed MD.ai annotation export.
type Export struct {
	Datasets    []Dataset    `json:"datasets"`
	LabelGroups []LabelGroup `json:"labelGroups"`
}

// Dataset is one data set of an export.
type Dataset struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Annotations []Annotation `json:"annotations"`
}

// LabelGroup is a named group of labels.
type LabelGroup struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Labels []Label `json:"labels"`
}

// Label is one annotation label.
type Label struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Scope          string `json:"scope"`
	AnnotationMode string `json:"annotationMode"`
}

// Annotation is one reader's annotation.
type Annotation struct {
	ID                string          `json:"id"`
	StudyInstanceUID  string          `json:"StudyInstanceUID"`
	SeriesInstanceUID string          `json:"SeriesInstanceUID"`
	SOPInstanceUID    string          `json:"SOPInstanceUID"`
	LabelID           string          `json:"labelId"`
	CreatedByID       string          `json:"createdById"`
	Height            *int            `json:"height"` // rows of the image
	Width             *int            `json:"width"`  // columns of the image
	Data              json.RawMessage `json:"data"`   // nil or null: no geometry
}

// HasData reports whether the annotation carries geometry.
func (a *Annotation) HasData() bool {
	d := bytes.TrimSpace(a.Data)
	return len(d) > 0 && !bytes.Equal(d, []byte("null"))
}

// Point is (x, y) = (column, row) in image pixels.
type Point [2]float64

// Polygon is a closed ring of points (the last joins the first).
type Polygon []Point

// Shape is an annotation's geometry: the union of the Foreground polygons
// minus the union of the Background polygons (holes).
type Shape struct {
	Foreground []Polygon
	Background []Polygon
}

// ReadFile reads and checks the export at path.
func ReadFile(path string) (*Export, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mdai: %w", err)
	}
	defer f.Close()
	return Decode(path, f)
}

// Decode reads an export from r; name is used in error messages. It checks
// that the export has datasets and labels, that every label id is unique
// and that every annotation names a known label.
func Decode(name string, r io.Reader) (*Export, error) {
	var e Export
	dec := json.NewDecoder(r)
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("mdai: %s: not an MD.ai export: %w", name, err)
	}
	if e.Datasets == nil || e.LabelGroups == nil {
		return nil, fmt.Errorf("mdai: %s: not an MD.ai export (no datasets or labelGroups)", name)
	}
	labels := map[string]bool{}
	for _, g := range e.LabelGroups {
		for _, l := range g.Labels {
			if l.ID == "" {
				return nil, fmt.Errorf("mdai: %s: label %q in group %q has no id", name, l.Name, g.Name)
			}
			if labels[l.ID] {
				return nil, fmt.Errorf("mdai: %s: label id %s appears twice", name, l.ID)
			}
			labels[l.ID] = true
		}
	}
	for _, d := range e.Datasets {
		for i, a := range d.Annotations {
			if !labels[a.LabelID] {
				return nil, fmt.Errorf("mdai: %s: dataset %q annotation %d (%s): unknown labelId %q", name, d.Name, i, a.ID, a.LabelID)
			}
		}
	}
	return &e, nil
}

// Labels returns every label by id.
func (e *Export) Labels() map[string]Label {
	out := map[string]Label{}
	for _, g := range e.LabelGroups {
		for _, l := range g.Labels {
			out[l.ID] = l
		}
	}
	return out
}

// FindLabels returns the labels whose name equals one of names, ignoring
// case and surrounding spaces, and the names that matched no label.
func (e *Export) FindLabels(names ...string) (found []Label, missing []string) {
	for _, n := range names {
		ok := false
		for _, g := range e.LabelGroups {
			for _, l := range g.Labels {
				if strings.EqualFold(strings.TrimSpace(l.Name), strings.TrimSpace(n)) {
					found = append(found, l)
					ok = true
				}
			}
		}
		if !ok {
			missing = append(missing, n)
		}
	}
	return found, missing
}

// Annotations returns every annotation of every data set, in export order.
func (e *Export) Annotations() []*Annotation {
	var out []*Annotation
	for d := range e.Datasets {
		for i := range e.Datasets[d].Annotations {
			out = append(out, &e.Datasets[d].Annotations[i])
		}
	}
	return out
}

// Size returns the image's rows and columns as the annotation states them;
// ok is false when either is missing.
func (a *Annotation) Size() (rows, cols int, ok bool) {
	if a.Height == nil || a.Width == nil {
		return 0, 0, false
	}
	return *a.Height, *a.Width, true
}

// rawShape holds every form data may take.
type rawShape struct {
	Vertices   json.RawMessage `json:"vertices"`
	Foreground json.RawMessage `json:"foreground"`
	Background json.RawMessage `json:"background"`
	X          *float64        `json:"x"`
	Y          *float64        `json:"y"`
	W          *float64        `json:"width"`
	H          *float64        `json:"height"`
}

// Shape decodes the annotation's geometry, whatever its mode: vertices
// (freeform, polygon), foreground/background (mask) or x/y/width/height
// (bbox, as the polygon of its four corners). It is an error when the
// annotation has no data or data of another form (a line, a point).
func (a *Annotation) Shape() (*Shape, error) {
	if !a.HasData() {
		return nil, errors.New("no data")
	}
	var r rawShape
	if err := json.Unmarshal(a.Data, &r); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	s := &Shape{}
	switch {
	case r.Vertices != nil:
		p, err := polygonOf(r.Vertices)
		if err != nil {
			return nil, fmt.Errorf("vertices: %w", err)
		}
		s.Foreground = []Polygon{p}
	case r.Foreground != nil || r.Background != nil:
		var err error
		if s.Foreground, err = polygonsOf(r.Foreground); err != nil {
			return nil, fmt.Errorf("foreground: %w", err)
		}
		if s.Background, err = polygonsOf(r.Background); err != nil {
			return nil, fmt.Errorf("background: %w", err)
		}
	case r.X != nil && r.Y != nil && r.W != nil && r.H != nil:
		x, y, w, h := *r.X, *r.Y, *r.W, *r.H
		p := Polygon{{x, y}, {x + w, y}, {x + w, y + h}, {x, y + h}}
		if err := checkPoints(p); err != nil {
			return nil, fmt.Errorf("bbox: %w", err)
		}
		s.Foreground = []Polygon{p}
	default:
		return nil, errors.New("data holds no vertices, foreground/background or box")
	}
	return s, nil
}

// polygonsOf decodes a list of polygons; null or absent is none.
func polygonsOf(raw json.RawMessage) ([]Polygon, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	out := make([]Polygon, 0, len(list))
	for i, r := range list {
		p, err := polygonOf(r)
		if err != nil {
			return nil, fmt.Errorf("polygon %d: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// polygonOf decodes [[x, y], ...]. null is an error, not an empty outline:
// an annotation whose vertices are null has lost its outline, and dropping
// it silently would turn a lesion into background.
func polygonOf(raw json.RawMessage) (Polygon, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, errors.New("null: the annotation has no outline (a damaged export?)")
	}
	var pts [][]float64
	if err := json.Unmarshal(raw, &pts); err != nil {
		return nil, err
	}
	if len(pts) > MaxVertices {
		return nil, fmt.Errorf("%d vertices (at most %d)", len(pts), MaxVertices)
	}
	p := make(Polygon, len(pts))
	for i, q := range pts {
		if len(q) != 2 {
			return nil, fmt.Errorf("vertex %d has %d coordinates, want [x, y]", i, len(q))
		}
		p[i] = Point{q[0], q[1]}
	}
	if err := checkPoints(p); err != nil {
		return nil, err
	}
	return p, nil
}

// checkPoints refuses coordinates that are not finite or absurdly far out
// (beyond any image's size).
func checkPoints(p Polygon) error {
	for i, q := range p {
		for _, v := range q {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 4*MaxSide {
				return fmt.Errorf("vertex %d (%g, %g) is not a usable coordinate", i, q[0], q[1])
			}
		}
	}
	return nil
}
