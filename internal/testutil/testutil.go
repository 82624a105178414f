// Package testutil finds the repository and the shared fixtures for tests.
//
// The shared fixtures live in a folder named shared beside the repository
// (../shared from the folder holding go.mod), in CI as on a developer's
// machine; COVSEG_SHARED names another folder. A test that asks for a
// fixture that is missing fails with a message that says where it looked:
// a missing fixture never turns into a skipped test.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/covseg/covseg/internal/repo"
)

// ModuleRoot returns the folder holding go.mod (repo.Root).
func ModuleRoot() (string, error) { return repo.Root() }

// RepoRoot is ModuleRoot for tests: it fails the test when there is none.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// SharedDir returns the shared fixtures folder: $COVSEG_SHARED, or
// ../shared beside the repository. It does not check that it exists.
func SharedDir(t testing.TB) string {
	t.Helper()
	d, err := repo.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Shared returns the path of rel (slash-separated parts) under the shared
// folder, failing the test when it is missing.
func Shared(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{SharedDir(t)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared fixture %s is missing: it is looked for in ../shared beside the repository (or $COVSEG_SHARED); see its README.md: %v", p, err)
	}
	return p
}

// IO returns the path of rel under the shared folder's fixtures/io.
func IO(t testing.TB, rel ...string) string {
	t.Helper()
	return Shared(t, append([]string{"fixtures", "io"}, rel...)...)
}

// Repo returns the path of rel (parts) under the repository root, failing
// the test when it is missing.
func Repo(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{RepoRoot(t)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing from the repository: %v", p, err)
	}
	return p
}

// SharedPath returns the path of rel under the shared folder without
// checking it, for package-level variables of tests; it is "" outside the
// repository. Tests that open such a path fail with an error naming it.
func SharedPath(rel ...string) string {
	base, err := repo.Shared()
	if err != nil {
		return ""
	}
	return filepath.Join(append([]string{base}, rel...)...)
}

// Long marks a test that takes tens of seconds (a full-width network, the
// pretrained encoder): `go test -short ./...`, the daily tier, leaves it
// out; the whole suite (scripts/test, CI) runs it.
func Long(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("long test: runs in the whole suite (scripts/test), not with -short")
	}
}

// Tool returns the path of an external program a test runs as an
// independent check (dciodvfy, Orthanc, …), installed by scripts/setup from
// the Debian package pkg. When it is missing the test fails wherever the
// tools were asked for — scripts/test (the README's test command, which
// runs scripts/setup first) sets COVSEG_REQUIRE_TOOLS, and CI sets CI — and
// skips in a plain `go test`, saying what to install: a developer without
// it still runs the rest of the suite.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, pkg)
	}
	return p
}

// Missing ends a test that needs something scripts/setup installs from the
// Debian package pkg: a failure under scripts/test or CI, a skip elsewhere
// (see Tool).
func Missing(t testing.TB, what, pkg string) {
	t.Helper()
	if os.Getenv("COVSEG_REQUIRE_TOOLS") != "" || os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (Debian package %s; scripts/setup installs it)", what, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s, or run scripts/setup)", what, pkg)
}
