package membudget

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"512M": 512 << 20, "8G": 8 << 30, "8GiB": 8 << 30, "1.5g": 3 << 29, "100000": 100000,
		"2k": 2048, "off": -1, "Unlimited": -1,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1G", "abc", "0", "150%", "0%", "1e30T"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if machineMemory() > 0 {
		half, err := Parse("50%")
		if err != nil || half <= 0 || half > machineMemory() {
			t.Errorf("Parse(50%%) = %d, %v", half, err)
		}
	}
}

func TestParseMemTotal(t *testing.T) {
	if got := parseMemTotal("MemFree: 5 kB\nMemTotal:       24568740 kB\n"); got != 24568740<<10 {
		t.Errorf("got %d", got)
	}
	if got := parseMemTotal("nothing"); got != 0 {
		t.Errorf("got %d", got)
	}
}

// TestCheck: over the budget is a TooLargeError whose message gives the
// size, the budget and how to raise it; Set(0) lifts the limit; the
// environment variable is read when nothing was set.
func TestCheck(t *testing.T) {
	defer Reset()
	Set(1 << 30)
	if err := Check("x", 1<<30); err != nil {
		t.Errorf("at the budget: %v", err)
	}
	err := Check("ct.nii.gz: a [1024 1024 1024] volume", 4<<30)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the budget: %v", err)
	}
	for _, want := range []string{"ct.nii.gz", "4.0 GiB", "1.0 GiB", "--mem-budget 4G", Env + "=4G"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	Set(0)
	if err := Check("x", 1<<60); err != nil {
		t.Errorf("unlimited: %v", err)
	}
	t.Setenv(Env, "3M")
	Reset()
	if Limit() != 3<<20 {
		t.Errorf("from the environment: %d", Limit())
	}
	t.Setenv(Env, "")
	Reset()
	if l := Limit(); l != Default() {
		t.Errorf("default %d, want %d", l, Default())
	}
}
