package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Spec is an extra virtio block device of a machine (shakedown.Disk): blank, filled from a
// host directory, or an existing disk image.
//
// The guest sees the disks as /dev/vda, /dev/vdb, ... in the order of
// MachineConfig.Disks (shakedown's initramfs boots from RAM, so no other
// virtio disk takes a name first), and each disk's serial
// (/sys/block/vdX/serial) is its Name. The disk files live in the run
// directory and belong to the machine for the whole test: what the guest
// writes survives Reboot, Shutdown and Start, and Crash keeps what reached
// the disk.
type Spec struct {
	// Name appears in the disk's file name, its serial and errors; ""
	// means "disk0", "disk1", ... by position. At most 20 characters of
	// letters, digits, '.', '_' and '-'.
	Name string
	// SizeMiB is the size of a blank disk (required), or of a Contents
	// disk (0 means big enough for the contents and some room).
	SizeMiB int
	// ReadOnly attaches the disk read-only: writes fail in the guest.
	ReadOnly bool
	// Contents is a host directory copied onto a fresh ext4 file system
	// (with e2fsprogs' mke2fs -d; sparse files stay sparse), owned by
	// root. Large payloads such as airgap bundles go here instead of into
	// the initramfs, which lives in RAM. Mount it in the guest with
	// `mount /dev/vdX /mnt` (add `-o ro` for a ReadOnly disk).
	Contents string
	// Image is an existing disk image on the host (raw, or qcow2 by its
	// header). A ReadOnly one is attached as it is; otherwise the guest
	// writes to a copy-on-write overlay in the run directory (which needs
	// qemu-img), and the image itself is never changed.
	Image string
}

// Modules are loaded when a machine has disks: the virtio block driver
// and ext4 (which also mounts ext2, as busybox's mke2fs makes), with the
// crc32c it asks for only as a soft dependency (modules.softdep), which
// modules.dep does not list.
var Modules = []string{"virtio_blk", "crc32c_generic", "ext4"}

var diskNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,20}$`)

// name is d's name, or its default by position.
func name(i int, d Spec) string {
	if d.Name != "" {
		return d.Name
	}
	return fmt.Sprintf("disk%d", i)
}

// Check rejects disks that cannot be built, when the machine is
// declared: bad names, missing paths, a size that cannot hold the
// contents.
func Check(disks []Spec) error {
	seen := map[string]bool{}
	for i, d := range disks {
		name := name(i, d)
		if !diskNameRE.MatchString(name) {
			return fmt.Errorf("disk %q: a name has at most 20 letters, digits, '.', '_' or '-'", name)
		}
		if seen[name] {
			return fmt.Errorf("disk %s: declared twice", name)
		}
		seen[name] = true
		if d.SizeMiB < 0 {
			return fmt.Errorf("disk %s: negative size %d MiB", name, d.SizeMiB)
		}
		switch {
		case d.Contents != "" && d.Image != "":
			return fmt.Errorf("disk %s: set Contents or Image, not both", name)
		case d.Contents != "":
			st, err := os.Stat(d.Contents)
			if err != nil {
				return fmt.Errorf("disk %s: contents: %w", name, err)
			}
			if !st.IsDir() {
				return fmt.Errorf("disk %s: contents %s is not a directory", name, d.Contents)
			}
			if d.SizeMiB > 0 {
				need, _, err := ContentsSize(d.Contents)
				if err != nil {
					return fmt.Errorf("disk %s: contents: %w", name, err)
				}
				if int64(d.SizeMiB)*mib < need {
					return fmt.Errorf("disk %s: %w: %s needs at least %d MiB, SizeMiB is %d", name, ErrTooSmall, d.Contents, (need+mib-1)/mib, d.SizeMiB)
				}
			}
		case d.Image != "":
			if _, err := os.Stat(d.Image); err != nil {
				return fmt.Errorf("disk %s: image: %w", name, err)
			}
			if d.SizeMiB != 0 {
				return fmt.Errorf("disk %s: an Image disk has the image's size; leave SizeMiB 0", name)
			}
		default:
			if d.SizeMiB == 0 {
				return fmt.Errorf("disk %s: a blank disk needs SizeMiB", name)
			}
			if d.ReadOnly {
				return fmt.Errorf("disk %s: a blank read-only disk can hold nothing: give it Contents or an Image", name)
			}
		}
	}
	return nil
}

// File is a disk as QEMU opens it.
type File struct {
	// Name is the disk's serial.
	Name, Path string
	// Format is "raw" or "qcow2".
	Format   string
	ReadOnly bool
}

// Prepare makes a machine's disk files in dir, on its first boot, and
// returns them in order; later boots find them there and reuse them,
// which is what keeps disk contents across reboots.
func Prepare(dir string, disks []Spec) ([]File, error) {
	if len(disks) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	var files []File
	for i, d := range disks {
		name := name(i, d)
		df := File{Name: name, Format: "raw", ReadOnly: d.ReadOnly}
		var err error
		switch {
		case d.Image != "" && d.ReadOnly:
			df.Path, err = filepath.Abs(d.Image)
			if err == nil {
				df.Format, err = Format(df.Path)
			}
		case d.Image != "":
			df.Path, df.Format = filepath.Join(dir, name+".qcow2"), "qcow2"
			err = Once(df.Path, func(tmp string) error { return Overlay(d.Image, tmp) })
		case d.Contents != "":
			df.Path = filepath.Join(dir, name+".ext4")
			err = Once(df.Path, Ext4{Contents: d.Contents, Label: name, SizeMiB: d.SizeMiB, NoJournal: d.ReadOnly}.Build)
		default:
			df.Path = filepath.Join(dir, name+".raw")
			err = Once(df.Path, func(tmp string) error { return Sparse(tmp, int64(d.SizeMiB)*mib) })
		}
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", name, err)
		}
		files = append(files, df)
	}
	return files, nil
}

// WithRoot puts a qcow2 overlay of the root image base first among
// disks, making it /dev/vda: the overlay, root.qcow2 in dir, is made once
// and kept, so the guest's writes survive reboots.
func WithRoot(dir, base string, disks []File) ([]File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("root disk: %w", err)
	}
	root := File{Name: "root", Path: filepath.Join(dir, "root.qcow2"), Format: "qcow2"}
	if err := Once(root.Path, func(tmp string) error { return Overlay(base, tmp) }); err != nil {
		return nil, fmt.Errorf("root disk: %w", err)
	}
	return append([]File{root}, disks...), nil
}

// QEMUArgs returns QEMU's arguments for the disks, in order: each a drive
// without a default device and a virtio-blk PCI device with the disk's
// name as serial.
func QEMUArgs(disks []File) []string {
	var args []string
	for i, d := range disks {
		drive := fmt.Sprintf("file=%s,if=none,id=disk%d,format=%s", strings.ReplaceAll(d.Path, ",", ",,"), i, d.Format)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive, "-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d,serial=%s", i, d.Name))
	}
	return args
}
