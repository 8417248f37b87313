package initramfs

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"time"
)

// busyboxListTimeout bounds `busybox --list-full`, which prints a fixed
// table and returns in milliseconds; the limit only turns a binary that is
// not busybox at all (and waits for input) into an error instead of a hang.
const busyboxListTimeout = 10 * time.Second

// busyboxApplets runs the host's copy of the guest busybox to learn the
// applets it was built with, as paths relative to / ("bin/sh",
// "usr/bin/wget"). It can run on the host because it is static.
func busyboxApplets(path string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), busyboxListTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer in %v", busyboxListTimeout)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, fmt.Errorf("busybox %s --list-full: %w", path, err)
	}
	var applets []string
	for _, line := range strings.Fields(string(out)) {
		line = strings.TrimPrefix(line, "/")
		if !fs.ValidPath(line) || line == "." {
			return nil, fmt.Errorf("busybox %s --list-full: applet path %q is not a clean relative path", path, line)
		}
		applets = append(applets, line)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("busybox %s --list-full: listed no applets", path)
	}
	return applets, nil
}

// errDynamic is wrapped when a binary that must run before any library is
// in place (the agent as /init, busybox) asks for a dynamic loader.
var errDynamic = errors.New("dynamically linked")

// checkStatic fails for an ELF binary that has a program interpreter: in
// the initramfs there is no ld.so, and the kernel's only report would be
// "Failed to execute /init (error -2)". Files that are not ELF (a shell
// script as /init, say) pass: their interpreter is the user's business.
func checkStatic(path, what, hint string) error {
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil // too short or wrong magic: not ELF
		}
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s %s: %w; the initramfs has no dynamic loader, use a static build%s", what, path, errDynamic, hint)
		}
	}
	return nil
}
