package debian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/hosttools"
)

// basePackages make the minbase variant a bootable systemd machine that
// the agent can configure.
var basePackages = []string{"systemd-sysv", "udev", "iproute2", "kmod"}

// rootfs is what mmdebstrap is asked for; its hash is the tarball's key.
type rootfs struct {
	suite    string
	packages []string
	sources  []string // host sources files, or a mirror URL
	text     []byte   // the sources files' contents
	version  string   // mmdebstrap --version
	bin      string
	// lock, when set, is what is installed, from a repository of its
	// own; the sources are not used then.
	lock *pkgset.Lock
}

// host caches the host's suite and mmdebstrap's path and version.
var host struct {
	once                sync.Once
	suite, bin, version string
	sources             []string
	sourcesText         []byte
	err                 error
}

func newRootfs(d *System) (*rootfs, error) {
	host.once.Do(func() {
		h := &host
		h.bin, h.err = hosttools.Find("mmdebstrap")
		if h.err != nil {
			return
		}
		out, err := exec.Command(h.bin, "--version").Output()
		if err != nil {
			h.err = fmt.Errorf("mmdebstrap --version: %w", err)
			return
		}
		h.version = strings.TrimSpace(string(out))
		osr, _ := os.ReadFile("/etc/os-release")
		if m := regexp.MustCompile(`(?m)^VERSION_CODENAME=(\S+)`).FindSubmatch(osr); m != nil {
			h.suite = string(m[1])
		}
		files, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
		more, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
		if _, err := os.Stat("/etc/apt/sources.list"); err == nil {
			files = append([]string{"/etc/apt/sources.list"}, files...)
		}
		for _, f := range append(files, more...) {
			b, err := os.ReadFile(f)
			if err != nil || len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			h.sources = append(h.sources, f)
			h.sourcesText = append(append(h.sourcesText, b...), '\n')
		}
	})
	h := &host
	if h.err != nil {
		return nil, h.err
	}
	r := &rootfs{suite: d.Suite, version: h.version, bin: h.bin, lock: d.Lock}
	if r.suite == "" {
		if h.suite == "" {
			return nil, errors.New("debian: the host's suite is unknown (no VERSION_CODENAME in /etc/os-release): set DebianSystem.Suite")
		}
		r.suite = h.suite
	}
	switch {
	case d.Mirror != "":
		r.sources = []string{d.Mirror}
	case r.suite == h.suite && len(h.sources) > 0:
		r.sources, r.text = h.sources, h.sourcesText
	default:
		r.sources = []string{"http://deb.debian.org/debian"}
	}
	seen := map[string]bool{}
	for _, p := range append(append([]string(nil), basePackages...), d.Packages...) {
		p = strings.TrimSpace(p)
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		r.packages = append(r.packages, p)
	}
	sort.Strings(r.packages)
	return r, nil
}

func (r *rootfs) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nsuite %s\nmmdebstrap %s\npackages %q\nepoch %d\n", keyFormat, r.suite, r.version, r.packages, epoch)
	if r.lock != nil {
		// The lock is all that is installed: the mirror plays no part.
		h.Write(r.lock.Marshal())
	} else {
		fmt.Fprintf(h, "sources %q\n", r.sources)
		h.Write(r.text)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// build runs mmdebstrap into f as a tarball: from the locked packages
// when there is a lock (fetched from src into c), else from the sources.
func (r *rootfs) build(ctx context.Context, c *cache.Cache, src deb.Source, f *os.File) error {
	if os.Geteuid() != 0 {
		return errors.New("mmdebstrap needs root to build a Debian system (its unshare mode needs subuids; run the tests as root)")
	}
	sources := r.sources
	if r.lock != nil {
		repo, err := os.MkdirTemp(filepath.Dir(f.Name()), ".repo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(repo)
		line, err := localRepo(ctx, c, src, r.lock, r.suite, repo)
		if err != nil {
			return err
		}
		sources = []string{line}
	}
	include := r.packages
	if r.lock != nil {
		// Every locked package by name: from a local repository
		// mmdebstrap leaves apt itself out of minbase, and the lock is
		// the whole system anyway.
		include = nil
		for _, p := range r.lock.Packages {
			include = append(include, p.Name)
		}
	}
	args := []string{"--variant=minbase", "--mode=root", "--format=tar", "--quiet",
		"--include=" + strings.Join(include, ",")}
	if r.lock != nil {
		// The guest's apt points at Debian, not at the scratch repository
		// (whose path would make every build differ).
		args = append(args, "--customize-hook="+fmt.Sprintf(
			`printf '# shakedown built this system from a lock of its packages.\ndeb http://deb.debian.org/debian %s main\n' > "$1/etc/apt/sources.list"`, r.suite))
	}
	args = append(args, r.suite, "-")
	args = append(args, sources...)
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch))
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mmdebstrap %s: %v: %s", r.suite, err, tailLines(stderr.String(), 15))
	}
	if r.lock != nil {
		return checkLocked(f.Name(), r.lock)
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
