// Package testenv decides whether tests that boot machines can run here:
// they fail in CI (CI=true) when they cannot, so a broken runner is never
// green, and skip with the reason elsewhere. It imports nothing of
// shakedown's.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI, where skipping a VM test would
// hide a broken setup.
func InCI() bool { return os.Getenv("CI") == "true" }

// NeedVM fails (in CI) or skips (elsewhere, and under -short) a test that
// boots machines when QEMU is missing.
func NeedVM(t testing.TB) {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skip("boots a VM; skipped with -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		if InCI() {
			t.Fatal("qemu-system-x86_64 not found and CI=true: install qemu-system-x86 (.ci/run does)")
		}
		t.Skip("qemu-system-x86_64 not found: apt-get install qemu-system-x86 to run VM tests")
	}
}
