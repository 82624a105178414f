package cli

import (
	"bytes"
	"testing"
)

// TestDemoFlags checks the command's flag validation (pipeline's tests run
// the demo itself).
func TestDemoFlags(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--minutes", "0"},
		{"demo", "--minutes", "-3"},
		{"demo", "--epochs", "-1"},
		{"demo", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := Execute(args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}
