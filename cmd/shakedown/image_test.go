package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/debian"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
	"github.com/shakedown-dev/shakedown/internal/snapshot"
)

const day = 24 * time.Hour

// cacheEntry is one entry testCache makes.
type cacheEntry struct {
	kind, key string
	dir       bool              // a directory entry, else a file
	files     map[string][]byte // the entry's content (for a file entry, key "")
	used      time.Duration     // last used that long before the test
	hit       bool              // found again through the cache just now, as a build does
}

// testCache makes the entries in a fresh cache; each is dated to its use,
// then, when hit, found again through the cache as a daily build would.
func testCache(t *testing.T, entries []cacheEntry) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, e := range entries {
		var p string
		if e.dir {
			p, err = c.Dir(e.kind, e.key, func(tmp string) error {
				for name, b := range e.files {
					if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, name)), 0o755); err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
						return err
					}
				}
				return nil
			})
		} else {
			p, err = c.File(e.kind, e.key, func(f *os.File) error { _, err := f.Write(e.files[""]); return err })
		}
		if err != nil {
			t.Fatal(err)
		}
		when := now.Add(-e.used)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
		if e.hit {
			if _, err := c.File(e.kind, e.key, func(*os.File) error { t.Errorf("%s/%s: fill on a hit", e.kind, e.key); return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

func lockBytes(request ...string) []byte {
	l := &pkgset.Lock{Version: pkgset.LockVersion, Request: request}
	names := append([]string{"libc6"}, request...)
	slices.Sort(names) // as ParseLock wants them
	for _, r := range names {
		l.Packages = append(l.Packages, pkgset.Locked{Name: r, Version: "1.0", Architecture: "amd64", SHA256: strings.Repeat("a", 64), Size: 1})
	}
	return l.Marshal()
}

func file(b []byte) map[string][]byte { return map[string][]byte{"": b} }

// TestImageGC checks that gc collects the entries of every kind unused for
// --older-than, and keeps a Debian rootfs tarball made a month ago but
// used every day since.
func TestImageGC(t *testing.T) {
	entries := []cacheEntry{
		{kind: shakedown.ImageKind, key: "a1", files: file([]byte("cpio")), used: 30 * day},
		{kind: shakedown.LockKind, key: "a1", files: file(lockBytes("curl")), used: 30 * day},
		{kind: shakedown.ImageKind, key: "a2", files: file([]byte("cpio")), used: time.Hour},
		{kind: debian.RootfsKind, key: "b1", files: file([]byte("tar")), used: 30 * day, hit: true},
		{kind: debian.LockKind, key: "b1", files: file(lockBytes("nginx")), used: 30 * day, hit: true},
		{kind: debian.RootfsKind, key: "b2", files: file([]byte("tar")), used: 9 * day},
		{kind: debian.LockKind, key: "b2", files: file(lockBytes("nginx")), used: 9 * day},
		{kind: debian.DiskKind, key: "c1", files: file([]byte("ext4")), used: 8 * day},
		{kind: kernel.CacheKind, key: "d1", dir: true, files: map[string][]byte{"boot/vmlinuz-6.1.0-9-amd64": nil}, used: 8 * day},
		{kind: deb.CacheKind, key: "e1", dir: true, files: map[string][]byte{"curl_1.0_amd64.deb": nil}, used: 8 * day},
		{kind: deb.CacheKind, key: "e2", dir: true, files: map[string][]byte{"jq_1.0_amd64.deb": nil}, used: 6 * day},
	}
	c := testCache(t, entries)
	if err := imageGC([]string{"--cache", c.Root, "--older-than", "7d"}); err != nil {
		t.Fatalf("image gc: %v", err)
	}
	for _, e := range entries {
		_, err := os.Lstat(filepath.Join(c.Root, e.kind, e.key))
		gone := err != nil
		want := e.used > 7*day && !e.hit
		if gone != want {
			t.Errorf("%s/%s used %v ago (hit now: %v): got removed %v, want %v", e.kind, e.key, e.used, e.hit, gone, want)
		}
	}
}

func TestCollectCacheDryRun(t *testing.T) {
	c := testCache(t, []cacheEntry{
		{kind: debian.LockKind, key: "b1", files: file(lockBytes("nginx")), used: 10 * day},
		{kind: deb.CacheKind, key: "e1", dir: true, files: map[string][]byte{"curl_1.0_amd64.deb": nil}, used: day},
	})
	var out bytes.Buffer
	if err := collectCache(&out, c, 7*day, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"would remove debian-lock/b1 (", "used 10d ago", "would remove 1 entries"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got output\n%s\nwant it to contain %q", out.String(), want)
		}
	}
	if strings.Contains(out.String(), "e1") {
		t.Errorf("got output\n%s\nwant deb/e1, used a day ago, left out", out.String())
	}
	if _, err := os.Lstat(filepath.Join(c.Root, debian.LockKind, "b1")); err != nil {
		t.Errorf("dry run removed debian-lock/b1: %v", err)
	}
}

// TestListCache checks that image ls lists every kind, images first, and
// says what each entry is.
func TestListCache(t *testing.T) {
	c := testCache(t, []cacheEntry{
		{kind: deb.CacheKind, key: "e1", dir: true, files: map[string][]byte{"curl_1.0_amd64.deb": nil}, used: 3 * day},
		{kind: kernel.CacheKind, key: "d1", dir: true, files: map[string][]byte{"boot/vmlinuz-6.1.0-9-amd64": nil}, used: 2 * day},
		{kind: debian.LockKind, key: "b1", files: file(lockBytes("nginx")), used: 10 * day},
		{kind: debian.RootfsKind, key: "b1", files: file([]byte("tar")), used: 10 * day},
		{kind: shakedown.ImageKind, key: "a1", files: file([]byte("cpio")), used: time.Hour},
		{kind: shakedown.LockKind, key: "a1", files: file(lockBytes("curl", "jq")), used: time.Hour},
		{kind: shakedown.ImageKind, key: "a2", files: file([]byte("cpio")), used: 2 * time.Hour},
		{kind: snapshot.Kind, key: "c1", dir: true, used: time.Minute, files: map[string][]byte{
			"manifest.json": []byte(`{"Version": 1, "Name": "ready", "Machines": [{"Name": "a"}, {"Name": "b"}]}`)}},
		{kind: agentbuild.CacheKind, key: "f1", files: file([]byte("ELF")), used: 4 * day},
		{kind: snapshot.Kind, key: "c2", dir: true, used: 2 * time.Minute, files: map[string][]byte{"manifest.json": []byte("{")}},
	})
	var out bytes.Buffer
	if err := listCache(&out, c, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []struct{ kind, key, what string }{
		{snapshot.Kind, "c1", "checkpoint ready: machines a, b (0 running)"},
		{snapshot.Kind, "c2", "checkpoint (unusable: the next Checkpoint sets up cold)"},
		{shakedown.ImageKind, "a1", "initramfs: curl,jq (3 packages)"},
		{shakedown.ImageKind, "a2", "initramfs without packages"},
		{shakedown.LockKind, "a1", "lock of initramfs a1: curl,jq (3 packages)"},
		{debian.RootfsKind, "b1", "Debian root file system: nginx (2 packages)"},
		{debian.LockKind, "b1", "lock of debian-rootfs b1: nginx (2 packages)"},
		{kernel.CacheKind, "d1", "kernel 6.1.0-9-amd64"},
		{agentbuild.CacheKind, "f1", "guest agent binary"},
		{deb.CacheKind, "e1", "curl_1.0_amd64.deb"},
	}
	if len(lines) != len(want)+2 {
		t.Fatalf("got %d lines:\n%s\nwant a header, %d entries and a total", len(lines), out.String(), len(want))
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "KIND KEY SIZE USED WHAT" {
		t.Errorf("got header %q, want KIND KEY SIZE USED WHAT", lines[0])
	}
	for i, w := range want {
		f := strings.Fields(lines[i+1])
		if len(f) < 2 || f[0] != w.kind || f[1] != w.key || !strings.Contains(lines[i+1], w.what) {
			t.Errorf("line %d: got %q, want %s %s ... %s", i+1, lines[i+1], w.kind, w.key, w.what)
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "10 entries, ") || !strings.HasSuffix(last, c.Root) {
		t.Errorf("got total %q, want 10 entries in %s", last, c.Root)
	}
	// Listing is not a use: the month-old rootfs stays old.
	es, err := c.Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Kind == debian.RootfsKind && time.Since(e.Used) < 9*day {
			t.Errorf("rootfs: got used %v ago after image ls, want 10 days", time.Since(e.Used).Round(time.Hour))
		}
	}

	out.Reset()
	if err := listCache(&out, c, deb.CacheKind, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n"); got != 3 || !strings.Contains(out.String(), "curl_1.0_amd64.deb") {
		t.Errorf("--kind deb: got\n%s\nwant the header, the one .deb and the total", out.String())
	}
}
