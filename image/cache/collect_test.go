package cache

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixed is a use time that every file system stores exactly.
var fixed = time.Unix(1_700_000_000, 0)

// fillFile makes the file entry kind/key holding n bytes.
func fillFile(t testing.TB, c *Cache, kind, key string, n int) string {
	t.Helper()
	p, err := c.File(kind, key, func(f *os.File) error {
		_, err := f.Write(make([]byte, n))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fillDir makes the directory entry kind/key holding a file of n bytes.
func fillDir(t testing.TB, c *Cache, kind, key string, n int) string {
	t.Helper()
	p, err := c.Dir(kind, key, func(tmp string) error {
		if err := os.MkdirAll(filepath.Join(tmp, "sub"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "sub", "f"), make([]byte, n), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func keys(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Kind+"/"+e.Key)
	}
	return out
}

func TestEntries(t *testing.T) {
	c := newCache(t)
	const n = 10_000
	fillDir(t, c, "deb", "aa", n)
	fillFile(t, c, "debian-rootfs", "bb", n)
	fillFile(t, c, "debian-lock", "bb", 10)
	sparse, err := c.File("debian-disk", "cc", func(f *os.File) error {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			return err
		}
		return f.Truncate(1 << 30)
	})
	if err != nil {
		t.Fatal(err)
	}
	// What is not an entry: a fill in progress, one being removed, locks,
	// a kind's foreign files and directories named unlike kinds.
	for _, p := range []string{"deb/.dd.tmp-123/x", "deb/ee.removing/x", "agent-build/shakedown-agent", "Bad/ff", "debian-lock/notes.txt"} {
		if err := os.MkdirAll(filepath.Join(c.Root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.Root, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"deb/aa", "debian-rootfs/bb", "debian-lock/bb", "debian-disk/cc"} {
		setUsed(t, filepath.Join(c.Root, p), fixed)
	}

	got, err := c.Entries()
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	want := []string{"deb/aa", "debian-disk/cc", "debian-lock/bb", "debian-rootfs/bb"}
	if !slices.Equal(keys(got), want) {
		t.Fatalf("got entries %q, want %q", keys(got), want)
	}
	for _, e := range got {
		if e.Path != filepath.Join(c.Root, e.Kind, e.Key) {
			t.Errorf("%s/%s: got path %s, want it under the kind's directory", e.Kind, e.Key, e.Path)
		}
		if !e.Used.Equal(fixed) {
			t.Errorf("%s/%s: got used %v, want %v", e.Kind, e.Key, e.Used, fixed)
		}
		// Listing is not a use.
		if fi, err := os.Lstat(e.Path); err != nil || !fi.ModTime().Equal(fixed) {
			t.Errorf("%s/%s: after Entries, got mtime %v, %v, want %v unchanged", e.Kind, e.Key, fi.ModTime(), err, fixed)
		}
	}
	sizes := []struct {
		name     string
		got      int64
		min, max int64
	}{
		{"directory holding a file", got[0].Size, n, 1 << 20},
		{"sparse disk counts its blocks", got[1].Size, 4096, 1 << 20},
		{"file", got[3].Size, n, 1 << 20},
	}
	for _, s := range sizes {
		if s.got < s.min || s.got > s.max {
			t.Errorf("%s: got size %d, want %d to %d", s.name, s.got, s.min, s.max)
		}
	}
	if fi, err := os.Stat(sparse); err != nil || fi.Size() != 1<<30 {
		t.Fatalf("sparse disk: got %v, want an apparent size of 1 GiB", err)
	}
}

func TestEntriesEmpty(t *testing.T) {
	got, err := newCache(t).Entries()
	if err != nil || len(got) != 0 {
		t.Errorf("got %v, %v, want no entries", got, err)
	}
}

// TestCollect checks that Collect removes every kind's entries unused since
// the cutoff, and only those; the kinds are the ones shakedown fills.
func TestCollect(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	entries := []struct {
		kind, key string
		dir       bool
		used      time.Duration // before now
		removed   bool
	}{
		{"deb", "a1", true, 30 * day, true},
		{"deb", "a2", true, day, false},
		{"deb-tree", "a1", true, 8 * day, true},
		{"kernel", "b1", true, 6 * day, false},
		{"busybox", "c1", true, 100 * day, true},
		{"initramfs", "d1", false, 8 * day, true},
		{"initramfs-lock", "d1", false, 8 * day, true},
		{"initramfs", "d2", false, time.Hour, false},
		{"debian-rootfs", "e1", false, 10 * day, true},
		{"debian-rootfs", "e2", false, 0, false},
		{"debian-lock", "e1", false, 10 * day, true},
		{"debian-lock", "e2", false, 0, false},
		{"debian-disk", "f1", false, 7*day + time.Minute, true},
		{"debian-disk", "f2", false, 7*day - time.Minute, false},
	}
	c := newCache(t)
	var want []string
	for _, e := range entries {
		var p string
		if e.dir {
			p = fillDir(t, c, e.kind, e.key, 100)
		} else {
			p = fillFile(t, c, e.kind, e.key, 100)
		}
		setUsed(t, p, now.Add(-e.used))
		if e.removed {
			want = append(want, e.kind+"/"+e.key)
		}
	}
	// Entries' order: by kind, then key ("deb" before "deb-tree").
	slices.SortFunc(want, func(a, b string) int {
		ak, akey, _ := strings.Cut(a, "/")
		bk, bkey, _ := strings.Cut(b, "/")
		if c := strings.Compare(ak, bk); c != 0 {
			return c
		}
		return strings.Compare(akey, bkey)
	})
	got, err := c.Collect(now.Add(-7 * day))
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if !slices.Equal(keys(got), want) {
		t.Errorf("got removed %q, want %q", keys(got), want)
	}
	for _, e := range entries {
		_, err := os.Lstat(filepath.Join(c.Root, e.kind, e.key))
		if gone := err != nil; gone != e.removed {
			t.Errorf("%s/%s used %v ago: got gone %v, want %v", e.kind, e.key, e.used, gone, e.removed)
		}
	}
	left, _ := filepath.Glob(filepath.Join(c.Root, "*", "*"+removingSuffix))
	if len(left) > 0 {
		t.Errorf("got %q after Collect, want nothing renamed aside left", left)
	}
}

// TestCollectKeepsUsed checks that an entry made long ago but used since,
// as a Debian rootfs tarball is on every build, survives Collect.
func TestCollectKeepsUsed(t *testing.T) {
	c := newCache(t)
	now := time.Now()
	p := fillFile(t, c, "debian-rootfs", key, 100)
	setUsed(t, p, now.Add(-30*24*time.Hour))
	if _, err := c.File("debian-rootfs", key, func(*os.File) error { t.Error("fill called on a hit"); return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := c.Collect(now.Add(-7 * 24 * time.Hour))
	if err != nil || len(got) != 0 {
		t.Errorf("Collect: got removed %q, %v, want nothing", keys(got), err)
	}
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("got %v, want the used entry kept", err)
	}
}

// TestCollectRechecksUse checks that an entry listed as unused but used
// before Collect renames it aside is put back, not removed.
func TestCollectRechecksUse(t *testing.T) {
	c := newCache(t)
	now := time.Now()
	p := fillDir(t, c, "deb-tree", key, 100)
	listed := Entry{Kind: "deb-tree", Key: key, Path: p, Used: now.Add(-30 * 24 * time.Hour)}
	// The entry's own use time is recent: used after the listing.
	removed, err := c.collect(listed, now.Add(-7*24*time.Hour))
	if err != nil || removed {
		t.Errorf("collect: got removed %v, %v, want false, nil", removed, err)
	}
	if _, err := os.Lstat(filepath.Join(p, "sub", "f")); err != nil {
		t.Errorf("got %v, want the entry back in place", err)
	}
}

// TestCollectLeftovers checks that what dead processes left is removed
// whatever its age, and what a living one is filling is not.
func TestCollectLeftovers(t *testing.T) {
	c := newCache(t)
	mk := func(p string) {
		t.Helper()
		full := filepath.Join(c.Root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("deb/.aa.tmp-123/x")       // a fill that died
	mk("debian-disk/bb.removing") // a removal that died
	mk("kernel/.cc.tmp-456/x")    // a fill in progress
	mk("deb/.notakey")            // not the cache's
	unlock, err := c.lock("kernel", "cc")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	got, err := c.Collect(time.Time{}) // no entry is old enough
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	var paths []string
	for _, e := range got {
		if !e.Leftover {
			t.Errorf("%s: got Leftover false, want true", e.Path)
		}
		paths = append(paths, strings.TrimPrefix(e.Path, c.Root+"/"))
	}
	want := []string{"deb/.aa.tmp-123", "debian-disk/bb.removing"}
	if !slices.Equal(paths, want) {
		t.Errorf("got removed %q, want %q", paths, want)
	}
	for _, p := range []string{"kernel/.cc.tmp-456/x", "deb/.notakey"} {
		if _, err := os.Lstat(filepath.Join(c.Root, p)); err != nil {
			t.Errorf("%s: got %v, want it kept", p, err)
		}
	}
}

func TestLeftoverKey(t *testing.T) {
	tests := []struct {
		name, key string
		ok        bool
	}{
		{".0123abc.tmp-999", "0123abc", true},
		{"0123abc.removing", "0123abc", true},
		{"0123abc", "", false},
		{".lock", "", false},
		{".probe-123", "", false},
		{".XYZ.tmp-1", "", false},
		{"x.removing", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, ok := leftoverKey(tt.name)
			if key != tt.key || ok != tt.ok {
				t.Errorf("got %q, %v, want %q, %v", key, ok, tt.key, tt.ok)
			}
		})
	}
}
