package debian

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/hosttools"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		sys  System
		want string // "" means accepted
	}{
		{"plain", System{}, ""},
		{"units", System{Units: map[string]string{"web.service": "", "x.timer": ""}}, ""},
		{"unit name", System{Units: map[string]string{"../web": ""}}, `unit "../web"`},
		{"size", System{SizeMiB: -1}, "negative root size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sys.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestRootfsKey(t *testing.T) {
	a := &rootfs{suite: "bookworm", packages: []string{"kmod", "udev"}, version: "mmdebstrap 1.3.5"}
	b := *a
	b.packages = []string{"kmod", "udev", "curl"}
	c := *a
	c.version = "mmdebstrap 1.4.0"
	if a.key() == b.key() || a.key() == c.key() {
		t.Errorf("the key must change with the packages and mmdebstrap's version")
	}
	d := *a
	if a.key() != d.key() {
		t.Errorf("the key of one spec changed")
	}
	// Another mirror may serve other versions: another key. With a lock
	// the mirror plays no part.
	e := *a
	e.sources = []string{"http://mirror.example/debian"}
	if a.key() == e.key() {
		t.Errorf("the key must change with the mirror")
	}
	l := &pkgset.Lock{Version: pkgset.LockVersion, Packages: []pkgset.Locked{{Name: "kmod", Version: "30+20221128-1", SHA256: strings.Repeat("a", 64)}}}
	f, g := *a, e
	f.lock, g.lock = l, l
	if f.key() != g.key() || f.key() == a.key() {
		t.Errorf("a locked key must not depend on the mirror, and must differ from the unlocked one")
	}
}

// keyFixture makes the tree and agent the pinned keys were computed from.
func keyFixture(t *testing.T) (agent, tree string) {
	t.Helper()
	dir := t.TempDir()
	agent = filepath.Join(dir, "agent")
	tree = filepath.Join(dir, "tree")
	for _, err := range []error{
		os.WriteFile(agent, []byte("agent binary"), 0o755),
		os.MkdirAll(filepath.Join(tree, "sub"), 0o755),
		os.WriteFile(filepath.Join(tree, "a.conf"), []byte("a=1\n"), 0o644),
		os.WriteFile(filepath.Join(tree, "sub", "run.sh"), []byte("#!/bin/sh\n"), 0o755),
		os.Symlink("a.conf", filepath.Join(tree, "link")),
		os.Chmod(tree, 0o755), os.Chmod(filepath.Join(tree, "sub"), 0o755),
		os.Chmod(filepath.Join(tree, "a.conf"), 0o644), os.Chmod(filepath.Join(tree, "sub", "run.sh"), 0o755),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return agent, tree
}

// TestKeysPinned pins the cache keys of a fixed spec: a changed key makes
// every user rebuild their Debian systems (a minute or more each), so it
// must change only with keyFormat, on purpose.
func TestKeysPinned(t *testing.T) {
	r := &rootfs{suite: "bookworm", packages: []string{"kmod", "udev"}, version: "mmdebstrap 1.3.5",
		sources: []string{"/etc/apt/sources.list"}, text: []byte("deb http://deb.debian.org/debian bookworm main\n")}
	if got, want := r.key(), "382f892b61f256a9435eb0064a0194e929c1b9a114961a73ea1131e53ee664d0"; got != want {
		t.Errorf("rootfs key: got %s, want %s", got, want)
	}
	locked := *r
	locked.lock = &pkgset.Lock{Version: pkgset.LockVersion, Request: []string{"curl"}, Packages: []pkgset.Locked{{Name: "kmod", Version: "30+20221128-1", SHA256: strings.Repeat("a", 64)}}}
	if got, want := locked.key(), "39699d779988e6f526dbd54df891220419ec0edaeef42234116c20373b417c50"; got != want {
		t.Errorf("locked rootfs key: got %s, want %s", got, want)
	}
	agent, tree := keyFixture(t)
	spec := Spec{
		System:  System{SizeMiB: 2048, Units: map[string]string{"b.service": "B", "a.service": "A"}},
		Files:   []File{{Guest: "/etc/motd", Data: []byte("hi\n")}, {Guest: "/opt/x", Host: tree, Mode: 0o750}},
		Modules: []string{"overlay"},
		Agent:   agent,
		Kernel:  &kernel.Kernel{ModulesDir: "/k/lib/modules/6.1.0-28-amd64"},
	}
	got, err := diskKey(r.key(), spec)
	if want := "901ebd6b245e10a117ce6f5d8092cff000643907d8a23c6a3775f957e4a66409"; err != nil || got != want {
		t.Errorf("disk key: got %s, %v, want %s", got, err, want)
	}
}

func TestRootfsMirror(t *testing.T) {
	if _, err := hosttools.Find("mmdebstrap"); err != nil {
		t.Skip(err)
	}
	r, err := newRootfs(&System{Suite: "trixie", Mirror: "http://mirror.example/debian"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.sources) != 1 || r.sources[0] != "http://mirror.example/debian" || r.text != nil {
		t.Errorf("got sources %q, want the mirror alone", r.sources)
	}
	if r, err = newRootfs(&System{Suite: "trixie"}); err != nil || r.sources[0] != "http://deb.debian.org/debian" {
		t.Errorf("another suite without a mirror: got %q, %v; want deb.debian.org", r.sources, err)
	}
}

func TestPasswordlessRoot(t *testing.T) {
	p := filepath.Join(t.TempDir(), "shadow")
	if err := writeFile(p, []byte("root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := passwordlessRoot(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if want := "root::19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
}

// TestPlaceFile places bytes, a host file and a host tree, with their
// modes normalized, and refuses a relative guest path.
func TestPlaceFile(t *testing.T) {
	_, tree := keyFixture(t)
	root := t.TempDir()
	for _, f := range []File{
		{Guest: "/etc/motd", Data: []byte("hi\n")},
		{Guest: "/usr/local/bin/run", Host: filepath.Join(tree, "sub", "run.sh")},
		{Guest: "/etc/secret", Data: []byte("s"), Mode: 0o600},
		{Guest: "/opt/x", Host: tree},
	} {
		if err := placeFile(root, f); err != nil {
			t.Fatalf("%s: %v", f.Guest, err)
		}
	}
	for path, want := range map[string]os.FileMode{
		"etc/motd": 0o644, "usr/local/bin/run": 0o755, "etc/secret": 0o600,
		"opt/x/a.conf": 0o644, "opt/x/sub/run.sh": 0o755, "opt/x/link": os.ModeSymlink,
	} {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		got := fi.Mode().Perm()
		if want == os.ModeSymlink {
			got = fi.Mode().Type()
		}
		if got != want {
			t.Errorf("%s: got mode %v, want %v", path, got, want)
		}
	}
	if err := placeFile(root, File{Guest: "etc/x"}); err == nil || !strings.Contains(err.Error(), "want an absolute guest path") {
		t.Errorf("relative guest path: got %v, want an error", err)
	}
}
