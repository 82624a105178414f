package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesOpenAddr: covseg serve will not listen beyond loopback
// without a token, nor with a token that is too short.
func TestServeRefusesOpenAddr(t *testing.T) {
	t.Setenv(serveTokenEnv, "")
	data := filepath.Join(t.TempDir(), "store")
	_, stderr, code := run(t, "serve", "--data", data, "--addr", "0.0.0.0:0")
	if code == 0 || !strings.Contains(stderr, "refusing to listen on 0.0.0.0:0 without a token") {
		t.Errorf("open address without a token: exit %d, %q", code, stderr)
	}
	t.Setenv(serveTokenEnv, "short")
	if _, stderr, code := run(t, "serve", "--data", data, "--addr", "0.0.0.0:0"); code == 0 || !strings.Contains(stderr, "shorter than 16") {
		t.Errorf("short token: exit %d, %q", code, stderr)
	}
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("tiny\n"), 0o600)
	if _, stderr, code := run(t, "serve", "--data", data, "--addr", "0.0.0.0:0", "--token-file", tok); code == 0 || !strings.Contains(stderr, "shorter than 16") {
		t.Errorf("short token file: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("a refused start created the datastore")
	}
}
