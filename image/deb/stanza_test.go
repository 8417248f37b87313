package deb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseStanza(t *testing.T) {
	tests := []struct {
		file string
		want Package
	}{
		{"busybox-static.stanza", Package{
			Name:         "busybox-static",
			Version:      "1:1.35.0-4+deb12u1+b1",
			Architecture: "amd64",
			Filename:     "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb",
			SHA256:       "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744",
			Size:         928188,
		}},
		{"linux-image-amd64.stanza", Package{
			Name:         "linux-image-amd64",
			Version:      "6.1.192-2",
			Architecture: "amd64",
			Filename:     "pool/updates/main/l/linux-signed-amd64/linux-image-amd64_6.1.192-2_amd64.deb",
			SHA256:       "45457bcfc86c87585800b5656bdf2773b063a3bb95486b0e820d51e870491f8d",
			Size:         1480,
			Depends:      "linux-image-6.1.0-56-amd64 (= 6.1.192-2)",
		}},
		{"status-only.stanza", Package{
			Name:         "local-tool",
			Version:      "1.0-1",
			Architecture: "amd64",
			Depends:      "libc6 (>= 2.34), libfoo1 (>= 1.2)",
		}},
		{"two.stanza", Package{
			Name:         "first",
			Version:      "1.0",
			Architecture: "all",
			Filename:     "pool/main/f/first/first_1.0_all.deb",
			SHA256:       strings.Repeat("a", 64),
			Size:         1234,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := parseStanza(f)
			if err != nil {
				t.Fatalf("parseStanza: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseStanzaErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"bad-sha.stanza", "bad SHA256"},
		{"bad-size.stanza", "bad Size"},
		{"no-version.stanza", "missing Package or Version"},
		{"garbage.stanza", "want \"Field: value\""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = parseStanza(f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := parseStanza(strings.NewReader("\n\n")); err == nil {
		t.Errorf("empty input: got nil error, want one")
	}
}

func TestParseReverseProvides(t *testing.T) {
	b, err := os.ReadFile("testdata/mail-transport-agent.showpkg")
	if err != nil {
		t.Fatal(err)
	}
	got := parseReverseProvides(string(b))
	if len(got) < 3 || !containsAll(got, "postfix", "exim4-daemon-light", "nullmailer") {
		t.Errorf("got %v, want postfix, exim4-daemon-light, nullmailer among them", got)
	}
	for _, name := range got {
		if strings.ContainsAny(name, " :") {
			t.Errorf("got name %q, want bare package names", name)
		}
	}
	if got := parseReverseProvides("Package: x\n"); got != nil {
		t.Errorf("no section: got %v, want nil", got)
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}

func TestClosest(t *testing.T) {
	names := []string{"busybox", "busybox-static", "busybox-syslogd", "bash", "udhcpc", "systemd", "systemd-sysv", "linux-image-amd64"}
	tests := []struct {
		want string
		n    int
		got  []string
	}{
		{"busybx", 5, []string{"busybox"}},
		{"busybox-statik", 5, []string{"busybox-static"}},
		{"systemd-", 5, []string{"systemd", "systemd-sysv"}},
		{"linux-image", 5, []string{"linux-image-amd64"}},
		{"busybox", 1, []string{"busybox-static"}},
		{"zzzzzzzz", 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := closest(tt.want, names, tt.n)
			if strings.Join(got, ",") != strings.Join(tt.got, ",") {
				t.Errorf("closest(%q): got %v, want %v", tt.want, got, tt.got)
			}
		})
	}
}

func TestValidNameVersion(t *testing.T) {
	names := []struct {
		s    string
		want bool
	}{
		{"busybox-static", true},
		{"libstdc++6", true},
		{"libc6:amd64", true},
		{"a", false},
		{"-oDebug::pkgProblemResolver=1", false},
		{"Busybox", false},
		{"foo bar", false},
		{"foo:", false},
	}
	for _, tt := range names {
		if got := validName(tt.s); got != tt.want {
			t.Errorf("validName(%q): got %v, want %v", tt.s, got, tt.want)
		}
	}
	versions := []struct {
		s    string
		want bool
	}{
		{"1:1.35.0-4+deb12u1+b1", true},
		{"6.1.192-2", true},
		{"2.0~rc1", true},
		{"", false},
		{"-1", false},
		{"1.0 2", false},
	}
	for _, tt := range versions {
		if got := validVersion(tt.s); got != tt.want {
			t.Errorf("validVersion(%q): got %v, want %v", tt.s, got, tt.want)
		}
	}
}
