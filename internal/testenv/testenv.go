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

// NeedDebian is NeedVM for a test that also builds a Debian system, which
// needs mmdebstrap, run as root: it fails in CI and skips elsewhere when
// they are missing.
func NeedDebian(t testing.TB) {
	t.Helper()
	NeedVM(t)
	why := ""
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		why = "mmdebstrap not found: apt-get install mmdebstrap"
	} else if os.Geteuid() != 0 {
		why = "mmdebstrap needs root to build a Debian system"
	}
	if why == "" {
		return
	}
	if InCI() {
		t.Fatal(why)
	}
	t.Skip(why)
}

// NeedPackages is NeedVM for a test whose machines install Debian
// packages, which apt downloads: it skips under -short (outside CI), and
// where there is no apt, naming it.
func NeedPackages(t testing.TB) {
	t.Helper()
	NeedVM(t)
	if testing.Short() && !InCI() {
		t.Skip("downloads Debian packages; skipped with -short")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		if InCI() {
			t.Fatal("apt-get not found and CI=true: machines with packages need a Debian host")
		}
		t.Skip("apt-get not found: machines with packages need a Debian host")
	}
}

// NeedChromium returns the path of Debian's chromium, for browser tests;
// without it they fail in CI and skip elsewhere (and under -short).
func NeedChromium(t testing.TB) string {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skip("drives a browser; skipped with -short")
	}
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatal("chromium not found and CI=true: apt-get install chromium (scripts/setup-debian.sh does)")
	}
	t.Skip("chromium not found: apt-get install chromium to run the browser tests")
	return ""
}
