package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/qemu"
)

// doctor checks the host and says what to install; it changes nothing but
// the cache (a kernel download on first use). What every machine needs
// fails the check when missing; tools that only disks and Debian machines
// need are listed with "!".
func doctor(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bad := 0
	check := func(what string, err error, ok string) {
		if err != nil {
			bad++
			fmt.Printf("✗ %-10s %v\n", what, err)
			return
		}
		fmt.Printf("✓ %-10s %s\n", what, ok)
	}

	qemuPath, err := exec.LookPath(qemu.DefaultBinary)
	if err != nil {
		err = qemu.ErrNoQEMU
	}
	version := ""
	if err == nil {
		out, verr := exec.Command(qemuPath, "--version").Output()
		version = strings.SplitN(string(out), "\n", 2)[0]
		err = verr
	}
	check("qemu", err, version)

	_, why, err := qemu.ChooseAccel(false, "")
	check("accel", err, why)

	c, err := cache.Open("")
	dir := ""
	if err == nil {
		dir = c.Root
	}
	check("cache", err, dir)

	if c != nil {
		k, err := kernel.Debian(ctx, c, deb.Apt{})
		ok := ""
		if err == nil {
			ok = fmt.Sprintf("%s (%s)", k.Version, k.Package)
		}
		check("kernel", err, ok)
		_, _, err = deb.Fetch(ctx, c, deb.Apt{}, "busybox-static")
		check("busybox", err, "busybox-static")
	}

	goPath, err := exec.LookPath("go")
	if err != nil {
		err = fmt.Errorf("the go command is not on PATH: it builds the guest agent (or set SHAKEDOWN_AGENT to a static shakedown-agent)")
	}
	check("go", err, goPath)

	// Tools that only some machines need: missing ones are named with
	// their package and what needs them, without failing the check.
	for _, t := range shakedown.HostTools() {
		if path, err := t.Find(); err != nil {
			fmt.Printf("! %-10s %v; needed for %s\n", t.Name, err, t.Need)
		} else {
			fmt.Printf("✓ %-10s %s\n", t.Name, path)
		}
	}

	if bad > 0 {
		return fmt.Errorf("%d problem(s); scripts/setup-debian.sh installs what is missing", bad)
	}
	return nil
}
