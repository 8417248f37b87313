package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// unreachableBudget is how long a download from an unreachable mirror may
// take in these tests: apt fails at once on a refused connection or an
// unknown name, and the stalled mirror is cut off after stallTimeout.
const unreachableBudget = 30 * time.Second

// stallTimeout is the Apt.Timeout for the mirror that never answers: long
// enough for apt-get to start and connect, short enough for a unit test.
const stallTimeout = 2 * time.Second

// fakeDebName is the one package the fake mirror's list offers.
const fakeDebName = "shakedown-fake"

// needAptGet skips the test where apt-get is missing, but fails it in CI,
// whose runners are Debian hosts: a skip there would hide a broken setup.
func needAptGet(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "apt-config"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testenv.InCI() {
				t.Fatalf("%s not found and CI=true: the runner must be a Debian host", tool)
			}
			t.Skipf("%s not found: this test needs a Debian host", tool)
		}
	}
}

// useFakeMirror points apt (through APT_CONFIG, for the rest of the test)
// at a configuration in a temp dir whose only source is mirror, e.g.
// "http://127.0.0.1:1/debian", and whose lists offer one package,
// fakeDebName=1.0, as if `apt-get update` had run. Nothing of the host's
// sources, lists, pinning, dpkg status or proxy settings takes part.
func useFakeMirror(t *testing.T, mirror string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"lists/partial", "sources.list.d", "preferences.d", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte("never served"))
	files := map[string]string{
		"sources.list": "deb [trusted=yes] " + mirror + " bookworm main\n",
		"status":       "",
		// apt names a list after its URL without the scheme, '/' as '_'.
		"lists/" + strings.ReplaceAll(strings.TrimPrefix(mirror, "http://"), "/", "_") + "_dists_bookworm_main_binary-amd64_Packages": "Package: " + fakeDebName + `
Version: 1.0
Architecture: all
Maintainer: nobody <nobody@example.invalid>
Filename: pool/main/s/` + fakeDebName + "/" + fakeDebName + `_1.0_all.deb
Size: 12
SHA256: ` + hex.EncodeToString(sum[:]) + `
Description: a package no mirror has
`,
		// No retries: apt 2.x waits 1+2+4 s between its default three,
		// which would only slow the test down. Proxy DIRECT keeps a proxy
		// in the environment from answering for the mirror.
		"apt.conf": `Dir::Etc::sourcelist "` + dir + `/sources.list";
Dir::Etc::sourceparts "` + dir + `/sources.list.d";
Dir::Etc::preferences "` + dir + `/preferences";
Dir::Etc::preferencesparts "` + dir + `/preferences.d";
Dir::State::Lists "` + dir + `/lists/";
Dir::State::status "` + dir + `/status";
Dir::Cache "` + dir + `/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Retries "0";
Acquire::http::Proxy "DIRECT";
Acquire::https::Proxy "DIRECT";
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("APT_CONFIG", filepath.Join(dir, "apt.conf"))
}

// stalledMirror returns the URL of a mirror that accepts connections and
// never answers; it closes when the test ends.
func stalledMirror(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/debian"
}

func TestAptMirrorUnreachable(t *testing.T) {
	needAptGet(t)
	tests := []struct {
		name    string
		mirror  func(t *testing.T) string
		timeout time.Duration
		want    []string
	}{
		{
			name:   "connection refused",
			mirror: func(*testing.T) string { return "http://127.0.0.1:1/debian" },
			want:   []string{"Connection refused"},
		},
		{
			// .invalid never resolves (RFC 2606); apt says "Could not
			// resolve" or, with no DNS server at all, "Temporary failure
			// resolving": both name the host.
			name:   "name does not resolve",
			mirror: func(*testing.T) string { return "http://mirror.invalid/debian" },
			want:   []string{"resolv", "'mirror.invalid'"},
		},
		{
			name:    "no answer",
			mirror:  stalledMirror,
			timeout: stallTimeout,
			want:    []string{"no complete .deb within 2s (deb.Apt.Timeout)", "raise Apt.Timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mirror := tt.mirror(t)
			useFakeMirror(t, mirror)
			c := newCache(t)
			start := time.Now()
			p, _, err := Fetch(context.Background(), c, Apt{Timeout: tt.timeout}, fakeDebName)
			elapsed := time.Since(start)
			if p.Name != fakeDebName {
				t.Fatalf("got package %+v, %v, want %s resolved from the fake lists", p, err, fakeDebName)
			}
			if !errors.Is(err, ErrMirrorUnreachable) {
				t.Fatalf("got %v, want ErrMirrorUnreachable", err)
			}
			t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)
			want := append([]string{"mirror unreachable: " + mirror, "check the network", "proxy", "apt's sources", "works offline"}, tt.want...)
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if elapsed > unreachableBudget {
				t.Errorf("got the error after %v, want it within %v", elapsed, unreachableBudget)
			}
			if dir, ok := c.Lookup(CacheKind, p.SHA256); ok {
				t.Errorf("got cache entry %s after a failed download, want none", dir)
			}
			if tmp, _ := filepath.Glob(filepath.Join(c.Root, CacheKind, ".*.tmp-*")); len(tmp) > 0 {
				t.Errorf("got temp entries %v after a failed download, want none", tmp)
			}
		})
	}
}

func TestAptMirrorContextDeadline(t *testing.T) {
	needAptGet(t)
	mirror := stalledMirror(t)
	useFakeMirror(t, mirror)
	ctx, cancel := context.WithTimeout(context.Background(), stallTimeout)
	defer cancel()
	c := newCache(t)
	start := time.Now()
	_, _, err := Fetch(ctx, c, Apt{}, fakeDebName)
	if elapsed := time.Since(start); elapsed > unreachableBudget {
		t.Errorf("got the error after %v, want it soon after the context's deadline (%v)", elapsed, stallTimeout)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	// The download gets what the look-up left of the 2 s: 1 s on a
	// loaded machine.
	if w := regexp.MustCompile("no complete .deb from mirror " + regexp.QuoteMeta(mirror) + " in the [12]s before the context's deadline"); !w.MatchString(err.Error()) {
		t.Errorf("got %q, want it to match %q", err, w)
	}
}

func TestFailedFetch(t *testing.T) {
	const url = "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
	tests := []struct {
		name        string
		stderr      string
		reason      string // "" when stderr has no failed fetch
		unreachable bool
	}{
		{"refused", "E: Failed to fetch " + url + "  Could not connect to deb.debian.org:80 (151.101.2.132). - connect (111: Connection refused)\n",
			"Could not connect to deb.debian.org:80 (151.101.2.132). - connect (111: Connection refused)", true},
		{"connect timeout", "E: Failed to fetch " + url + "  Could not connect to deb.debian.org:80 (151.101.2.132), connection timed out",
			"Could not connect to deb.debian.org:80 (151.101.2.132), connection timed out", true},
		{"no such name", "W: something first\nE: Failed to fetch " + url + "  Could not resolve 'deb.debian.org'\n",
			"Could not resolve 'deb.debian.org'", true},
		{"no DNS", "E: Failed to fetch " + url + "  Temporary failure resolving 'deb.debian.org'",
			"Temporary failure resolving 'deb.debian.org'", true},
		{"no answer", "E: Failed to fetch " + url + "  Connection failed [IP: 151.101.2.132 80]",
			"Connection failed [IP: 151.101.2.132 80]", true},
		{"not found", "E: Failed to fetch " + url + "  404  Not Found [IP: 151.101.2.132 80]",
			"404  Not Found [IP: 151.101.2.132 80]", false},
		{"hash", "E: Failed to fetch " + url + "  Hash Sum mismatch",
			"Hash Sum mismatch", false},
		{"no fetch", "E: Can't select candidate version from package hello as it has no candidate\n", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotURL, reason, ok := failedFetch(tt.stderr)
			if ok != (tt.reason != "") || reason != tt.reason {
				t.Fatalf("got reason %q, %v, want %q", reason, ok, tt.reason)
			}
			if !ok {
				return
			}
			if gotURL != url {
				t.Errorf("got URL %q, want %q", gotURL, url)
			}
			if got := unreachable(reason); got != tt.unreachable {
				t.Errorf("unreachable(%q): got %v, want %v", reason, got, tt.unreachable)
			}
		})
	}
}

func TestMirrorBase(t *testing.T) {
	tests := []struct {
		url      string
		filename string
		want     string
	}{
		{"http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "pool/main/h/hello/hello_2.10-3_amd64.deb", "http://deb.debian.org/debian"},
		{"http://127.0.0.1:1/debian/pool/main/s/x/x_1_all.deb", "", "http://127.0.0.1:1/debian"},
		{"https://mirror.example/x/pool/main/a/a/a_1%3a2_all.deb", "pool/main/a/a/a_1:2_all.deb", "https://mirror.example/x"},
		{"http://mirror.example/odd/path.deb", "", "http://mirror.example/odd/path.deb"},
	}
	for _, tt := range tests {
		if got := mirrorBase(tt.url, Package{Filename: tt.filename}); got != tt.want {
			t.Errorf("mirrorBase(%q, %q): got %q, want %q", tt.url, tt.filename, got, tt.want)
		}
	}
}
