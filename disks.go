package shakedown

import (
	"path/filepath"

	"github.com/shakedown-dev/shakedown/image/disk"
)

// Disk is an extra virtio block device of a machine: blank, filled from a
// host directory, or an existing disk image; see disk.Spec for its fields.
//
// The guest sees the disks as /dev/vda, /dev/vdb, ... in the order of
// MachineConfig.Disks (shakedown's initramfs boots from RAM, so no other
// virtio disk takes a name first), and each disk's serial
// (/sys/block/vdX/serial) is its Name. The disk files live in the run
// directory and belong to the machine for the whole test: what the guest
// writes survives Reboot, Shutdown and Start, and Crash keeps what reached
// the disk.
type Disk = disk.Spec

// ErrDiskTooSmall is wrapped by the error for a Contents disk whose
// SizeMiB cannot hold its contents, and for a DebianSystem whose SizeMiB
// cannot hold its root file system.
var ErrDiskTooSmall = disk.ErrTooSmall

// prepareDisks makes the machine's disk files in the run directory.
func (m *machine) prepareDisks() ([]disk.File, error) {
	return disk.Prepare(m.disksDir(), m.cfg.Disks)
}

// disksDir holds the machine's disk files, its root disk's overlay too.
func (m *machine) disksDir() string { return filepath.Join(m.tb.dir, m.name+"-disks") }
