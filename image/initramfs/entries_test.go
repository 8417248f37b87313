package initramfs

import (
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown/image/fstree"
)

// TestEntries checks that package-style Entries keep their modes and
// symlinks, replace busybox applets, and give way to Files.
func TestEntries(t *testing.T) {
	host := t.TempDir()
	got := byName(readArchive(t, build(t, Spec{
		Busybox: fakeBusybox(t, "bin/sh", "usr/bin/wget", "bin/ls"),
		Entries: []fstree.Entry{
			{Guest: "/usr/bin/wget", Host: writeFile(t, host, "wget", "real wget", 0o644), Mode: 0o755, Origin: "package wget"},
			{Guest: "/usr/bin/su", Host: writeFile(t, host, "su", "su", 0o644), Mode: 0o4755},
			{Guest: "/bin/ls", Symlink: "/usr/bin/wget"},
			{Guest: "/var/lib/empty", Dir: true, Mode: 0o700},
			{Guest: "/etc/conf", Host: writeFile(t, host, "conf", "package", 0o644)},
		},
		Files: []File{{Guest: "/etc/conf", Data: []byte("user")}},
	})))
	for _, c := range []struct {
		name string
		mode uint32
		data string
	}{
		{"usr/bin/wget", 0o100755, "real wget"},
		{"usr/bin/su", 0o104755, "su"},
		{"bin/ls", 0o120777, "/usr/bin/wget"},
		{"bin/sh", 0o120777, "/bin/busybox"},
		{"var/lib/empty", 0o40700, ""},
		{"etc/conf", 0o100644, "user"},
	} {
		if e := got[c.name]; e.mode != c.mode || e.data != c.data {
			t.Errorf("%s: got mode %o %q, want mode %o %q", c.name, e.mode, e.data, c.mode, c.data)
		}
	}
}

func TestEntriesErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []fstree.Entry
		want    string
	}{
		{"duplicate", []fstree.Entry{{Guest: "/a", Symlink: "x", Origin: "package p"}, {Guest: "/a", Dir: true, Origin: "package q"}}, "wanted by both package p and package q"},
		{"two kinds", []fstree.Entry{{Guest: "/a", Symlink: "x", Dir: true}}, "exactly one of"},
		{"missing host", []fstree.Entry{{Guest: "/a", Host: "/nonexistent/x", Origin: "package p"}}, "/nonexistent/x"},
		{"relative", []fstree.Entry{{Guest: "a", Dir: true}}, "not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Key(Spec{Entries: tc.entries})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
