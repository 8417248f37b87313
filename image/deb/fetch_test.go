package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/image/cache"
)

// fakeSource serves packages from memory and counts downloads.
type fakeSource struct {
	pkgs      map[string]Package
	files     map[string][]byte // name -> content served, may differ from the hash
	downloads int
}

func newFakeSource(name string, content []byte) *fakeSource {
	sum := sha256.Sum256(content)
	return &fakeSource{
		pkgs: map[string]Package{name: {
			Name: name, Version: "1.0", Architecture: "all",
			SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)),
		}},
		files: map[string][]byte{name: content},
	}
}

func (s *fakeSource) Resolve(ctx context.Context, name string) (Package, error) {
	p, ok := s.pkgs[name]
	if !ok {
		return Package{}, fmt.Errorf("resolve %s: %w", name, ErrUnknownPackage)
	}
	return p, nil
}

func (s *fakeSource) Download(ctx context.Context, p Package, dstDir string) (string, error) {
	s.downloads++
	path := filepath.Join(dstDir, p.Name+"_"+p.Version+"_"+p.Architecture+".deb")
	return path, os.WriteFile(path, s.files[p.Name], 0o644)
}

func newCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFetchCachesAndReuses(t *testing.T) {
	c := newCache(t)
	src := newFakeSource("hello", []byte("deb content"))
	p, path, err := Fetch(context.Background(), c, src, "hello")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "deb content" {
		t.Errorf("got content %q, want %q", b, "deb content")
	}
	if dir, ok := c.Lookup(CacheKind, p.SHA256); !ok || filepath.Dir(path) != dir {
		t.Errorf("got path %s, want it in cache entry %s", path, dir)
	}
	_, path2, err := Fetch(context.Background(), c, src, "hello")
	if err != nil {
		t.Fatalf("Fetch again: %v", err)
	}
	if path2 != path || src.downloads != 1 {
		t.Errorf("second Fetch: got %s after %d downloads, want %s after 1", path2, src.downloads, path)
	}
}

func TestFetchHashMismatch(t *testing.T) {
	c := newCache(t)
	src := newFakeSource("hello", []byte("deb content"))
	src.files["hello"] = []byte("tampered")
	_, _, err := Fetch(context.Background(), c, src, "hello")
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("got %v, want ErrHashMismatch", err)
	}
	sum := sha256.Sum256([]byte("tampered"))
	for _, want := range []string{hex.EncodeToString(sum[:]), src.pkgs["hello"].SHA256} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to name hash %s", err, want)
		}
	}
	if _, ok := c.Lookup(CacheKind, src.pkgs["hello"].SHA256); ok {
		t.Errorf("got a cache entry after a bad download, want none")
	}
}

func TestFetchRepairsCorruptCache(t *testing.T) {
	c := newCache(t)
	src := newFakeSource("hello", []byte("deb content"))
	_, path, err := Fetch(context.Background(), c, src, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	// This process already verified path; forget that, as a new process would.
	verified.Delete(path)
	_, path2, err := Fetch(context.Background(), c, src, "hello")
	if err != nil {
		t.Fatalf("Fetch of corrupt entry: %v", err)
	}
	if b, _ := os.ReadFile(path2); string(b) != "deb content" {
		t.Errorf("got content %q, want %q", b, "deb content")
	}
	if src.downloads != 2 {
		t.Errorf("got %d downloads, want 2", src.downloads)
	}
}

func TestFetchErrors(t *testing.T) {
	c := newCache(t)
	src := newFakeSource("hello", []byte("x"))
	if _, _, err := Fetch(context.Background(), c, src, "nope"); !errors.Is(err, ErrUnknownPackage) {
		t.Errorf("unknown name: got %v, want ErrUnknownPackage", err)
	}
	p := src.pkgs["hello"]
	p.SHA256 = ""
	if _, err := FetchPackage(context.Background(), c, src, p); err == nil || !strings.Contains(err.Error(), "no SHA256") {
		t.Errorf("no hash: got %v, want an error saying the index gives no SHA256", err)
	}
}

// requireApt skips the test when apt cannot be used here.
func requireApt(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("downloads from the Debian archive; skipped with -short")
	}
	for _, tool := range []string{"apt-get", "apt-cache"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: this test needs a Debian host", tool)
		}
	}
	if !haveLists(context.Background()) {
		t.Skip("apt has no package lists: run `apt-get update`")
	}
}

func TestAptBusyboxIntegration(t *testing.T) {
	requireApt(t)
	ctx := context.Background()
	c := newCache(t)
	p, path, err := Fetch(ctx, c, Apt{}, "busybox-static")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if p.Name != "busybox-static" || p.Size == 0 {
		t.Errorf("got package %+v, want busybox-static with a size", p)
	}
	dst := t.TempDir()
	if err := Extract(path, dst, func(p string) bool { return p == "bin/busybox" }); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	bb := filepath.Join(dst, "bin/busybox")
	if out, err := exec.Command(bb, "true").CombinedOutput(); err != nil {
		t.Errorf("busybox true: %v: %s", err, out)
	}
	// Exact version resolves to the same package.
	p2, err := Apt{}.Resolve(ctx, p.String())
	if err != nil || p2 != p {
		t.Errorf("Resolve(%s): got %+v, %v, want %+v", p, p2, err, p)
	}
}

func TestAptResolveErrors(t *testing.T) {
	requireApt(t)
	tests := []struct {
		name string
		want []string
	}{
		{"busybox-statik", []string{"unknown package", "did you mean", "busybox-static"}},
		{"busybox-static=0.0.1", []string{"unknown package", "no such version", "1:1."}},
		{"mail-transport-agent", []string{"unknown package", "virtual", "postfix"}},
		{"-oFoo=bar", []string{"unknown package", "not a Debian package name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apt{}.Resolve(context.Background(), tt.name)
			if !errors.Is(err, ErrUnknownPackage) {
				t.Fatalf("got %v, want ErrUnknownPackage", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestAptNoPackageLists(t *testing.T) {
	if _, err := exec.LookPath("apt-cache"); err != nil {
		t.Skip("apt-cache not found: this test needs a Debian host")
	}
	// Point apt at an empty lists dir, as on a host that never ran
	// `apt-get update`; installed packages are then known from dpkg's status
	// file only, without an archive file.
	dir := t.TempDir()
	lists := filepath.Join(dir, "lists")
	os.MkdirAll(filepath.Join(lists, "partial"), 0o755)
	conf := filepath.Join(dir, "apt.conf")
	os.WriteFile(conf, []byte(`Dir::State::Lists "`+lists+`/";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
`), 0o644)
	t.Setenv("APT_CONFIG", conf)
	for _, name := range []string{"dpkg", "no-such-package-anywhere"} {
		_, err := Apt{}.Resolve(context.Background(), name)
		if !errors.Is(err, ErrNoPackageLists) || !strings.Contains(err.Error(), "apt-get update") {
			t.Errorf("Resolve(%s): got %v, want ErrNoPackageLists saying to run apt-get update", name, err)
		}
	}
}

func TestAptStampFollowsLists(t *testing.T) {
	if _, err := exec.LookPath("apt-config"); err != nil {
		t.Skip("apt-config not found: this test needs a Debian host")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "apt.conf")
	os.WriteFile(conf, []byte(`Dir::State::Lists "`+dir+`/";`), 0o644)
	t.Setenv("APT_CONFIG", conf)
	ctx := context.Background()
	s1 := aptStamp(ctx)
	if s2 := aptStamp(ctx); s2 != s1 {
		t.Errorf("got stamps %q then %q with nothing changed, want equal", s1, s2)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(dir, later, later) // as `apt-get update` renaming new lists in
	if s3 := aptStamp(ctx); s3 == s1 {
		t.Errorf("got stamp %q after the lists changed, want a new one", s3)
	}
}

func TestAptMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ctx := context.Background()
	// A name no other test resolves, so that no remembered result answers.
	_, err := Apt{}.Resolve(ctx, "apt-missing-test")
	if !errors.Is(err, ErrNoApt) || !strings.Contains(err.Error(), "Debian host") {
		t.Errorf("Resolve: got %v, want ErrNoApt saying a Debian host is needed", err)
	}
	_, err = Apt{}.Download(ctx, Package{Name: "hello", Version: "1.0"}, t.TempDir())
	if !errors.Is(err, ErrNoApt) {
		t.Errorf("Download: got %v, want ErrNoApt", err)
	}
}
