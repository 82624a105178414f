package torchpth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// scanPickle walks the opcodes of the pickle at the start of b without
// executing them and returns its length (up to and including STOP). It
// checks that every counted argument (string and bytes lengths, frames) fits
// in b, so that the unpickler, which allocates a counted argument before
// reading it, is never asked for more memory than the input holds.
func scanPickle(b []byte) (int, error) {
	pos := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-pos) {
			return fmt.Errorf("pickle: argument of %d bytes at offset %d runs past the end (%d bytes)", n, pos, len(b))
		}
		pos += int(n)
		return nil
	}
	line := func() error {
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			return fmt.Errorf("pickle: unterminated line at offset %d", pos)
		}
		pos += i + 1
		return nil
	}
	counted := func(width int) error {
		if err := need(uint64(width)); err != nil {
			return err
		}
		a := b[pos-width : pos]
		var n uint64
		switch width {
		case 1:
			n = uint64(a[0])
		case 4:
			n = uint64(binary.LittleEndian.Uint32(a))
		case 8:
			n = binary.LittleEndian.Uint64(a)
		}
		return need(n)
	}
	for {
		if pos >= len(b) {
			return 0, errors.New("pickle: ends without STOP")
		}
		op := b[pos]
		pos++
		var err error
		switch op {
		case '.': // STOP
			return pos, nil
		// No argument.
		case '(', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
		// Fixed-size arguments.
		case 'K', 'h', 'q', 0x80, 0x82: // BININT1, BINGET, BINPUT, PROTO, EXT1
			err = need(1)
		case 'M', 0x83: // BININT2, EXT2
			err = need(2)
		case 'J', 'j', 'r', 0x84: // BININT, LONG_BINGET, LONG_BINPUT, EXT4
			err = need(4)
		case 'G': // BINFLOAT
			err = need(8)
		case 0x95: // FRAME: its 8-byte size must fit; the opcodes inside follow
			if err = need(8); err == nil {
				if binary.LittleEndian.Uint64(b[pos-8:pos]) > uint64(len(b)-pos) {
					err = fmt.Errorf("pickle: frame at offset %d runs past the end", pos-9)
				}
			}
		// Newline-terminated arguments.
		case 'F', 'I', 'L', 'P', 'S', 'V', 'g', 'p':
			err = line()
		case 'c', 'i': // GLOBAL, INST: module and name lines
			if err = line(); err == nil {
				err = line()
			}
		// Counted arguments.
		case 'U', 'C', 0x8a, 0x8c: // SHORT_BINSTRING, SHORT_BINBYTES, LONG1, SHORT_BINUNICODE
			err = counted(1)
		case 'T', 'X', 'B', 0x8b: // BINSTRING, BINUNICODE, BINBYTES, LONG4
			err = counted(4)
		case 0x8d, 0x8e, 0x96: // BINUNICODE8, BINBYTES8, BYTEARRAY8
			err = counted(8)
		default:
			return 0, fmt.Errorf("pickle: unknown opcode 0x%02x at offset %d", op, pos-1)
		}
		if err != nil {
			return 0, err
		}
	}
}
