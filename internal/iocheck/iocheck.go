// Package iocheck makes failed writes to standard output and standard error
// visible: a command that prints its result to a full disk or a closed pipe
// must not exit 0 as if the result had been delivered.
package iocheck

import (
	"fmt"
	"io"
	"sync"
)

// Writer passes writes through to an underlying writer and remembers the
// first error, so that code printing with fmt.Fprintf (whose errors are
// routinely ignored) can be checked once at the end. After an error,
// further writes are dropped and return it.
type Writer struct {
	w    io.Writer
	name string
	mu   sync.Mutex
	err  error
}

// New wraps w; name ("standard output") is used in Err's message.
func New(w io.Writer, name string) *Writer {
	return &Writer{w: w, name: name}
}

// Write writes p to the underlying writer unless an earlier write failed.
func (c *Writer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		c.err = fmt.Errorf("writing %s: %w", c.name, err)
	}
	return n, c.err
}

// Unwrap returns the underlying writer (so that code asking whether output
// goes to a terminal can look through the Writer).
func (c *Writer) Unwrap() io.Writer { return c.w }

// Err returns the first write error, naming the stream, or nil.
func (c *Writer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the underlying writer when it is an io.Closer that the
// caller owns (a file opened for a report), and returns the first write or
// close error.
func (c *Writer) Close() error {
	if cl, ok := c.w.(io.Closer); ok {
		if err := cl.Close(); err != nil && c.Err() == nil {
			c.mu.Lock()
			c.err = fmt.Errorf("closing %s: %w", c.name, err)
			c.mu.Unlock()
		}
	}
	return c.Err()
}
