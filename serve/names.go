package serve

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxIDLen is the longest case ID kept as it is; longer names are cut and
// given a hash suffix so that they stay unique.
const maxIDLen = 64

// SafeID turns a name from a client (an image ID, a file name that may be a
// whole client-side path) into a case ID that is safe as a folder name:
// only the base name after the last '/' or '\' is kept, the extensions .nii,
// .nii.gz, .zip and .dcm are dropped, every character other than ASCII
// letters, digits, '.', '_' and '-' becomes '_', and names longer than 64
// characters are cut to 55 plus '-' and 8 hex digits of their SHA-256.
// A name with a NUL byte, or one that leaves nothing usable ("", ".", "..",
// a leading '.'), is refused.
func SafeID(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("name %q holds a NUL byte", name)
	}
	base := name
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	for _, ext := range []string{".nii.gz", ".nii", ".zip", ".dcm"} {
		if len(base) > len(ext) && strings.EqualFold(base[len(base)-len(ext):], ext) {
			base = base[:len(base)-len(ext)]
			break
		}
	}
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	id := b.String()
	if id == "" || strings.HasPrefix(id, ".") || strings.Trim(id, "_") == "" {
		return "", fmt.Errorf("name %q gives no usable case ID (letters, digits, '.', '_', '-'; not starting with '.')", clip(name))
	}
	if len(id) > maxIDLen {
		sum := sha256.Sum256([]byte(name))
		id = id[:maxIDLen-9] + "-" + hex.EncodeToString(sum[:4])
	}
	return id, nil
}

// clip shortens a client's string for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
