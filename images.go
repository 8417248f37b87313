package shakedown

import (
	"context"

	"github.com/shakedown-dev/shakedown/image/boot"
	"github.com/shakedown-dev/shakedown/image/bootfiles"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/pkgset"
)

// bootFiles resolves and builds (or finds in the cache) what cfg boots.
// Its steps are reported to Options.Progress as the machine name's.
func (tb *Testbed) bootFiles(ctx context.Context, name string, cfg MachineConfig) (bootfiles.Files, error) {
	rep := bootfiles.Reporter{Machine: name, Fn: tb.progress}
	return bootfiles.Build(ctx, tb.cache, bootSpec(name, cfg), rep.Progress(tb.logf))
}

// bootSpec is what of cfg decides what the machine boots.
func bootSpec(name string, cfg MachineConfig) bootfiles.Spec {
	s := bootfiles.Spec{Name: name, Packages: cfg.Packages, Modules: cfg.Modules, LockFile: cfg.LockFile,
		Kernel: cfg.Kernel, ModulesDir: cfg.ModulesDir, Initrd: cfg.Initrd, Services: agentServices(cfg.Services),
		Debian: cfg.Debian, NICs: len(cfg.Networks) > 0, Disks: len(cfg.Disks) > 0}
	for _, f := range cfg.Files {
		s.Files = append(s.Files, initramfs.File{Guest: f.Guest, Host: f.Host, Data: f.Data, Mode: f.Mode})
	}
	return s
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
	return bootfiles.Initramfs(ctx, c, bootSpec("", cfg), opts.Lock, bootfiles.Reporter{Fn: bootfiles.Serialized(opts.Progress)}.Progress(nil))
}
