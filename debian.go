package shakedown

import (
	"context"
	"time"

	"github.com/shakedown-dev/shakedown/image/bootfiles"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/debian"
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
	return bootfiles.Debian(ctx, c, bootSpec("", cfg), bootfiles.Reporter{Fn: bootfiles.Serialized(opts.Progress)}.Progress(nil))
}
