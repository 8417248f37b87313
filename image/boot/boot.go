// Package boot builds what an initramfs machine boots: Debian's kernel (or
// the user's), the guest agent, busybox, the machine's Debian packages with
// their lock, its files, and the initramfs holding them, in the cache. It
// imports image/cache, image/deb, image/kernel, image/busybox,
// image/initramfs, image/pkgset, internal/agentbuild and
// internal/agentproto.
package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/shakedown-dev/shakedown/image/busybox"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// Cache kinds of built images and their locks, keyed alike.
const (
	ImageKind = initramfs.CacheKind
	LockKind  = "initramfs-lock"
)

// BaseModules are what every initramfs machine loads: PCI virtio, the
// serial port the agent speaks on, and the entropy source.
var BaseModules = []string{"virtio_pci", "virtio_console", "virtio_rng"}

// Step is a step of Build, reported through Config.Begin.
type Step int

// Build's steps, in order.
const (
	StepKernel    Step = iota // resolve and fetch the kernel
	StepAgent                 // build the guest agent
	StepBusybox               // fetch busybox-static
	StepPackages              // resolve, fetch and unpack Packages (only when there are some)
	StepInitramfs             // hash the contents and, on a miss, write the initramfs
)

// Config is what a machine boots. The zero value is Debian's kernel and
// an initramfs of the agent and busybox.
type Config struct {
	// Kernel is the user's kernel; "" means Debian's, whose modules
	// directory then goes with it.
	Kernel string
	// ModulesDir holds the user's kernel's modules, if any.
	ModulesDir string
	// Initrd is the user's own initramfs: nothing is built.
	Initrd string
	// Modules are loaded at boot, beside BaseModules; the kernel must
	// have a modules directory.
	Modules []string
	// DeviceModules are what the machine's devices need (virtio_net for
	// a network, virtio_blk for disks): loaded after Modules when the
	// kernel has a modules directory, else taken to be built in.
	DeviceModules []string
	// Packages are Debian packages to put in the image (see pkgset).
	Packages []string
	// Files go into the image as they are.
	Files []initramfs.File
	// Services are the agent's supervised services, written to
	// agentproto.ServicesFile in the image.
	Services []agentproto.Service
	// Lock pins packages; nil resolves them through Source.
	Lock *pkgset.Lock
	// Source resolves and fetches packages; nil means the host's apt.
	Source deb.Source
	// Begin, if set, is called as each step begins, and returns what to
	// call when it ends.
	Begin func(Step) (end func(error))
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
	// next to the image in the cache (kind LockKind, same key).
	Lock     *pkgset.Lock
	LockPath string
	// Packages are the packages asked for and their dependencies.
	Packages []pkgset.Member
	// Entries counts what the packages put in the image (files,
	// symlinks, directories); Programs and Libraries the ELF executables
	// and shared libraries among them.
	Entries, Programs, Libraries int
}

// Build builds, or finds in c, the kernel and initramfs of cfg, and writes
// the lock of the packages it used next to the image. With the same cfg
// and lock the initramfs is byte-identical, whichever cache it is built in.
func Build(ctx context.Context, c *cache.Cache, cfg Config) (*Image, error) {
	begin := cfg.Begin
	if begin == nil {
		begin = func(Step) func(error) { return func(error) {} }
	}
	var src deb.Source = deb.Apt{}
	if cfg.Source != nil {
		src = cfg.Source
	}
	pinned := deb.NewPinned(src, cfg.Lock.Pins())
	img := &Image{}
	modulesDir := cfg.ModulesDir
	if cfg.Kernel != "" {
		if _, err := os.Stat(cfg.Kernel); err != nil {
			return nil, fmt.Errorf("kernel: %w", err)
		}
		img.Kernel = cfg.Kernel
	} else {
		end := begin(StepKernel)
		k, err := kernel.Debian(ctx, c, pinned)
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
	end := begin(StepAgent)
	agent, err := agentbuild.Path(ctx, filepath.Join(c.Root, agentbuild.CacheKind))
	if end(err); err != nil {
		return nil, err
	}
	end = begin(StepBusybox)
	bb, err := busybox.Fetch(ctx, c, pinned)
	if end(err); err != nil {
		return nil, err
	}
	spec := initramfs.Spec{Agent: agent, Busybox: bb, Files: cfg.Files}
	if len(cfg.Services) > 0 {
		b, err := json.MarshalIndent(cfg.Services, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("services: %w", err)
		}
		spec.Files = append(slices.Clip(spec.Files), initramfs.File{Guest: agentproto.ServicesFile, Data: b, Mode: 0o644})
	}
	if modulesDir != "" {
		spec.ModulesDir = modulesDir
		spec.Modules = append(append(append([]string(nil), BaseModules...), cfg.Modules...), cfg.DeviceModules...)
	} else if extra := cfg.Modules; len(extra) > 0 {
		return nil, fmt.Errorf("modules %v wanted but the kernel has no modules directory: set MachineConfig.ModulesDir", extra)
	}
	end = func(error) {}
	if len(cfg.Packages) > 0 {
		end = begin(StepPackages)
	}
	set, err := pkgset.Build(ctx, c, pinned, cfg.Packages)
	if end(err); err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	spec.Entries = set.Entries
	img.Packages, img.Entries, img.Programs, img.Libraries = set.Members, len(set.Entries), set.Programs, set.Libraries
	end = begin(StepInitramfs)
	if img.Key, err = initramfs.Key(spec); err == nil {
		img.Path, err = c.File(ImageKind, img.Key, func(f *os.File) error {
			return initramfs.Build(f, spec)
		})
	}
	if end(err); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	fi, err := os.Stat(img.Path)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	img.Size = fi.Size()
	img.Lock = pkgset.NewLock(cfg.Packages, pinned.Used())
	img.LockPath, err = c.File(LockKind, img.Key, func(f *os.File) error {
		_, err := f.Write(img.Lock.Marshal())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("initramfs lock: %w", err)
	}
	return img, nil
}
