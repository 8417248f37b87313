// Package hosttools owns the list of programs beyond QEMU that shakedown
// runs on the host, and finds them; it imports only the standard library.
package hosttools

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Tool is a program on the host that some machines or disks need, beyond
// QEMU itself.
type Tool struct {
	// Name is the program; Package is the Debian package that provides it.
	Name, Package string
	// Need says what needs it.
	Need string
}

// tools is every program beyond QEMU that shakedown runs on the host;
// Find finds only these, so that doctor and setup-debian.sh (checked by
// the root package's TestHostTools) cannot miss one.
var tools = []Tool{
	{"qemu-img", "qemu-utils", "disks from existing images, Debian machines"},
	{"mke2fs", "e2fsprogs", "disks from host directories, Debian machines"},
	{"dumpe2fs", "e2fsprogs", "reproducible disks, Debian machines"},
	{"debugfs", "e2fsprogs", "reproducible disks, Debian machines"},
	{"mmdebstrap", "mmdebstrap", "Debian machines"},
	{"depmod", "kmod", "Debian machines"},
	{"tar", "tar", "Debian machines"},
	{"python3", "python3", "Python test scripts (python_test)"},
	{"tesseract", "tesseract-ocr", "reading screens (get_screen_text, wait_for_text)"},
}

// All returns every tool, in a fresh slice.
func All() []Tool { return append([]Tool(nil), tools...) }

// Find returns the path of the program, searching PATH and then /usr/sbin
// and /sbin (Debian keeps e2fsprogs' and kmod's tools there, and a user's
// PATH may lack them), or an error that names the package to install.
func (t Tool) Find() (string, error) {
	if p, err := exec.LookPath(t.Name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, t.Name); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install Debian's %s (apt-get install %s)", t.Name, t.Package, t.Package)
}

// Find finds the tool called name, which the list must hold: a tool used
// but not listed is a bug, and panics.
func Find(name string) (string, error) {
	for _, t := range tools {
		if t.Name == name {
			return t.Find()
		}
	}
	panic("shakedown: host tool " + name + " is not in hosttools' list")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
