// Package disk owns the making of disk image files on the host (ext4 file
// systems from directories, qcow2 overlays, sparse blank files) with
// e2fsprogs and qemu-img; it imports only the standard library and
// internal/hosttools.
package disk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/shakedown-dev/shakedown/internal/hosttools"
)

// ErrTooSmall is wrapped by the error for a file system whose size cannot
// hold its contents.
var ErrTooSmall = errors.New("disk too small for its contents")

const mib = 1 << 20

// Once makes path with build (writing to a temporary name, renamed when
// complete) unless it exists: a build that failed half-way leaves no
// half-built disk behind.
func Once(path string, build func(tmp string) error) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := build(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Sparse creates path as a file of size bytes that takes no space on the
// host until written.
func Sparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Format tells a disk image's format by its header: "qcow2" or "raw".
func Format(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if n, _ := f.Read(magic); n == 4 && bytes.Equal(magic, []byte("QFI\xfb")) {
		return "qcow2", nil
	}
	return "raw", nil
}

// Overlay creates path as a qcow2 file whose reads fall through to image
// (raw or qcow2, by its header) and whose writes stay in it. The overlay
// names image by its absolute path.
func Overlay(image, path string) error {
	abs, err := filepath.Abs(image)
	if err != nil {
		return err
	}
	format, err := Format(abs)
	if err != nil {
		return err
	}
	bin, err := hosttools.Find("qemu-img")
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "create", "-q", "-f", "qcow2", "-b", abs, "-F", format, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// tailLines is the last n lines of a tool's output, for its error.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
