package shakedown

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
)

// DebianSystem makes a machine a full Debian system with systemd, booted
// from a root disk instead of an initramfs in RAM.
//
// The root file system is built once with mmdebstrap (Debian's
// mmdebstrap package, which needs root) from the suite and packages,
// through the host's apt sources when Suite is the host's, else
// deb.debian.org: the minbase variant plus systemd-sysv, udev, iproute2
// and kmod. shakedown adds its agent as /usr/local/bin/shakedown-agent
// with shakedown-agent.service (started early, restarted always), the
// guest kernel's modules in /lib/modules (without sound, graphics, media,
// wireless, USB and physical Ethernet drivers), the machine's Files and
// the Units, and makes it an ext4 image in the cache (`mke2fs -d`). Each
// machine boots it through a qcow2 overlay in the run directory, so the
// image stays read-only and shared while what the guest writes survives
// Reboot.
//
// The root disk is /dev/vda; MachineConfig.Disks follow as /dev/vdb, ...
// Debian's kernel boots directly (as for initramfs machines) with a tiny
// initramfs holding only the agent and the modules to mount the root
// (virtio_blk, ext4), which mounts /dev/vda and execs systemd (see
// agent.SwitchRoot). The hostname comes from the command line
// (systemd.hostname=), interfaces are eth0, eth1, ... (net.ifnames=0) and
// the agent service gives them their addresses. root has no password on
// the serial console.
//
// WaitForUnit, UnitState and Systemctl ask the guest's systemd. Boots are
// slower than an initramfs's (systemd and udev start, a few seconds under
// KVM, about half a minute under TCG): DefaultDebianBootTimeout applies
// unless MachineConfig.BootTimeout is set.
type DebianSystem struct {
	// Suite is a Debian suite such as "bookworm"; "" means the host's.
	Suite string
	// Mirror is the Debian mirror to install from, such as
	// "http://deb.debian.org/debian" or a local one (any URL or
	// sources.list line mmdebstrap takes); "" means the host's apt
	// sources for the host's suite, else deb.debian.org. A locked build
	// uses no mirror.
	Mirror string
	// Packages are further Debian packages (names, or name=version) to
	// install with their dependencies, as apt would (without
	// recommends). Their services start as Debian enables them.
	Packages []string
	// Units are systemd unit files by name ("web.service": its text),
	// placed in /etc/systemd/system and wanted by multi-user.target, so
	// that they start at boot.
	Units map[string]string
	// SizeMiB is the root file system's size; 0 means the contents and
	// 1 GiB of room. The image file is sparse: room costs no host disk
	// until the guest writes.
	SizeMiB int
	// Lock pins every package of the root file system, by version and
	// SHA-256: the build installs exactly the locked .debs from a
	// repository of its own, not what a mirror offers today, and the
	// disk is byte-identical for the same spec and lock. An unlocked
	// build writes the lock it used (DebianImage.Lock, LockPath). Nil
	// installs what the mirror has.
	Lock *pkgset.Lock
}

// DefaultDebianBootTimeout bounds the boot of a Debian machine, until its
// agent answers, when MachineConfig.BootTimeout is 0: systemd gets the
// agent's unit running after udev has probed the devices, which under TCG
// takes 20-40 s on a loaded host.
const DefaultDebianBootTimeout = 3 * time.Minute

// debianBasePackages make the minbase variant a bootable systemd machine
// that the agent can configure.
var debianBasePackages = []string{"systemd-sysv", "udev", "iproute2", "kmod"}

// rootModules are what the tiny initramfs of a Debian machine loads to
// mount its root: PCI virtio, the block driver and ext4 with its crc32c.
var rootModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4"}

// Cache kinds of Debian machines: the mmdebstrap tarball (slow to make:
// downloads and dpkg), the bootable ext4 image made from it with the agent
// and the machine's files (quick), and the tiny initramfs that mounts it.
const (
	DebianRootfsKind = "debian-rootfs"
	DebianDiskKind   = "debian-disk"
)

// debianFormat changes when the way the image is made changes, so that
// old cache entries are not reused.
const debianFormat = "shakedown-debian-3"

var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.@-]+\.(service|socket|target|timer|path|mount)$`)

// checkDebian rejects what a Debian machine cannot have, when the machine
// is declared.
func checkDebian(cfg MachineConfig) error {
	d := cfg.Debian
	if d == nil {
		return nil
	}
	var errs []error
	if cfg.Kernel != "" || cfg.Initrd != "" {
		errs = append(errs, errors.New("a Debian system boots Debian's kernel with its own initramfs: leave Kernel and Initrd empty"))
	}
	if len(cfg.Packages) > 0 {
		errs = append(errs, errors.New("packages of a Debian system go in Debian.Packages, not Packages (the initramfs's)"))
	}
	if len(cfg.Services) > 0 {
		errs = append(errs, errors.New("a Debian system runs systemd units: declare them in Debian.Units, not Services"))
	}
	for name := range d.Units {
		if !unitNameRE.MatchString(name) {
			errs = append(errs, fmt.Errorf("unit %q: want a systemd unit file name such as web.service", name))
		}
	}
	if d.SizeMiB < 0 {
		errs = append(errs, fmt.Errorf("negative root size %d MiB", d.SizeMiB))
	}
	return errors.Join(errs...)
}

// DebianImage is a built Debian root disk and what boots it.
type DebianImage struct {
	// Key is the disk image's content address in the cache; RootfsKey
	// the address of the mmdebstrap tarball it was made from.
	Key, RootfsKey string
	// Path is the raw ext4 image (read-only: machines boot overlays).
	Path string
	// Kernel and Initrd boot it.
	Kernel, Initrd string
	// Size is the image's allocated size on the host in bytes (the file
	// is sparse: its apparent size is the file system's).
	Size int64
	// Lock lists the packages of the root file system by version and
	// SHA-256; LockPath is where it is kept, in the cache (kind
	// DebianLockKind, key RootfsKey). Nil when the packages could not be
	// found in the host's apt index (a suite other than the host's).
	Lock     *pkgset.Lock
	LockPath string
}

// BuildDebian builds, or finds in the cache, the root disk and initramfs
// that a machine with cfg.Debian set boots. It is what Testbed does before
// booting such a machine.
func BuildDebian(ctx context.Context, cfg MachineConfig, opts ImageOptions) (*DebianImage, error) {
	c, err := cache.Open(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	return buildDebian(ctx, c, cfg, nil, reporter{fn: serialized(opts.Progress)})
}

func buildDebian(ctx context.Context, c *cache.Cache, cfg MachineConfig, logf func(string, ...any), rep reporter) (*DebianImage, error) {
	if err := checkDebian(cfg); err != nil {
		return nil, err
	}
	d := cfg.Debian
	src := rep.watch(deb.Apt{})
	end := rep.begin(StepKernel)
	k, err := kernel.Debian(ctx, c, src)
	end(err)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	img := &DebianImage{Kernel: k.Vmlinux}
	if img.Kernel == "" {
		img.Kernel = k.BzImage
	}
	end = rep.begin(StepAgent)
	agent, err := agentbuild.Path(ctx, filepath.Join(c.Root, "agent-build"))
	end(err)
	if err != nil {
		return nil, err
	}
	// The initramfs that mounts the root: the agent and four modules.
	spec := initramfs.Spec{Agent: agent, ModulesDir: k.ModulesDir, Modules: rootModules}
	key, err := initramfs.Key(spec)
	if err != nil {
		return nil, fmt.Errorf("root initramfs: %w", err)
	}
	img.Initrd, err = c.File(ImageKind, key, func(f *os.File) error { return initramfs.Build(f, spec) })
	if err != nil {
		return nil, fmt.Errorf("root initramfs: %w", err)
	}

	if d.Lock != nil {
		// A lock is the whole system: one made for other packages would
		// quietly install the old set.
		if err := checkLockRequest("DebianSystem.Lock", d.Lock, d.Packages); err != nil {
			return nil, err
		}
	}
	rs, err := rootfsSpec(d)
	if err != nil {
		return nil, err
	}
	img.RootfsKey = rs.key()
	end = rep.begin(StepRootfs)
	tarball, err := c.File(DebianRootfsKind, img.RootfsKey, func(f *os.File) error {
		if logf != nil {
			logf("shakedown: building a Debian %s root file system with mmdebstrap (a minute or more)", rs.suite)
		}
		return rs.build(ctx, c, src, f)
	})
	end(err)
	if err != nil {
		return nil, fmt.Errorf("debian rootfs: %w", err)
	}
	// The lock sits beside the tarball: the given one, or the one read
	// from the tarball when it was first built.
	img.LockPath, err = c.File(DebianLockKind, img.RootfsKey, func(f *os.File) error {
		l := d.Lock
		if l == nil {
			var err error
			if l, err = lockRootfs(ctx, src, tarball, d.Packages); err != nil {
				return err
			}
		}
		_, err := f.Write(l.Marshal())
		return err
	})
	switch {
	case err != nil:
		// The machine boots; only its lock is missing.
		if logf != nil {
			logf("shakedown: no lock for the Debian root file system: %v", err)
		}
		img.LockPath = ""
	case d.Lock != nil:
		img.Lock = d.Lock
	default:
		if img.Lock, err = pkgset.ReadLock(img.LockPath); err != nil {
			return nil, fmt.Errorf("debian lock: %w", err)
		}
	}

	h := sha256.New()
	fmt.Fprintf(h, "%s\nrootfs %s\nmodules %s\nsize %d\n", debianFormat, img.RootfsKey, filepath.Base(k.ModulesDir), d.SizeMiB)
	if err := hashFile(h, "agent", agent); err != nil {
		return nil, err
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range d.Units {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		fmt.Fprintf(h, "unit %q %q\n", n, d.Units[n])
	}
	for _, f := range cfg.Files {
		if err := hashGuestFile(h, f); err != nil {
			return nil, err
		}
	}
	// Modules the user asks for are loaded by systemd-modules-load.
	fmt.Fprintf(h, "modules %q\n", cfg.Modules)
	img.Key = hex.EncodeToString(h.Sum(nil))
	end = rep.begin(StepDisk)
	img.Path, err = c.File(DebianDiskKind, img.Key, func(f *os.File) error {
		return makeDebianDisk(ctx, f.Name(), tarball, agent, k.ModulesDir, cfg, img.Key)
	})
	end(err)
	if err != nil {
		return nil, fmt.Errorf("debian disk: %w", err)
	}
	fi, err := touch(img.Path)
	if err != nil {
		return nil, fmt.Errorf("debian disk: %w", err)
	}
	img.Size = fi.Size()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		img.Size = st.Blocks * 512
	}
	return img, nil
}

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

// debianHost caches the host's suite and mmdebstrap's path and version.
var debianHost struct {
	once                sync.Once
	suite, bin, version string
	sources             []string
	sourcesText         []byte
	err                 error
}

func rootfsSpec(d *DebianSystem) (*rootfs, error) {
	debianHost.once.Do(func() {
		h := &debianHost
		h.bin, h.err = findTool("mmdebstrap")
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
	h := &debianHost
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
	for _, p := range append(append([]string(nil), debianBasePackages...), d.Packages...) {
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
	fmt.Fprintf(h, "%s\nsuite %s\nmmdebstrap %s\npackages %q\nepoch %d\n", debianFormat, r.suite, r.version, r.packages, debianEpoch)
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
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", debianEpoch))
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

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// agentUnit runs the agent as early as systemd can: without default
// dependencies it starts before basic.target, stays up until the final
// kill at shutdown (so that it can answer the poweroff request), and
// restarts at once whatever happens to it.
const agentUnit = `[Unit]
Description=shakedown agent (SSH on the virtio-serial port org.shakedown.agent.0)
DefaultDependencies=no

[Service]
ExecStart=/usr/local/bin/shakedown-agent
Restart=always
RestartSec=200ms
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=sysinit.target
`

// skippedModules are the kernel's module directories a test machine does
// not need: real hardware it never has. Leaving them out halves the image.
var skippedModules = []string{
	"kernel/sound", "kernel/drivers/gpu", "kernel/drivers/media", "kernel/drivers/infiniband",
	"kernel/drivers/net/wireless", "kernel/drivers/net/ethernet", "kernel/drivers/net/usb",
	"kernel/drivers/staging", "kernel/drivers/iio", "kernel/drivers/comedi", "kernel/drivers/usb",
	"kernel/drivers/bluetooth", "kernel/drivers/isdn", "kernel/net/bluetooth",
	"kernel/net/mac80211", "kernel/net/wireless",
}

// makeDebianDisk unpacks the tarball into a scratch directory next to
// out, adds shakedown's files and the machine's, and makes out an ext4
// image of it; seed (the image's key) makes the file system's UUID and
// hash seed.
func makeDebianDisk(ctx context.Context, out, tarball, agent, modulesDir string, cfg MachineConfig, seed string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	tarBin, err := findTool("tar")
	if err != nil {
		return err
	}
	if b, err := exec.CommandContext(ctx, tarBin, "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-f", tarball, "-C", root).CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %v: %s", tarball, err, tailLines(string(b), 5))
	}
	// The agent and its unit.
	if err := copyFile(agent, filepath.Join(root, "usr/local/bin/shakedown-agent"), 0o755); err != nil {
		return err
	}
	units := map[string]string{"shakedown-agent.service": agentUnit}
	wants := map[string]string{"shakedown-agent.service": "sysinit.target.wants"}
	for n, text := range cfg.Debian.Units {
		units[n] = text
		wants[n] = "multi-user.target.wants"
	}
	for n, text := range units {
		if err := writeFile(filepath.Join(root, "etc/systemd/system", n), []byte(text), 0o644); err != nil {
			return err
		}
		dir := filepath.Join(root, "etc/systemd/system", wants[n])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Symlink("../"+n, filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	// The root is mounted read-write by the initramfs; no fsck.
	if err := writeFile(filepath.Join(root, "etc/fstab"), []byte("/dev/vda / ext4 rw,errors=remount-ro 0 0\n"), 0o644); err != nil {
		return err
	}
	if len(cfg.Modules) > 0 {
		if err := writeFile(filepath.Join(root, "etc/modules-load.d/shakedown.conf"), []byte(strings.Join(cfg.Modules, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	// A machine's own hostname comes from the command line.
	os.Remove(filepath.Join(root, "etc/hostname"))
	if err := passwordlessRoot(filepath.Join(root, "etc/shadow")); err != nil {
		return err
	}
	// The kernel's modules, as the kernel package would install them.
	mdst := filepath.Join(root, "lib/modules", filepath.Base(modulesDir))
	if err := copyTree(modulesDir, mdst, func(rel string) bool {
		return slices.Contains(skippedModules, rel)
	}); err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	// udev loads drivers through kmod, which reads only the binary
	// indexes (modules.alias.bin, ...) that depmod writes.
	depmod, err := findTool("depmod")
	if err != nil {
		return err
	}
	if b, err := exec.CommandContext(ctx, depmod, "-b", root, filepath.Base(modulesDir)).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod: %v: %s", err, tailLines(string(b), 5))
	}
	// The machine's files.
	for _, f := range cfg.Files {
		if err := placeFile(root, f); err != nil {
			return err
		}
	}
	size := cfg.Debian.SizeMiB
	need, _, err := contentsSize(root)
	if err != nil {
		return err
	}
	if size == 0 {
		size = autoSizeMiB(need) + 1024
	} else if int64(size)*mib < need {
		return fmt.Errorf("%w: the root file system needs about %d MiB, DebianSystem.SizeMiB is %d", ErrDiskTooSmall, (need+mib-1)/mib, size)
	}
	// mke2fs -d keeps owners, modes, xattrs (file capabilities) and
	// hard links of the tree; the seed fixes what it would make random,
	// and every inode's times.
	return buildExt4(out, "root", Disk{Contents: root, SizeMiB: size}, seed)
}

// passwordlessRoot lets root log in on the serial console without a
// password, for people debugging a machine.
func passwordlessRoot(shadow string) error {
	b, err := os.ReadFile(shadow)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[0] == "root" {
			lines[i] = "root::" + f[2]
		}
	}
	return os.WriteFile(shadow, []byte(strings.Join(lines, "\n")), 0o640)
}

func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	os.Remove(path)
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// copyTree copies a host tree (files, directories, symlinks) to dst,
// leaving out the paths (relative to src) that skip says.
func copyTree(src, dst string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if skip != nil && skip(rel) {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			return os.MkdirAll(target, normMode(info.Mode(), 0o755))
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			os.Remove(target)
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(path, target, normMode(info.Mode(), 0o644))
		}
		return nil
	})
}

// normMode is 0755 for anything executable or a directory, else 0644, as
// in the initramfs: the host's umask does not leak into the image.
func normMode(m, def fs.FileMode) fs.FileMode {
	if m.IsDir() || m&0o111 != 0 {
		return 0o755
	}
	return def
}

// placeFile puts a machine's File into the root tree.
func placeFile(root string, f File) error {
	if !filepath.IsAbs(f.Guest) || strings.Contains(f.Guest, "..") {
		return fmt.Errorf("file %s: want an absolute guest path without ..", f.Guest)
	}
	dst := filepath.Join(root, f.Guest)
	if f.Host == "" {
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		return writeFile(dst, f.Data, mode)
	}
	fi, err := os.Stat(f.Host)
	if err != nil {
		return fmt.Errorf("file for %s: %w", f.Guest, err)
	}
	if fi.IsDir() {
		return copyTree(f.Host, dst, nil)
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = normMode(fi.Mode(), 0o644)
	}
	return copyFile(f.Host, dst, mode)
}

func hashFile(h io.Writer, what, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fh := sha256.New()
	if _, err := io.Copy(fh, f); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(h, "%s %x\n", what, fh.Sum(nil))
	return nil
}

// hashGuestFile hashes a File's guest path, mode and content (a host
// tree's names, modes, link targets and contents).
func hashGuestFile(h io.Writer, f File) error {
	fmt.Fprintf(h, "file %q %o\n", f.Guest, f.Mode)
	if f.Host == "" {
		fmt.Fprintf(h, "data %x\n", sha256.Sum256(f.Data))
		return nil
	}
	return filepath.WalkDir(f.Host, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("file for %s: %w", f.Guest, err)
		}
		rel, _ := filepath.Rel(f.Host, path)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "entry %q %v\n", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			link, _ := os.Readlink(path)
			fmt.Fprintf(h, "link %q\n", link)
		case info.Mode().IsRegular():
			return hashFile(h, "content", path)
		}
		return nil
	})
}

func (tb *Testbed) debianBootFiles(ctx context.Context, name string, cfg MachineConfig) (bootFiles, error) {
	var lock *pkgset.Lock
	if cfg.LockFile != "" {
		var err error
		if lock, err = pinnedLock(cfg.LockFile, cfg.Debian.Packages); err != nil {
			return bootFiles{}, err
		}
		if lock != nil {
			d := *cfg.Debian
			d.Lock = lock
			cfg.Debian = &d
		}
	}
	img, err := buildDebian(ctx, tb.cache, cfg, tb.logf, reporter{machine: name, fn: tb.progress})
	if err != nil {
		return bootFiles{}, err
	}
	if cfg.LockFile != "" && lock == nil {
		if img.Lock == nil {
			return bootFiles{}, fmt.Errorf("lock file %s: the build could not lock its packages (see the log)", cfg.LockFile)
		}
		if err := tb.keepLock(name, cfg.LockFile, img.Lock); err != nil {
			return bootFiles{}, err
		}
	}
	return bootFiles{kernel: img.Kernel, initrd: img.Initrd, root: img.Path}, nil
}

// debianCmdline is what a Debian system's kernel command line adds: the
// root for the initramfs's agent (agent.ParamRoot) and for tools that
// read root=, the hostname for systemd, and interfaces named eth0, eth1,
// ... as ParamNet counts them, not by their PCI slot.
func debianCmdline(name string) []string {
	return []string{"root=/dev/vda", "rw", "shakedown.root=/dev/vda", "systemd.hostname=" + name, "net.ifnames=0"}
}

// withRootDisk puts the machine's overlay of the Debian root image first
// among its disks, making it /dev/vda; the overlay is made on the first
// boot and kept, so the guest's writes survive Reboot.
func (m *machine) withRootDisk(base string, disks []diskFile) ([]diskFile, error) {
	dir := filepath.Join(m.tb.dir, m.name+"-disks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("root disk: %w", err)
	}
	root := diskFile{name: "root", path: filepath.Join(dir, "root.qcow2"), format: "qcow2"}
	if err := once(root.path, func(tmp string) error { return overlay(base, tmp) }); err != nil {
		return nil, fmt.Errorf("root disk: %w", err)
	}
	return append([]diskFile{root}, disks...), nil
}
