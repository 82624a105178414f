package dicomout

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// builder makes dataset elements and keeps the first error, so that a
// module can be written as a list of calls and checked once.
type builder struct {
	err error
}

// elem makes one element with the VR of the library's dictionary.
func (b *builder) elem(t tag.Tag, v any) *dicom.Element {
	e, err := dicom.NewElement(t, v)
	if err != nil && b.err == nil {
		b.err = fmt.Errorf("dicomout: element %s: %w", tag.DebugString(t), err)
	}
	return e
}

// str makes a string element (any text VR) with one or more values.
func (b *builder) str(t tag.Tag, v ...string) *dicom.Element {
	if v == nil {
		v = []string{}
	}
	return b.elem(t, v)
}

// ints makes a binary integer element (US, UL, SS, SL; AT as group,
// element pairs).
func (b *builder) ints(t tag.Tag, v ...int) *dicom.Element { return b.elem(t, v) }

// ds makes a decimal string element.
func (b *builder) ds(t tag.Tag, v ...float64) *dicom.Element {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = formatDS(x)
	}
	return b.elem(t, s)
}

// is makes an integer string element.
func (b *builder) is(t tag.Tag, v ...int) *dicom.Element {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return b.elem(t, s)
}

// seq makes a sequence whose items are sorted by tag (the library writes
// elements in the order given; DICOM wants ascending tags in every item).
func (b *builder) seq(t tag.Tag, items ...[]*dicom.Element) *dicom.Element {
	for _, it := range items {
		sortElements(it)
	}
	if items == nil {
		items = [][]*dicom.Element{}
	}
	return b.elem(t, items)
}

// code is one item of a code sequence (the Basic Code Sequence Macro).
func (b *builder) code(c Code) []*dicom.Element {
	return []*dicom.Element{
		b.str(tag.CodeValue, c.Value),
		b.str(tag.CodingSchemeDesignator, c.Scheme),
		b.str(tag.CodeMeaning, c.Meaning),
	}
}

// sortElements orders elements by tag, group first.
func sortElements(es []*dicom.Element) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Tag, es[j].Tag
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Element < b.Element
	})
}

// formatDS writes x as a DICOM decimal string: at most 16 characters.
func formatDS(x float64) string {
	if x == 0 {
		return "0"
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	for prec := 15; len(s) > 16 && prec > 0; prec-- {
		s = strconv.FormatFloat(x, 'g', prec, 64)
	}
	return s
}

// NewUID returns a new globally unique DICOM UID under the 2.25 root
// (PS3.5 B.2: a UUID written as one decimal integer), random version 4.
func NewUID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic(fmt.Sprintf("dicomout: no randomness for a UID: %v", err))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return "2.25." + new(big.Int).SetBytes(u[:]).String()
}

// shortString cuts s to at most n characters (LO: 64, SH: 16) so that a
// long name cannot make an invalid element.
func shortString(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}
