// Package bootfiles turns a machine's declaration into what QEMU boots:
// the kernel and initramfs of an initramfs machine (package image/boot),
// or the kernel, the small initramfs and the root disk of a Debian system
// (package image/debian), built or found in the cache. It reads the
// machine's lock file when there is one and writes it when there is
// none, and reports its steps by the names the testbed's progress events
// use. The testbed (the root package) converts its MachineConfig into a
// Spec; this package imports only image packages and agentproto.
package bootfiles

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shakedown-dev/shakedown/image/boot"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/debian"
	"github.com/shakedown-dev/shakedown/image/disk"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/lockfile"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// Step names, as the testbed's progress events carry them (see the root
// package's Step constants, which document them).
const (
	StepKernel    = "resolve kernel"
	StepAgent     = "build agent"
	StepBusybox   = "fetch busybox"
	StepPackages  = "fetch packages"
	StepInitramfs = "build initramfs"
	StepRootfs    = "build root file system"
	StepDisk      = "build root disk"
)

// Spec is what of a machine's declaration decides what it boots.
type Spec struct {
	// Name is the machine's, for messages.
	Name                       string
	Files                      []initramfs.File
	Packages, Modules          []string
	LockFile                   string
	Kernel, ModulesDir, Initrd string
	Services                   []agentproto.Service
	Debian                     *debian.System
	// NICs and Disks say whether the machine has network interfaces and
	// disks, whose drivers the initramfs then loads.
	NICs, Disks bool
}

// Progress is where a build reports.
type Progress struct {
	// Begin reports the start of a step and returns what reports its
	// end; nil reports nothing.
	Begin func(step string) func(error)
	// Source fetches packages (apt, watched for downloads).
	Source deb.Source
	// Logf says what was built, and which lock file was written.
	Logf func(format string, args ...any)
}

func (p Progress) begin(step string) func(error) {
	if p.Begin == nil {
		return func(error) {}
	}
	return p.Begin(step)
}

func (p Progress) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

// Cmdline is the kernel command line of machine name: the serial
// console, the hostname for the agent, and for a Debian system the root
// (for the initramfs's agent and for tools that read root=), the hostname
// for systemd and interfaces named eth0, eth1, ... as the agent counts
// them, not by their PCI slot; then the user's args.
func Cmdline(name string, debian bool, args []string) string {
	a := []string{
		"console=ttyS0",
		// Reboot at once on a panic; with -no-reboot QEMU then exits and
		// the waiting verb fails within a second, panic text included.
		"panic=-1",
		// Test machines need no protection from each other's speculation,
		// and under TCG the page-table switches it costs are expensive.
		"mitigations=off",
		agentproto.ParamHostname + "=" + name,
	}
	if debian {
		a = append(a, "root=/dev/vda", "rw", agentproto.ParamRoot+"=/dev/vda", "systemd.hostname="+name, "net.ifnames=0")
	}
	return strings.Join(append(a, args...), " ")
}

// Files are what QEMU boots: a kernel and an initramfs, and for a Debian
// system the root disk image to put under the machine's overlay.
type Files struct {
	Kernel, Initrd, Root string
}

// Build resolves and builds, or finds in c, what spec boots, pinned by
// its lock file if it has one, and writes the lock file if it has none.
func Build(ctx context.Context, c *cache.Cache, spec Spec, p Progress) (Files, error) {
	if spec.Debian != nil {
		return buildDebianFiles(ctx, c, spec, p)
	}
	var lock *pkgset.Lock
	if spec.LockFile != "" {
		var err error
		if lock, err = lockfile.Read(spec.LockFile, spec.Packages); err != nil {
			return Files{}, err
		}
	}
	img, err := Initramfs(ctx, c, spec, lock, p)
	if err != nil {
		return Files{}, err
	}
	if len(spec.Packages) > 0 {
		p.logf("shakedown: initramfs %s with packages %s; lock in %s", img.Key[:min(len(img.Key), 12)], pkgset.Summary(img.Packages), img.LockPath)
	}
	if spec.LockFile != "" && lock == nil {
		if err := keepLock(spec, img.Lock, p); err != nil {
			return Files{}, err
		}
	}
	return Files{Kernel: img.Kernel, Initrd: img.Path}, nil
}

// bootSteps name boot.Build's steps.
var bootSteps = map[boot.Step]string{boot.StepKernel: StepKernel, boot.StepAgent: StepAgent,
	boot.StepBusybox: StepBusybox, boot.StepPackages: StepPackages, boot.StepInitramfs: StepInitramfs}

// Initramfs builds, or finds in c, the kernel and initramfs of an
// initramfs machine, pinned by lock if it is not nil.
func Initramfs(ctx context.Context, c *cache.Cache, spec Spec, lock *pkgset.Lock, p Progress) (*boot.Image, error) {
	bc := boot.Config{Kernel: spec.Kernel, ModulesDir: spec.ModulesDir, Initrd: spec.Initrd,
		Modules: spec.Modules, Packages: spec.Packages, Lock: lock, Source: p.Source, Files: spec.Files,
		Services: spec.Services, Begin: func(s boot.Step) func(error) { return p.begin(bootSteps[s]) }}
	if spec.NICs {
		bc.DeviceModules = append(bc.DeviceModules, "virtio_net")
	}
	if spec.Disks {
		bc.DeviceModules = append(bc.DeviceModules, disk.Modules...)
	}
	return boot.Build(ctx, c, bc)
}

// CheckDebian rejects what a Debian machine cannot have, when the
// machine is declared.
func CheckDebian(spec Spec) error {
	d := spec.Debian
	if d == nil {
		return nil
	}
	var errs []error
	if spec.Kernel != "" || spec.Initrd != "" {
		errs = append(errs, errors.New("a Debian system boots Debian's kernel with its own initramfs: leave Kernel and Initrd empty"))
	}
	if len(spec.Packages) > 0 {
		errs = append(errs, errors.New("packages of a Debian system go in Debian.Packages, not Packages (the initramfs's)"))
	}
	if len(spec.Services) > 0 {
		errs = append(errs, errors.New("a Debian system runs systemd units: declare them in Debian.Units, not Services"))
	}
	return errors.Join(append(errs, d.Check())...)
}

// debianSteps name debian.Build's steps.
var debianSteps = map[debian.Step]string{debian.StepRootfs: StepRootfs, debian.StepDisk: StepDisk}

// Debian builds, or finds in c, the root disk, kernel and initramfs of a
// machine with spec.Debian set.
func Debian(ctx context.Context, c *cache.Cache, spec Spec, p Progress) (*debian.Image, error) {
	if err := CheckDebian(spec); err != nil {
		return nil, err
	}
	end := p.begin(StepKernel)
	k, err := kernel.Debian(ctx, c, p.Source)
	end(err)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	end = p.begin(StepAgent)
	agent, err := agentbuild.Path(ctx, filepath.Join(c.Root, agentbuild.CacheKind))
	end(err)
	if err != nil {
		return nil, err
	}
	ds := debian.Spec{System: *spec.Debian, Modules: spec.Modules, Agent: agent, Kernel: k}
	for _, f := range spec.Files {
		ds.Files = append(ds.Files, debian.File{Guest: f.Guest, Host: f.Host, Data: f.Data, Mode: f.Mode})
	}
	return debian.Build(ctx, c, ds, debian.Options{Source: p.Source, Logf: p.Logf,
		Begin: func(s debian.Step) func(error) { return p.begin(debianSteps[s]) }})
}

func buildDebianFiles(ctx context.Context, c *cache.Cache, spec Spec, p Progress) (Files, error) {
	var lock *pkgset.Lock
	if spec.LockFile != "" {
		var err error
		if lock, err = lockfile.Read(spec.LockFile, spec.Debian.Packages); err != nil {
			return Files{}, err
		}
		if lock != nil {
			d := *spec.Debian
			d.Lock = lock
			spec.Debian = &d
		}
	}
	img, err := Debian(ctx, c, spec, p)
	if err != nil {
		return Files{}, err
	}
	if spec.LockFile != "" && lock == nil {
		if img.Lock == nil {
			return Files{}, fmt.Errorf("lock file %s: the build could not lock its packages (see the log)", spec.LockFile)
		}
		if err := keepLock(spec, img.Lock, p); err != nil {
			return Files{}, err
		}
	}
	return Files{Kernel: img.Kernel, Initrd: img.Initrd, Root: img.Path}, nil
}

// keepLock writes the lock a build used to the machine's lock file,
// which had none, for the test to commit (see package image/lockfile).
func keepLock(spec Spec, l *pkgset.Lock, p Progress) error {
	if err := pkgset.WriteLock(spec.LockFile, l); err != nil {
		return err
	}
	p.logf("shakedown: %s: wrote lock file %s (commit it to pin these packages)", spec.Name, spec.LockFile)
	return nil
}
