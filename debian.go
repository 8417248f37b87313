package shakedown

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/debian"
	"github.com/shakedown-dev/shakedown/image/disk"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/lockfile"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// DebianSystem makes a machine a full Debian system with systemd, booted
// from a root disk instead of an initramfs in RAM. Its fields (Suite,
// Mirror, Packages, Units, SizeMiB, Lock) say what is installed; package
// image/debian documents them and builds the disk.
//
// The root file system is built once with mmdebstrap (which needs root):
// the minbase variant plus systemd-sysv, udev, iproute2 and kmod, and the
// Packages. shakedown adds its agent as a systemd unit started early, the
// guest kernel's modules, the machine's Files and the Units, and makes it
// an ext4 image in the cache. Each machine boots it through a qcow2
// overlay in the run directory, so the image stays read-only and shared
// while what the guest writes survives Reboot.
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
type DebianSystem = debian.System

// DefaultDebianBootTimeout bounds the boot of a Debian machine, until its
// agent answers, when MachineConfig.BootTimeout is 0: systemd gets the
// agent's unit running after udev has probed the devices, which under TCG
// takes 20-40 s on a loaded host.
const DefaultDebianBootTimeout = 3 * time.Minute

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
	return errors.Join(append(errs, d.Check())...)
}

// DebianImage is a built Debian root disk and what boots it (see
// debian.Image).
type DebianImage = debian.Image

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

// debianSteps are the Event.Step of debian.Build's steps.
var debianSteps = map[debian.Step]string{debian.StepRootfs: StepRootfs, debian.StepDisk: StepDisk}

func buildDebian(ctx context.Context, c *cache.Cache, cfg MachineConfig, logf func(string, ...any), rep reporter) (*DebianImage, error) {
	if err := checkDebian(cfg); err != nil {
		return nil, err
	}
	src := rep.watch(deb.Apt{})
	end := rep.begin(StepKernel)
	k, err := kernel.Debian(ctx, c, src)
	end(err)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	end = rep.begin(StepAgent)
	agent, err := agentbuild.Path(ctx, filepath.Join(c.Root, "agent-build"))
	end(err)
	if err != nil {
		return nil, err
	}
	spec := debian.Spec{System: *cfg.Debian, Modules: cfg.Modules, Agent: agent, Kernel: k}
	for _, f := range cfg.Files {
		spec.Files = append(spec.Files, debian.File{Guest: f.Guest, Host: f.Host, Data: f.Data, Mode: f.Mode})
	}
	img, err := debian.Build(ctx, c, spec, debian.Options{Source: src, Logf: logf,
		Begin: func(s debian.Step) func(error) { return rep.begin(debianSteps[s]) }})
	if err != nil {
		return nil, err
	}
	return img, nil
}

func (tb *Testbed) debianBootFiles(ctx context.Context, name string, cfg MachineConfig) (bootFiles, error) {
	var lock *pkgset.Lock
	if cfg.LockFile != "" {
		var err error
		if lock, err = lockfile.Read(cfg.LockFile, cfg.Debian.Packages); err != nil {
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
	return []string{"root=/dev/vda", "rw", agentproto.ParamRoot + "=/dev/vda", "systemd.hostname=" + name, "net.ifnames=0"}
}

// withRootDisk puts the machine's overlay of the Debian root image first
// among its disks, making it /dev/vda; the overlay is made on the first
// boot and kept, so the guest's writes survive Reboot.
func (m *machine) withRootDisk(base string, disks []disk.File) ([]disk.File, error) {
	dir := m.disksDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("root disk: %w", err)
	}
	root := disk.File{Name: "root", Path: filepath.Join(dir, "root.qcow2"), Format: "qcow2"}
	if err := disk.Once(root.Path, func(tmp string) error { return disk.Overlay(base, tmp) }); err != nil {
		return nil, fmt.Errorf("root disk: %w", err)
	}
	return append([]disk.File{root}, disks...), nil
}
