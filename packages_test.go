package shakedown_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// packagesTimeout bounds a test's image builds: apt look-ups (about half
// a second each here) and, in fresh cache dirs, downloads of a few small
// .debs and a build of the agent.
const packagesTimeout = 5 * time.Minute

// needApt skips tests that resolve and download real packages.
func needApt(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("downloads Debian packages; skipped with -short")
	}
	if _, err := os.Stat("/usr/bin/apt-get"); err != nil {
		t.Skip("needs apt")
	}
}

// userKernel returns a MachineConfig with Debian's kernel from the user's
// cache set as the user's own, so that builds in fresh cache dirs do not
// download and unpack it again: they are about the packages.
func userKernel(t *testing.T, ctx context.Context) shakedown.MachineConfig {
	t.Helper()
	c, err := cache.Open("")
	if err != nil {
		t.Fatal(err)
	}
	k, err := kernel.Debian(ctx, c, deb.Apt{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := shakedown.MachineConfig{Kernel: k.Vmlinux, ModulesDir: k.ModulesDir}
	if cfg.Kernel == "" {
		cfg.Kernel = k.BzImage
	}
	return cfg
}

// TestPackagesReproducible builds an image with a dynamically linked
// program three times: in a fresh cache, from its lock in another fresh
// cache, and from the lock again in the first. All three must be the
// same bytes.
func TestPackagesReproducible(t *testing.T) {
	needApt(t)
	ctx, cancel := context.WithTimeout(context.Background(), packagesTimeout)
	defer cancel()
	cfg := userKernel(t, ctx)
	cfg.Packages = []string{"jq"}
	dirA, dirB := t.TempDir(), t.TempDir()

	first, err := shakedown.BuildImage(ctx, cfg, shakedown.ImageOptions{CacheDir: dirA})
	if err != nil {
		t.Fatal(err)
	}
	lockData, err := os.ReadFile(first.LockPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lockData, first.Lock.Marshal()) {
		t.Errorf("lock file %s differs from Image.Lock", first.LockPath)
	}
	for _, name := range []string{"jq", "libjq1", "libonig5", "libc6", "busybox-static"} {
		if _, ok := first.Lock.Find(name); !ok {
			t.Errorf("lock has no %s:\n%s", name, lockData)
		}
	}
	if first.Programs < 1 || first.Libraries < 3 {
		t.Errorf("got %d programs and %d libraries, want jq and at least libjq, libonig and libc", first.Programs, first.Libraries)
	}

	second, err := shakedown.BuildImage(ctx, cfg, shakedown.ImageOptions{CacheDir: dirB, Lock: first.Lock})
	if err != nil {
		t.Fatal(err)
	}
	third, err := shakedown.BuildImage(ctx, cfg, shakedown.ImageOptions{CacheDir: dirA, Lock: first.Lock})
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(first.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []*shakedown.Image{second, third} {
		b, err := os.ReadFile(img.Path)
		if err != nil {
			t.Fatal(err)
		}
		if img.Key != first.Key || !bytes.Equal(a, b) {
			t.Errorf("%s: key %s, %d bytes; want the first build's %s, %d bytes, byte for byte", img.Path, img.Key, len(b), first.Key, len(a))
		}
		if !bytes.Equal(img.Lock.Marshal(), lockData) {
			t.Errorf("locked build's lock differs:\n%s\nwant\n%s", img.Lock.Marshal(), lockData)
		}
	}
}

func TestPackagesErrors(t *testing.T) {
	needApt(t)
	ctx, cancel := context.WithTimeout(context.Background(), packagesTimeout)
	defer cancel()
	cfg := userKernel(t, ctx)
	cfg.Packages = []string{"jqq"}
	_, err := shakedown.BuildImage(ctx, cfg, shakedown.ImageOptions{})
	if !errors.Is(err, deb.ErrUnknownPackage) || !strings.Contains(err.Error(), "package jqq") || !strings.Contains(err.Error(), "jq") {
		t.Errorf("unknown package: got %v, want ErrUnknownPackage naming jqq and suggesting jq", err)
	}

	// A lock whose hash does not match what apt serves: the download is
	// refused and nothing is cached.
	cfg.Packages = []string{"jq"}
	dir := t.TempDir()
	good, err := shakedown.BuildImage(ctx, cfg, shakedown.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := *good.Lock
	bad.Packages = append(bad.Packages[:0:0], good.Lock.Packages...)
	for i := range bad.Packages {
		if bad.Packages[i].Name == "libonig5" {
			bad.Packages[i].SHA256 = strings.Repeat("0", 64)
		}
	}
	_, err = shakedown.BuildImage(ctx, cfg, shakedown.ImageOptions{CacheDir: dir, Lock: &bad})
	if !errors.Is(err, deb.ErrHashMismatch) || !strings.Contains(err.Error(), "libonig5") {
		t.Errorf("bad hash: got %v, want ErrHashMismatch naming libonig5", err)
	}
	if ents, _ := os.ReadDir(dir + "/initramfs"); len(ents) > 1 { // .lock only
		t.Errorf("a failed build left %d entries in %s/initramfs", len(ents), dir)
	}
}

// TestPackagesInGuest runs dynamically linked Debian programs in a
// machine: curl (a deep library closure), jq, and file (which needs
// libmagic's data file from another package).
func TestPackagesInGuest(t *testing.T) {
	testenv.NeedVM(t)
	needApt(t)
	tb := shakedown.New(t, shakedown.Options{})
	m := tb.Machine("pkgs", shakedown.MachineConfig{Packages: []string{"curl", "jq", "file"}})
	tb.StartAll()
	if out := m.Succeed("curl --version"); !strings.HasPrefix(out, "curl 7.") || !strings.Contains(out, "OpenSSL") {
		t.Errorf("curl --version: got %q", out)
	}
	if out := m.Succeed(`echo '{"a":[1,2,3]}' | jq -c '.a | map(.*2)'`); out != "[2,4,6]\n" {
		t.Errorf("jq: got %q, want [2,4,6]", out)
	}
	if out := m.Succeed("file -b /usr/bin/curl"); !strings.HasPrefix(out, "ELF 64-bit LSB pie executable, x86-64") {
		t.Errorf("file: got %q, want an ELF description from the magic database", out)
	}
	// Busybox's applets stay for everything the packages do not ship.
	m.Succeed("ls /usr/bin/curl && sh -c true")
}

// TestLockFile pins a machine's packages with MachineConfig.LockFile: the
// first run writes it, a later run installs what it lists (a lock whose
// hash is not the package's fails), and a spec that changed fails with
// what changed.
func TestLockFile(t *testing.T) {
	testenv.NeedVM(t)
	needApt(t)
	lockPath := filepath.Join(t.TempDir(), "testdata", "jq.lock")
	cfg := shakedown.MachineConfig{Packages: []string{"jq"}, LockFile: lockPath}

	t.Run("first run writes it", func(t *testing.T) {
		tb := newTestbed(t)
		m := tb.Machine("locked", cfg)
		m.Start()
		got := m.Succeed("jq --version")
		b, err := os.ReadFile(lockPath)
		if err != nil {
			t.Fatalf("no lock file after the first run: %v", err)
		}
		lock, err := pkgset.ParseLock(b)
		if err != nil {
			t.Fatal(err)
		}
		jq, ok := lock.Find("jq")
		if !ok || !slices.Equal(lock.Request, []string{"jq"}) {
			t.Fatalf("lock file: got request %v, jq found %v; want [jq] and jq:\n%s", lock.Request, ok, b)
		}
		// jq says "jq-1.6"; Debian's version is "1.6-2.1".
		if !strings.HasPrefix(jq.Version, strings.TrimPrefix(strings.TrimSpace(got), "jq-")) {
			t.Errorf("guest runs %q, lock has jq %s", got, jq.Version)
		}
	})
	t.Run("later runs install what it lists", func(t *testing.T) {
		before, err := os.ReadFile(lockPath)
		if err != nil {
			t.Fatal(err)
		}
		tb := newTestbed(t)
		tb.Machine("locked", cfg).Start()
		if after, _ := os.ReadFile(lockPath); !bytes.Equal(before, after) {
			t.Errorf("a locked run rewrote the lock file")
		}

		// The same lock with another hash for jq: the build must refuse
		// the .deb the mirror serves.
		tampered := filepath.Join(t.TempDir(), "tampered.lock")
		lock, _ := pkgset.ParseLock(before)
		for i := range lock.Packages {
			if lock.Packages[i].Name == "jq" {
				lock.Packages[i].SHA256 = strings.Repeat("0", 64)
			}
		}
		os.WriteFile(tampered, lock.Marshal(), 0o644)
		bad := cfg
		bad.LockFile = tampered
		tb2 := newTestbed(t)
		m := tb2.Machine("tampered", bad)
		msg, _ := expectErr(t, func() error { return m.StartE() })
		if !strings.Contains(msg, "jq") || !strings.Contains(msg, strings.Repeat("0", 64)) {
			t.Errorf("got %q, want a hash mismatch of jq against the lock's sha256", msg)
		}
	})
	t.Run("a changed spec fails", func(t *testing.T) {
		tb := newTestbed(t)
		changed := cfg
		changed.Packages = []string{"jq", "file"}
		m := tb.Machine("changed", changed)
		msg, _ := expectErr(t, func() error { return m.StartE() })
		for _, want := range []string{"lock file " + lockPath, "the spec adds file", "delete it"} {
			if !strings.Contains(msg, want) {
				t.Errorf("got %q, want it to contain %q", msg, want)
			}
		}
	})
	t.Run("a corrupt lock file fails", func(t *testing.T) {
		corrupt := filepath.Join(t.TempDir(), "corrupt.lock")
		os.WriteFile(corrupt, []byte("{not json"), 0o644)
		bad := cfg
		bad.LockFile = corrupt
		tb := newTestbed(t)
		m := tb.Machine("corrupt", bad)
		msg, _ := expectErr(t, func() error { return m.StartE() })
		if !strings.Contains(msg, corrupt) || !strings.Contains(msg, "delete it") {
			t.Errorf("got %q, want the file named and what to do", msg)
		}
	})
}
