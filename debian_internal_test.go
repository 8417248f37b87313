package shakedown

import (
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"os"
	"strings"
	"testing"
)

func TestCheckDebian(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MachineConfig
		want string // "" means accepted
	}{
		{"plain", MachineConfig{Debian: &DebianSystem{}}, ""},
		{"units", MachineConfig{Debian: &DebianSystem{Units: map[string]string{"web.service": "", "x.timer": ""}}}, ""},
		{"not debian", MachineConfig{Packages: []string{"curl"}}, ""},
		{"kernel", MachineConfig{Kernel: "/k", Debian: &DebianSystem{}}, "leave Kernel and Initrd empty"},
		{"packages", MachineConfig{Packages: []string{"curl"}, Debian: &DebianSystem{}}, "go in Debian.Packages"},
		{"services", MachineConfig{Services: []Service{{Name: "a", Command: "true"}}, Debian: &DebianSystem{}}, "declare them in Debian.Units"},
		{"unit name", MachineConfig{Debian: &DebianSystem{Units: map[string]string{"../web": ""}}}, `unit "../web"`},
		{"size", MachineConfig{Debian: &DebianSystem{SizeMiB: -1}}, "negative root size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDebian(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestSystemdUnit(t *testing.T) {
	for in, want := range map[string]string{
		"web": "web.service", "web.service": "web.service", "multi-user.target": "multi-user.target",
		"ssh.socket": "ssh.socket", "dev-vda.device": "dev-vda.device", "a.b": "a.b.service",
	} {
		if got := systemdUnit(in); got != want {
			t.Errorf("systemdUnit(%q): got %q, want %q", in, got, want)
		}
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

func TestRootfsMirror(t *testing.T) {
	if _, err := findTool("mmdebstrap"); err != nil {
		t.Skip(err)
	}
	r, err := rootfsSpec(&DebianSystem{Suite: "trixie", Mirror: "http://mirror.example/debian"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.sources) != 1 || r.sources[0] != "http://mirror.example/debian" || r.text != nil {
		t.Errorf("got sources %q, want the mirror alone", r.sources)
	}
	if r, err = rootfsSpec(&DebianSystem{Suite: "trixie"}); err != nil || r.sources[0] != "http://deb.debian.org/debian" {
		t.Errorf("another suite without a mirror: got %q, %v; want deb.debian.org", r.sources, err)
	}
}

func TestPasswordlessRoot(t *testing.T) {
	p := t.TempDir() + "/shadow"
	writeFile(p, []byte("root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"), 0o640)
	if err := passwordlessRoot(p); err != nil {
		t.Fatal(err)
	}
	b, _ := readFileString(p)
	if want := "root::19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"; b != want {
		t.Errorf("got %q, want %q", b, want)
	}
}

func readFileString(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
