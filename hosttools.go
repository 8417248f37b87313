package shakedown

import (
	"fmt"
	"os"
	"path/filepath"
)

// HostTool is a program on the host that some machines or disks need,
// beyond QEMU itself.
type HostTool struct {
	// Name is the program; Package is the Debian package that provides it.
	Name, Package string
	// Need says what needs it.
	Need string
}

// hostTools is every program beyond QEMU that shakedown runs on the host;
// findTool finds only these, so that doctor and setup-debian.sh (checked by
// TestHostTools) cannot miss one.
var hostTools = []HostTool{
	{"qemu-img", "qemu-utils", "disks from existing images, Debian machines"},
	{"mke2fs", "e2fsprogs", "disks from host directories, Debian machines"},
	{"dumpe2fs", "e2fsprogs", "reproducible disks, Debian machines"},
	{"debugfs", "e2fsprogs", "reproducible disks, Debian machines"},
	{"mmdebstrap", "mmdebstrap", "Debian machines"},
	{"depmod", "kmod", "Debian machines"},
	{"tar", "tar", "Debian machines"},
}

// HostTools returns the programs beyond QEMU that some machines or disks
// need: initramfs machines without disks need none of them. `shakedown
// doctor` checks each, and scripts/setup-debian.sh installs them.
func HostTools() []HostTool { return append([]HostTool(nil), hostTools...) }

// Find returns the path of the program, searching PATH and then /usr/sbin
// and /sbin (Debian keeps e2fsprogs' and kmod's tools there, and a user's
// PATH may lack them), or an error that names the package to install.
func (t HostTool) Find() (string, error) {
	if p, err := execLookPath(t.Name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, t.Name); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install Debian's %s (apt-get install %s)", t.Name, t.Package, t.Package)
}

// findTool finds the host tool name, which hostTools must list.
func findTool(name string) (string, error) {
	for _, t := range hostTools {
		if t.Name == name {
			return t.Find()
		}
	}
	panic("shakedown: host tool " + name + " is not in hostTools")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
