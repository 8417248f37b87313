package shakedown

import (
	"context"

	"github.com/shakedown-dev/shakedown/image/boot"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/disk"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/lockfile"
	"github.com/shakedown-dev/shakedown/image/pkgset"
)

// bootFiles are what QEMU boots: a kernel and an initramfs, and for a
// Debian system the root disk image under its overlay.
type bootFiles struct {
	kernel, initrd, root string
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
		if lock, err = lockfile.Read(cfg.LockFile, cfg.Packages); err != nil {
			return bootFiles{}, err
		}
	}
	img, err := buildImage(ctx, tb.cache, cfg, lock, reporter{machine: name, fn: tb.progress})
	if err != nil {
		return bootFiles{}, err
	}
	if len(cfg.Packages) > 0 {
		tb.logf("shakedown: initramfs %s with packages %s; lock in %s", img.Key[:min(len(img.Key), 12)], pkgset.Summary(img.Packages), img.LockPath)
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
type Image = boot.Image

// Cache kinds of built images and their locks, keyed alike.
const (
	ImageKind = boot.ImageKind
	LockKind  = boot.LockKind
)

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

// bootSteps are the Event.Step of boot.Build's steps.
var bootSteps = map[boot.Step]string{boot.StepKernel: StepKernel, boot.StepAgent: StepAgent,
	boot.StepBusybox: StepBusybox, boot.StepPackages: StepPackages, boot.StepInitramfs: StepInitramfs}

func buildImage(ctx context.Context, c *cache.Cache, cfg MachineConfig, lock *pkgset.Lock, rep reporter) (*Image, error) {
	bc := boot.Config{Kernel: cfg.Kernel, ModulesDir: cfg.ModulesDir, Initrd: cfg.Initrd,
		Modules: cfg.Modules, Packages: cfg.Packages, Lock: lock, Source: rep.watch(deb.Apt{}),
		Begin: func(s boot.Step) func(error) { return rep.begin(bootSteps[s]) }}
	if len(cfg.Networks) > 0 {
		bc.DeviceModules = append(bc.DeviceModules, "virtio_net")
	}
	if len(cfg.Disks) > 0 {
		bc.DeviceModules = append(bc.DeviceModules, disk.Modules...)
	}
	for _, f := range cfg.Files {
		bc.Files = append(bc.Files, initramfs.File{Guest: f.Guest, Host: f.Host, Data: f.Data, Mode: f.Mode})
	}
	bc.Services = agentServices(cfg.Services)
	return boot.Build(ctx, c, bc)
}

// keepLock writes the lock a build of machine used to path, the
// machine's LockFile, which had none, for the test to commit (see package
// image/lockfile).
func (tb *Testbed) keepLock(machine, path string, l *pkgset.Lock) error {
	if err := pkgset.WriteLock(path, l); err != nil {
		return err
	}
	tb.logf("shakedown: %s: wrote lock file %s (commit it to pin these packages)", machine, path)
	return nil
}
