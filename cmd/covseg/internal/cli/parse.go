package cli

// Flag value parsers shared by several commands.

import (
	"fmt"
	"strconv"
	"strings"
)

// parseFloats parses n comma-separated numbers.
func parseFloats(s string, n int, set func([]float64)) error {
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return fmt.Errorf("%q: want %d comma-separated numbers", s, n)
	}
	v := make([]float64, n)
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		v[i] = f
	}
	set(v)
	return nil
}

// parseShape reads "DxHxW" or "D,H,W".
func parseShape(s string) ([3]int, error) {
	var out [3]int
	parts := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == 'x' || r == ',' || r == ' ' })
	if len(parts) != 3 {
		return out, fmt.Errorf("shape %q: want DxHxW, e.g. 20x224x224", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 4096 {
			return out, fmt.Errorf("shape %q: sizes must be whole numbers 1..4096", s)
		}
		out[i] = n
	}
	return out, nil
}
