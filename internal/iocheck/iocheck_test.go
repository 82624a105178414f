package iocheck

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDevFull: writing to /dev/full fails with ENOSPC; the Writer keeps
// the error for Err even when the caller ignored it.
func TestDevFull(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("this test needs /dev/full: %v", err)
	}
	w := New(f, "standard output")
	fmt.Fprintf(w, "hello\n")
	fmt.Fprintf(w, "again\n")
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "writing standard output") || !strings.Contains(err.Error(), "no space") {
		t.Errorf("error %v", err)
	}
}

func TestPassesThrough(t *testing.T) {
	var b bytes.Buffer
	w := New(&b, "x")
	fmt.Fprintf(w, "a%d", 1)
	if b.String() != "a1" || w.Err() != nil {
		t.Errorf("%q %v", b.String(), w.Err())
	}
}

func TestUnwrap(t *testing.T) {
	if New(os.Stderr, "standard error").Unwrap() != os.Stderr {
		t.Error("Unwrap does not return the file")
	}
}
