// Package debian owns the building of bootable Debian root disks: the root
// file system made with mmdebstrap (from a mirror, or from locked .debs
// alone), the ext4 image with shakedown's agent, the kernel's modules and
// a machine's files, and the tiny initramfs that mounts it; it imports
// image/cache, image/deb, image/disk, image/initramfs, image/kernel,
// image/lockfile, image/pkgset, internal/hosttools and the standard
// library.
//
// A build has three parts, each cached under its own kind: the mmdebstrap
// tarball (RootfsKind; slow to make: downloads and dpkg), its lock
// (LockKind), and the bootable ext4 image made from the tarball with the
// agent and the machine's files (DiskKind; quick). With the same spec and
// lock the tarball and the disk are byte-identical.
package debian

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/lockfile"
	"github.com/shakedown-dev/shakedown/image/pkgset"
)

// System is a Debian system to build: the suite, where its packages come
// from, what is installed and which units start at boot.
//
// The root file system is built once with mmdebstrap (Debian's mmdebstrap
// package, which needs root) from the suite and packages, through the
// host's apt sources when Suite is the host's, else deb.debian.org: the
// minbase variant plus systemd-sysv, udev, iproute2 and kmod. Build adds
// shakedown's agent as /usr/local/bin/shakedown-agent with
// shakedown-agent.service (started early, restarted always), the kernel's
// modules in /lib/modules (without sound, graphics, media, wireless, USB
// and physical Ethernet drivers), the machine's files and the Units, and
// makes it an ext4 image (`mke2fs -d`). root has no password.
type System struct {
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
	// build writes the lock it used (Image.Lock, LockPath). Nil installs
	// what the mirror has.
	Lock *pkgset.Lock
}

var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.@-]+\.(service|socket|target|timer|path|mount)$`)

// Check rejects what a system cannot have: unit names that are not
// systemd unit file names, a negative size.
func (s *System) Check() error {
	var errs []error
	for name := range s.Units {
		if !unitNameRE.MatchString(name) {
			errs = append(errs, fmt.Errorf("unit %q: want a systemd unit file name such as web.service", name))
		}
	}
	if s.SizeMiB < 0 {
		errs = append(errs, fmt.Errorf("negative root size %d MiB", s.SizeMiB))
	}
	return errors.Join(errs...)
}

// Spec is one machine's root disk: the system and what the machine adds.
type Spec struct {
	System System
	// Files are placed in the root file system after the packages.
	Files []File
	// Modules are kernel modules for systemd-modules-load to load at
	// boot.
	Modules []string
	// Agent is shakedown's guest agent binary.
	Agent string
	// Kernel boots the disk; its modules go in /lib/modules.
	Kernel *kernel.Kernel
}

// Step is a part of Build that Options.Begin reports.
type Step int

const (
	// StepRootfs builds the root file system with mmdebstrap, on a cache
	// miss (with a lock, after fetching its .debs).
	StepRootfs Step = iota
	// StepDisk makes the root disk image, on a cache miss.
	StepDisk
)

// Options are how Build reports and where it gets packages; the zero
// value uses the host's apt and reports nothing.
type Options struct {
	// Source resolves and fetches Debian packages for the lock and a
	// locked build; nil means deb.Apt{}.
	Source deb.Source
	// Logf, if set, receives a line for a slow build and for a lock that
	// could not be made.
	Logf func(format string, args ...any)
	// Begin, if set, is called as a step begins and returns what to call
	// as it ends.
	Begin func(step Step) (end func(err error))
}

func (o Options) begin(s Step) func(error) {
	if o.Begin == nil {
		return func(error) {}
	}
	return o.Begin(s)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// Image is a built Debian root disk and what boots it.
type Image struct {
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
	// LockKind, key RootfsKey). Nil when the packages could not be
	// found in the host's apt index (a suite other than the host's).
	Lock     *pkgset.Lock
	LockPath string
}

// Cache kinds of Debian machines: the mmdebstrap tarball, the bootable
// ext4 image made from it, and the lock of the tarball's packages, keyed
// as the tarball it describes (Image.RootfsKey).
const (
	RootfsKind = "debian-rootfs"
	DiskKind   = "debian-disk"
	LockKind   = "debian-lock"
)

// keyFormat changes when the way the image is made changes, so that old
// cache entries are not reused. It begins both keys, byte for byte.
const keyFormat = "shakedown-debian-3"

// epoch is SOURCE_DATE_EPOCH for every build, and the time of every inode
// and of the file system in the disk image: 2023-06-10, when Debian 12 was
// released. mmdebstrap makes a reproducible tarball with it; the rest is
// shakedown's part.
const epoch = 1686355200

// rootModules are what the tiny initramfs loads to mount the root: PCI
// virtio, the block driver and ext4 with its crc32c; and the network
// driver, so that the NICs exist before the system's init starts the
// agent, which configures them at once: left to udev's coldplug, which a
// loaded host can hold up for more than the agent's 30 s wait, a machine
// came up with no address.
var rootModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "virtio_net"}

// Build builds, or finds in c, the root disk of spec and the initramfs
// that mounts it; spec.Kernel boots both.
func Build(ctx context.Context, c *cache.Cache, spec Spec, opts Options) (*Image, error) {
	sys := &spec.System
	if err := sys.Check(); err != nil {
		return nil, err
	}
	src := opts.Source
	if src == nil {
		src = deb.Apt{}
	}
	k := spec.Kernel
	img := &Image{Kernel: k.Vmlinux}
	if img.Kernel == "" {
		img.Kernel = k.BzImage
	}
	// The initramfs that mounts the root: the agent and four modules.
	is := initramfs.Spec{Agent: spec.Agent, ModulesDir: k.ModulesDir, Modules: rootModules}
	key, err := initramfs.Key(is)
	if err != nil {
		return nil, fmt.Errorf("root initramfs: %w", err)
	}
	img.Initrd, err = c.File(initramfs.CacheKind, key, func(f *os.File) error { return initramfs.Build(f, is) })
	if err != nil {
		return nil, fmt.Errorf("root initramfs: %w", err)
	}

	if sys.Lock != nil {
		// A lock is the whole system: one made for other packages would
		// quietly install the old set.
		if err := lockfile.CheckRequest("DebianSystem.Lock", sys.Lock, sys.Packages); err != nil {
			return nil, err
		}
	}
	rs, err := newRootfs(sys)
	if err != nil {
		return nil, err
	}
	img.RootfsKey = rs.key()
	end := opts.begin(StepRootfs)
	tarball, err := c.File(RootfsKind, img.RootfsKey, func(f *os.File) error {
		opts.logf("shakedown: building a Debian %s root file system with mmdebstrap (a minute or more)", rs.suite)
		return rs.build(ctx, c, src, f)
	})
	end(err)
	if err != nil {
		return nil, fmt.Errorf("debian rootfs: %w", err)
	}
	// The lock sits beside the tarball: the given one, or the one read
	// from the tarball when it was first built.
	img.LockPath, err = c.File(LockKind, img.RootfsKey, func(f *os.File) error {
		l := sys.Lock
		if l == nil {
			var err error
			if l, err = lockRootfs(ctx, src, tarball, sys.Packages); err != nil {
				return err
			}
		}
		_, err := f.Write(l.Marshal())
		return err
	})
	switch {
	case err != nil:
		// The machine boots; only its lock is missing.
		opts.logf("shakedown: no lock for the Debian root file system: %v", err)
		img.LockPath = ""
	case sys.Lock != nil:
		img.Lock = sys.Lock
	default:
		if img.Lock, err = pkgset.ReadLock(img.LockPath); err != nil {
			return nil, fmt.Errorf("debian lock: %w", err)
		}
	}

	if img.Key, err = diskKey(img.RootfsKey, spec); err != nil {
		return nil, err
	}
	end = opts.begin(StepDisk)
	img.Path, err = c.File(DiskKind, img.Key, func(f *os.File) error {
		return makeDisk(ctx, f.Name(), tarball, spec, img.Key)
	})
	end(err)
	if err != nil {
		return nil, fmt.Errorf("debian disk: %w", err)
	}
	fi, err := os.Stat(img.Path)
	if err != nil {
		return nil, fmt.Errorf("debian disk: %w", err)
	}
	img.Size = fi.Size()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		img.Size = st.Blocks * 512
	}
	return img, nil
}

// diskKey is the content address of the disk made of the tarball at
// rootfsKey for spec: everything that goes into it.
func diskKey(rootfsKey string, spec Spec) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nrootfs %s\nmodules %s\nsize %d\n", keyFormat, rootfsKey, filepath.Base(spec.Kernel.ModulesDir), spec.System.SizeMiB)
	if err := hashFile(h, "agent", spec.Agent); err != nil {
		return "", err
	}
	for _, n := range slices.Sorted(maps.Keys(spec.System.Units)) {
		fmt.Fprintf(h, "unit %q %q\n", n, spec.System.Units[n])
	}
	for _, f := range spec.Files {
		if err := hashGuestFile(h, f); err != nil {
			return "", err
		}
	}
	// Modules the user asks for are loaded by systemd-modules-load.
	fmt.Fprintf(h, "modules %q\n", spec.Modules)
	return hex.EncodeToString(h.Sum(nil)), nil
}
