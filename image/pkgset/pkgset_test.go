package pkgset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown/image/deb"
)

// fakeSource resolves from a table and downloads nothing.
type fakeSource map[string]deb.Package

func (f fakeSource) Resolve(_ context.Context, name string) (deb.Package, error) {
	n, _, _ := strings.Cut(name, "=")
	if p, ok := f[n]; ok {
		return p, nil
	}
	return deb.Package{}, fmt.Errorf("resolve %s: %w", name, deb.ErrUnknownPackage)
}

func (f fakeSource) Download(context.Context, deb.Package, string) (string, error) {
	return "", errors.New("no downloads in tests")
}

func pkg(name, depends string) deb.Package {
	return deb.Package{Name: name, Version: "1.0", Architecture: "amd64", SHA256: strings.Repeat("a", 64), Depends: depends}
}

func TestResolve(t *testing.T) {
	src := fakeSource{
		"curl":      pkg("curl", "libc6 (>= 2.34), libcurl4 (= 7.88), mta | postfix"),
		"libcurl4":  pkg("libcurl4", "libc6, zlib1g:any"),
		"libc6":     pkg("libc6", "libgcc-s1"),
		"libgcc-s1": pkg("libgcc-s1", "libc6"), // a cycle
		"zlib1g":    pkg("zlib1g", ""),
		"postfix":   pkg("postfix", "perl-base"),
		"perl-base": func() deb.Package { p := pkg("perl-base", ""); p.Essential = true; return p }(),
	}
	members, err := Resolve(context.Background(), src, []string{"curl"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range members {
		got = append(got, fmt.Sprintf("%s:%s:%v", m.Name, m.Scope, m.Requested))
	}
	want := []string{
		"curl:all:true", "libc6:all:false", "libcurl4:all:false", "libgcc-s1:all:false",
		"perl-base:libraries:false", "postfix:all:false", "zlib1g:all:false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if i := slices.IndexFunc(members, func(m Member) bool { return m.Name == "zlib1g" }); !slices.Equal(members[i].Via, []string{"curl", "libcurl4"}) {
		t.Errorf("zlib1g via: got %q, want curl, libcurl4", members[i].Via)
	}

	_, err = Resolve(context.Background(), src, []string{"curl", "nosuch"})
	if !errors.Is(err, deb.ErrUnknownPackage) || !strings.Contains(err.Error(), "package nosuch") {
		t.Errorf("unknown package: got %v, want ErrUnknownPackage naming it", err)
	}
	delete(src, "zlib1g")
	_, err = Resolve(context.Background(), src, []string{"curl"})
	if !errors.Is(err, deb.ErrUnknownPackage) || !strings.Contains(err.Error(), "zlib1g (dependency of curl → libcurl4)") {
		t.Errorf("unknown dependency: got %v, want it named with its chain", err)
	}
}

func TestResolvePinned(t *testing.T) {
	src := fakeSource{"a": pkg("a", "b | c"), "b": pkg("b", ""), "c": pkg("c", "")}
	old := pkg("a", "c") // the lock says: version 0.9, which depended on c
	old.Version = "0.9"
	pinned := deb.NewPinned(src, []deb.Package{old, pkg("c", "")})
	members, err := Resolve(context.Background(), pinned, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[0].Version != "0.9" || members[1].Name != "c" {
		t.Errorf("got %+v, want a 0.9 and c from the lock", members)
	}
	used := pinned.Used()
	if len(used) != 2 || used[0].Name != "a" || used[1].Name != "c" {
		t.Errorf("Used: got %+v, want a and c", used)
	}
}

func TestLockRoundTrip(t *testing.T) {
	p := pkg("curl", "libc6 (>= 2.34)")
	p.PreDepends = "dpkg"
	p.Filename = "pool/main/c/curl/curl_1.0_amd64.deb"
	p.Size = 1234
	e := pkg("bash", "")
	e.Essential = true
	l := NewLock([]string{"curl", "bash", "curl"}, []deb.Package{p, e})
	data := l.Marshal()
	if !strings.Contains(string(data), `"libc6 (>= 2.34)"`) {
		t.Errorf("lock escapes its text:\n%s", data)
	}
	back, err := ParseLock(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Request, []string{"bash", "curl"}) {
		t.Errorf("Request: got %q, want bash, curl", back.Request)
	}
	if pins := back.Pins(); !slices.Equal(pins, []deb.Package{e, p}) {
		t.Errorf("Pins: got %+v\nwant %+v", pins, []deb.Package{e, p})
	}
	if again := back.Marshal(); string(again) != string(data) {
		t.Errorf("second Marshal differs:\n%s\nwant\n%s", again, data)
	}
	if _, ok := back.Find("curl"); !ok {
		t.Error("Find(curl): not found")
	}
	for name, bad := range map[string]string{
		"version":  `{"version": 2, "packages": []}`,
		"unsorted": `{"version": 1, "packages": [{"name":"b","version":"1","sha256":"` + strings.Repeat("a", 64) + `"},{"name":"a","version":"1","sha256":"` + strings.Repeat("a", 64) + `"}]}`,
		"no hash":  `{"version": 1, "packages": [{"name":"b","version":"1"}]}`,
		"unknown":  `{"version": 1, "packages": [], "extra": 1}`,
	} {
		if _, err := ParseLock([]byte(bad)); err == nil {
			t.Errorf("%s: ParseLock accepted %s", name, bad)
		}
	}
}

func TestWriteReadLock(t *testing.T) {
	l := NewLock([]string{"curl"}, []deb.Package{pkg("curl", "")})
	dir := filepath.Join(t.TempDir(), "testdata")
	path := filepath.Join(dir, "web.lock")
	if _, err := ReadLock(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLock of a missing file: got %v, want fs.ErrNotExist", err)
	}
	// The directory does not exist yet: WriteLock makes it.
	if err := WriteLock(path, l); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Marshal()) != string(l.Marshal()) {
		t.Errorf("read back:\n%s\nwant\n%s", back.Marshal(), l.Marshal())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("got %d entries in %s, want the lock alone (no temporary file left)", len(ents), dir)
	}
	os.WriteFile(path, []byte("{"), 0o644)
	if _, err := ReadLock(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadLock of a corrupt file: got %v, want an error naming it", err)
	}
}

// TestAssemble runs the file selection and the closure on fake unpacked
// packages holding the host's /bin/true, libc and loader.
func TestAssemble(t *testing.T) {
	lib := func(name string) string {
		p := filepath.Join("/lib/x86_64-linux-gnu", name)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("host has no Debian multiarch %s", name)
		}
		return p
	}
	tree := func(files map[string]string) string {
		dir := t.TempDir()
		for guest, src := range files {
			p := filepath.Join(dir, guest)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if strings.HasPrefix(src, "->") {
				if err := os.Symlink(strings.TrimPrefix(src, "->"), p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			data, err := os.ReadFile(src)
			if err != nil {
				t.Skipf("fixture: %v", err)
			}
			if err := os.WriteFile(p, data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	libc := map[string]string{
		"lib/x86_64-linux-gnu/libc.so.6":            lib("libc.so.6"),
		"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": lib("ld-linux-x86-64.so.2"),
		"lib64/ld-linux-x86-64.so.2":                "->/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	}
	tool := map[string]string{"usr/bin/true": "/usr/bin/true", "usr/share/tool/data": "/etc/hostname"}
	members := func(libcScope Scope) []Member {
		return []Member{
			{Package: pkg("libc6", ""), Scope: libcScope, Tree: tree(libc)},
			{Package: pkg("tool", ""), Requested: true, Tree: tree(tool)},
		}
	}
	s, err := assemble(members(Libraries))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range s.Entries {
		if !e.Dir {
			got = append(got, e.Guest)
		}
	}
	want := []string{
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6",
		"/lib64/ld-linux-x86-64.so.2", "/usr/bin/true", "/usr/share/tool/data",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries: got %q\nwant %q", got, want)
	}
	if s.Programs != 1 {
		t.Errorf("Programs: got %d, want 1", s.Programs)
	}

	delete(libc, "lib/x86_64-linux-gnu/libc.so.6")
	_, err = assemble(members(All))
	if err == nil || !strings.Contains(err.Error(), "package tool: /usr/bin/true needs libc.so.6") {
		t.Errorf("missing libc: got %v, want it to name package tool, /usr/bin/true and libc.so.6", err)
	}
}

// virtualSource is fakeSource with virtual packages: names only others
// provide.
type virtualSource struct {
	fakeSource
	provided map[string][]string
}

func (v virtualSource) Resolve(ctx context.Context, name string) (deb.Package, error) {
	if p := v.provided[name]; p != nil {
		return deb.Package{}, &deb.VirtualError{Name: name, Providers: p}
	}
	return v.fakeSource.Resolve(ctx, name)
}

// TestResolveVirtual: a dependency on a virtual package is met by a
// provider the set has, else by its only provider; with several and none
// in the set it stays an error that names them.
func TestResolveVirtual(t *testing.T) {
	src := virtualSource{
		fakeSource: fakeSource{
			"certbot":         pkg("certbot", "python3-certbot"),
			"python3-certbot": pkg("python3-certbot", "python3-acme-abi-2"),
			"python3-acme":    pkg("python3-acme", ""),
			"mailer":          pkg("mailer", "mta"),
			"exim4":           pkg("exim4", ""),
			"postfix":         pkg("postfix", ""),
		},
		provided: map[string][]string{"python3-acme-abi-2": {"python3-acme"}, "mta": {"exim4", "postfix"}},
	}
	names := func(ms []Member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	for _, tt := range []struct {
		ask     []string
		want    []string
		wantErr string
	}{
		{[]string{"certbot"}, []string{"certbot", "python3-acme", "python3-certbot"}, ""},
		{[]string{"mailer", "postfix"}, []string{"mailer", "postfix"}, ""},
		{[]string{"mailer"}, nil, "it is a virtual package; name one that provides it: exim4, postfix"},
	} {
		got, err := Resolve(context.Background(), src, tt.ask)
		if tt.wantErr != "" {
			if !errors.Is(err, deb.ErrUnknownPackage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Resolve(%v): got %v, want an error with %q", tt.ask, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(names(got), tt.want) {
			t.Errorf("Resolve(%v): got %v %v, want %v", tt.ask, names(got), err, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	ms := []Member{
		{Package: deb.Package{Name: "curl", Version: "7.88.1-10"}, Requested: true},
		{Package: deb.Package{Name: "libc6", Version: "2.36-9"}},
		{Package: deb.Package{Name: "jq", Version: "1.6-2.1"}, Requested: true},
		{Package: deb.Package{Name: "libjq1", Version: "1.6-2.1"}},
	}
	if got, want := Summary(ms), "curl=7.88.1-10, jq=1.6-2.1 (+2 dependencies)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}
