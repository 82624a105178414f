package nifti

import (
	"io"
	"sync"
)

// readChunks reads total bytes from r in chunks of at most size bytes and
// hands each to use, in order. Reading (and so decompressing) runs in its own
// goroutine, one to two chunks ahead of use, so that decoding gzip and
// converting voxels overlap. It returns how many bytes use was given, and
// the first error of r (io.ErrUnexpectedEOF if r ends early) or of use.
func readChunks(r io.Reader, total int64, size int, use func(raw []byte) error) (int64, error) {
	type chunk struct {
		raw []byte
		err error
	}
	const nbuf = 3
	full := make(chan chunk, nbuf) // never blocks: at most nbuf buffers exist
	free := make(chan []byte, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- make([]byte, int(min(int64(size), total)))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(full)
		for left := total; left > 0; {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, b[:min(int64(len(b)), left)])
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			full <- chunk{b[:n], err}
			if err != nil {
				return
			}
			left -= int64(n)
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	var done int64
	for c := range full {
		if c.err != nil {
			return done + int64(len(c.raw)), c.err
		}
		if err := use(c.raw); err != nil {
			return done, err
		}
		done += int64(len(c.raw))
		free <- c.raw[:cap(c.raw)]
	}
	return done, nil
}
