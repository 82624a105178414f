package metrics

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// Value is a figure that may be undefined (for example the Hausdorff
// distance when one mask is empty). Undefined is NaN; JSON encodes it as
// null and decodes null back to NaN.
type Value float64

// Undefined returns the undefined Value.
func Undefined() Value { return Value(math.NaN()) }

// Defined reports whether v holds a number (not NaN or infinite).
func (v Value) Defined() bool {
	f := float64(v)
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}

// MarshalJSON encodes a defined Value as the shortest decimal that reads
// back to the same float64, and an undefined one as null.
func (v Value) MarshalJSON() ([]byte, error) {
	if !v.Defined() {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(v), 'g', -1, 64), nil
}

// UnmarshalJSON decodes null as undefined and a JSON number as itself.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*v = Undefined()
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("metrics: value %q is neither a number nor null", b)
	}
	*v = Value(f)
	return nil
}

// String formats a defined Value with %g and an undefined one as "null".
func (v Value) String() string {
	if !v.Defined() {
		return "null"
	}
	return strconv.FormatFloat(float64(v), 'g', -1, 64)
}
