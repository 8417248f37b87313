package shakedown_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/debian"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// needDebian skips (or fails in CI) a test that builds a Debian system
// where mmdebstrap cannot run.
func needDebian(t *testing.T) {
	t.Helper()
	testenv.NeedDebian(t)
}

// TestDebianSystem boots a full Debian system twice (the second boot is a
// Reboot): multi-user.target through the guest's systemd, a declared unit
// active, a failing one failing the wait at once, the agent's network
// setup as a service, and a file written to the root disk's overlay
// surviving Reboot; then a Snapshot and Restore.
func TestDebianSystem(t *testing.T) {
	needDebian(t)
	tb := newTestbed(t)
	tb.Network("lan", shakedown.NetworkOptions{})
	m := tb.Machine("deb", shakedown.MachineConfig{
		Networks: []string{"lan"},
		Files:    []shakedown.File{{Guest: "/etc/motd", Data: []byte("from the spec\n")}},
		Debian: &shakedown.DebianSystem{Units: map[string]string{
			"hello.service":  "[Service]\nExecStart=/bin/sh -c 'echo hello > /run/hello; exec sleep infinity'\n",
			"broken.service": "[Service]\nExecStart=/bin/sh -c 'echo fatal: no config in /etc/broken >&2; exit 3'\n",
		}},
	})
	began := time.Now()
	m.Start()
	t.Logf("booted to the agent in %v (%s)", time.Since(began).Round(time.Millisecond), tb.Accel())
	m.WaitForUnit("multi-user.target")
	t.Logf("multi-user.target after %v", time.Since(began).Round(time.Millisecond))
	m.WaitForUnit("hello")
	if got := m.UnitState("hello.service"); got != "active" {
		t.Errorf("UnitState(hello): got %q, want active", got)
	}
	if got := m.Succeed("cat /run/hello /etc/motd; hostname; test -d /lib/modules/$(uname -r)/kernel && echo modules"); got != "hello\nfrom the spec\ndeb\nmodules\n" {
		t.Errorf("got %q, want the unit's file, the spec's file, the hostname and the modules", got)
	}
	if got := m.Succeed("ip -4 -o addr show dev eth0 | awk '{print $4}'"); got != "192.168.1.1/24\n" {
		t.Errorf("eth0: got %q, want 192.168.1.1/24", got)
	}
	msg, took := expectErr(t, func() error { return m.WithTimeout(time.Minute).WaitForUnitE("broken") })
	if took > 15*time.Second || !strings.Contains(msg, `unit broken reached state "failed"`) || !strings.Contains(msg, "fatal: no config in /etc/broken") {
		t.Errorf("WaitForUnit(broken) failed after %v with %q, want a fast failure with the unit's output", took, msg)
	}

	m.Succeed("echo kept > /root/mark && sync")
	began = time.Now()
	m.Reboot()
	t.Logf("rebooted in %v", time.Since(began).Round(time.Millisecond))
	if got := m.Succeed("cat /root/mark"); got != "kept\n" {
		t.Errorf("after Reboot: got %q, want the file written before", got)
	}

	// A snapshot of a systemd machine: its root disk's overlay and its
	// units come back as they were, and systemd keeps supervising.
	m.WaitForUnit("hello")
	tb.Snapshot("up")
	m.Succeed("rm /root/mark && systemctl stop hello")
	began = time.Now()
	tb.Restore("up")
	t.Logf("restored in %v", time.Since(began).Round(time.Millisecond))
	if got := m.Succeed("cat /root/mark; systemctl is-active hello"); got != "kept\nactive\n" {
		t.Errorf("after Restore: got %q, want the mark and hello active", got)
	}
	m.Succeed("systemctl restart hello")
	m.WaitForUnit("hello")
}

// TestDebianLockReproducible builds a Debian root disk, then twice from
// its lock in a fresh cache (from the locked .debs alone, not the
// mirror's index; the second time after removing the root file system,
// disk and lock of the first): both locked builds must be the same bytes,
// lock the same packages, and hold a clean file system.
func TestDebianLockReproducible(t *testing.T) {
	needDebian(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// No packages beyond the base: the root file system is the one
	// TestDebianSystem builds.
	cfg := shakedown.MachineConfig{
		Files:  []shakedown.File{{Guest: "/etc/motd", Data: []byte("locked\n")}},
		Debian: &shakedown.DebianSystem{},
	}
	first, err := shakedown.BuildDebian(ctx, cfg, shakedown.ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Lock == nil {
		t.Fatal("no lock for a build from the host's suite")
	}
	for _, name := range []string{"systemd", "udev", "libc6", "dpkg", "apt"} {
		if _, ok := first.Lock.Find(name); !ok {
			t.Errorf("lock has no %s:\n%s", name, first.Lock.Marshal())
		}
	}
	locked := cfg
	d := *cfg.Debian
	d.Lock = first.Lock
	locked.Debian = &d

	// A fresh cache, but for the kernel, the agent and the .debs: they
	// are checked by hash, and fetching them again would only be slow.
	dir := t.TempDir()
	shared, err := cache.Open("")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"kernel", "agent-build", "deb"} {
		if _, err := os.Stat(filepath.Join(shared.Root, kind)); err != nil {
			continue
		}
		if out, err := exec.Command("cp", "-al", filepath.Join(shared.Root, kind), dir).CombinedOutput(); err != nil {
			t.Fatalf("seed the cache: %v: %s", err, out)
		}
	}
	var images [2]*shakedown.DebianImage
	for i := range images {
		if i > 0 {
			for _, kind := range []string{debian.RootfsKind, debian.DiskKind, debian.LockKind} {
				if err := os.RemoveAll(filepath.Join(dir, kind)); err != nil {
					t.Fatal(err)
				}
			}
		}
		began := time.Now()
		img, err := shakedown.BuildDebian(ctx, locked, shakedown.ImageOptions{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("locked build %d: %v, key %s", i+1, time.Since(began).Round(time.Millisecond), img.Key)
		images[i] = img
		if !bytes.Equal(img.Lock.Marshal(), first.Lock.Marshal()) {
			t.Errorf("locked build %d: lock differs from the one it was given", i+1)
		}
		if i == 0 {
			// Kept aside, as the second build replaces it.
			keep := filepath.Join(t.TempDir(), "first.img")
			if err := os.Rename(img.Path, keep); err != nil {
				t.Fatal(err)
			}
			img.Path = keep
		}
	}
	a, b := fileSum(t, images[0].Path), fileSum(t, images[1].Path)
	if images[0].Key != images[1].Key || a != b {
		t.Errorf("two locked builds differ: keys %s and %s, contents %s and %s", images[0].Key, images[1].Key, a, b)
	}
	if out, err := exec.Command("/sbin/e2fsck", "-fn", images[1].Path).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn of the locked image: %v\n%s", err, out)
	}
}

// fileSum is the SHA-256 of a file's content, in hex.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
