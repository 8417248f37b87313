package shakedown

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/image/busybox"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
)

// baseModules are what every initramfs machine loads: PCI virtio, the
// serial port the agent speaks on, and the entropy source.
var baseModules = []string{"virtio_pci", "virtio_console", "virtio_rng"}

// bootFiles are what QEMU boots: a kernel and an initramfs, and for a
// Debian system the root disk image under its overlay.
type bootFiles struct {
	kernel, initrd, root string
}

// The kernel, busybox and agent are the same for every machine of a
// process; resolving them costs apt look-ups and a go build, so once per
// process and cache is enough.
var shared struct {
	mu      sync.Mutex
	kernels map[string]*kernel.Kernel
	busybox map[string]string
}

func (tb *Testbed) debianKernel(ctx context.Context) (*kernel.Kernel, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if k := shared.kernels[tb.cache.Root]; k != nil {
		return k, nil
	}
	k, err := kernel.Debian(ctx, tb.cache, deb.Apt{})
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if shared.kernels == nil {
		shared.kernels = map[string]*kernel.Kernel{}
	}
	shared.kernels[tb.cache.Root] = k
	return k, nil
}

func (tb *Testbed) busybox(ctx context.Context) (string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if p := shared.busybox[tb.cache.Root]; p != "" {
		return p, nil
	}
	p, err := busybox.Fetch(ctx, tb.cache, deb.Apt{})
	if err != nil {
		return "", err
	}
	if shared.busybox == nil {
		shared.busybox = map[string]string{}
	}
	shared.busybox[tb.cache.Root] = p
	return p, nil
}

// bootFiles resolves and builds (or finds in the cache) what cfg boots.
// Its steps are reported to Options.Progress as the machine name's.
func (tb *Testbed) bootFiles(ctx context.Context, name string, cfg MachineConfig) (bootFiles, error) {
	if cfg.Debian != nil {
		return tb.debianBootFiles(ctx, name, cfg)
	}
	var lock *pkgset.Lock
	if cfg.LockFile != "" {
		var err error
		if lock, err = pinnedLock(cfg.LockFile, cfg.Packages); err != nil {
			return bootFiles{}, err
		}
	}
	img, err := buildImage(ctx, tb.cache, cfg, lock, reporter{machine: name, fn: tb.progress})
	if err != nil {
		return bootFiles{}, err
	}
	if len(cfg.Packages) > 0 {
		tb.logf("shakedown: initramfs %s with packages %s; lock in %s", shortKey(img.Key), memberList(img.Packages), img.LockPath)
	}
	if cfg.LockFile != "" && lock == nil {
		if err := tb.keepLock(name, cfg.LockFile, img.Lock); err != nil {
			return bootFiles{}, err
		}
	}
	return bootFiles{kernel: img.Kernel, initrd: img.Path}, nil
}

// ImageOptions says how BuildImage builds.
type ImageOptions struct {
	// CacheDir is the cache directory; empty means the default (see
	// Options.CacheDir).
	CacheDir string
	// Lock pins packages (see pkgset.Lock): every package it names,
	// including the kernel and busybox, is fetched as exactly the locked
	// version and SHA-256, and dependencies are read from it, so that a
	// locked build needs no apt look-ups once the .debs are cached.
	// Packages it does not name are resolved through apt. Nil resolves
	// everything through apt.
	Lock *pkgset.Lock
	// Progress, if set, receives the build's steps as in
	// Options.Progress, with an empty Event.Machine.
	Progress func(Event)
}

// Image is a machine's built initramfs and what went into it.
type Image struct {
	// Key is the initramfs's content address in the cache (a SHA-256 over
	// everything in it); empty for a user's Initrd.
	Key string
	// Path is the initramfs file (in the cache, or the user's Initrd).
	Path string
	// Kernel is the kernel it boots with.
	Kernel string
	// Size is the initramfs's size in bytes.
	Size int64
	// Lock records the exact packages used; LockPath is where it is kept,
	// next to the image in the cache (kind "initramfs-lock", same key).
	Lock     *pkgset.Lock
	LockPath string
	// Packages are MachineConfig.Packages and their dependencies.
	Packages []pkgset.Member
	// Entries counts what the packages put in the image (files,
	// symlinks, directories); Programs and Libraries the ELF executables
	// and shared libraries among them.
	Entries, Programs, Libraries int
}

// BuildImage builds, or finds in the cache, the kernel and initramfs that
// a machine with cfg boots, and writes the lock of the packages it used
// next to the image. It is what Testbed does before booting each machine,
// available without one (the CLI's `shakedown image build`). With the
// same cfg and opts.Lock the initramfs is byte-identical, whichever cache
// it is built in.
func BuildImage(ctx context.Context, cfg MachineConfig, opts ImageOptions) (*Image, error) {
	c, err := cache.Open(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	return buildImage(ctx, c, cfg, opts.Lock, reporter{fn: serialized(opts.Progress)})
}

func buildImage(ctx context.Context, c *cache.Cache, cfg MachineConfig, lock *pkgset.Lock, rep reporter) (*Image, error) {
	img := &Image{}
	src := deb.NewPinned(rep.watch(deb.Apt{}), lock.Pins())
	modulesDir := cfg.ModulesDir
	if cfg.Kernel != "" {
		if _, err := os.Stat(cfg.Kernel); err != nil {
			return nil, fmt.Errorf("kernel: %w", err)
		}
		img.Kernel = cfg.Kernel
	} else {
		end := rep.begin(StepKernel)
		k, err := kernel.Debian(ctx, c, src)
		end(err)
		if err != nil {
			return nil, fmt.Errorf("kernel: %w", err)
		}
		img.Kernel = k.Vmlinux
		if img.Kernel == "" {
			img.Kernel = k.BzImage
		}
		modulesDir = k.ModulesDir
	}
	if cfg.Initrd != "" {
		fi, err := os.Stat(cfg.Initrd)
		if err != nil {
			return nil, fmt.Errorf("initrd: %w", err)
		}
		if len(cfg.Packages) > 0 {
			return nil, fmt.Errorf("packages %v wanted but Initrd is the user's own: build them into it, or leave Initrd empty", cfg.Packages)
		}
		img.Path, img.Size = cfg.Initrd, fi.Size()
		return img, nil
	}
	end := rep.begin(StepAgent)
	agent, err := agentbuild.Path(ctx, filepath.Join(c.Root, "agent-build"))
	if end(err); err != nil {
		return nil, err
	}
	end = rep.begin(StepBusybox)
	bb, err := busybox.Fetch(ctx, c, src)
	if end(err); err != nil {
		return nil, err
	}
	spec := initramfs.Spec{Agent: agent, Busybox: bb}
	if modulesDir != "" {
		spec.ModulesDir = modulesDir
		spec.Modules = append(append([]string(nil), baseModules...), cfg.Modules...)
		if len(cfg.Networks) > 0 {
			spec.Modules = append(spec.Modules, "virtio_net")
		}
		if len(cfg.Disks) > 0 {
			spec.Modules = append(spec.Modules, diskModules...)
		}
	} else if len(cfg.Modules) > 0 {
		return nil, fmt.Errorf("modules %v wanted but the kernel has no modules directory: set MachineConfig.ModulesDir", cfg.Modules)
	}
	end = func(error) {}
	if len(cfg.Packages) > 0 {
		end = rep.begin(StepPackages)
	}
	set, err := pkgset.Build(ctx, c, src, cfg.Packages)
	if end(err); err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	spec.Entries = set.Entries
	img.Packages, img.Entries, img.Programs, img.Libraries = set.Members, len(set.Entries), set.Programs, set.Libraries
	for _, f := range cfg.Files {
		spec.Files = append(spec.Files, initramfs.File{Guest: f.Guest, Host: f.Host, Data: f.Data, Mode: f.Mode})
	}
	svcFiles, err := servicesFile(cfg.Services)
	if err != nil {
		return nil, err
	}
	spec.Files = append(spec.Files, svcFiles...)
	end = rep.begin(StepInitramfs)
	if img.Key, err = initramfs.Key(spec); err == nil {
		img.Path, err = c.File(ImageKind, img.Key, func(f *os.File) error {
			return initramfs.Build(f, spec)
		})
	}
	if end(err); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	fi, err := touch(img.Path)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	img.Size = fi.Size()
	img.Lock = pkgset.NewLock(cfg.Packages, src.Used())
	img.LockPath, err = c.File(LockKind, img.Key, func(f *os.File) error {
		_, err := f.Write(img.Lock.Marshal())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("initramfs lock: %w", err)
	}
	return img, nil
}

// touch marks the image at path used now and returns its file info. The
// mtime says when an image was last used, for `shakedown image gc`; a
// cache that cannot be touched still works.
func touch(path string) (os.FileInfo, error) {
	now := time.Now()
	os.Chtimes(path, now, now)
	return os.Stat(path)
}

// Cache kinds of built images and their locks, keyed alike.
const (
	ImageKind = "initramfs"
	LockKind  = "initramfs-lock"
)

func shortKey(k string) string { return k[:min(len(k), 12)] }

// memberList is "curl=7.88.1-10+deb12u5 (+31 dependencies)".
func memberList(ms []pkgset.Member) string {
	var names []string
	deps := 0
	for _, m := range ms {
		if m.Requested {
			names = append(names, m.Package.String())
		} else {
			deps++
		}
	}
	return fmt.Sprintf("%s (+%d dependencies)", strings.Join(names, ", "), deps)
}
