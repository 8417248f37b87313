package shakedown

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Disk is an extra virtio block device of a machine: blank, filled from a
// host directory, or an existing disk image.
//
// The guest sees the disks as /dev/vda, /dev/vdb, ... in the order of
// MachineConfig.Disks (shakedown's initramfs boots from RAM, so no other
// virtio disk takes a name first), and each disk's serial
// (/sys/block/vdX/serial) is its Name. The disk files live in the run
// directory and belong to the machine for the whole test: what the guest
// writes survives Reboot, Shutdown and Start, and Crash keeps what reached
// the disk.
type Disk struct {
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

// ErrDiskTooSmall is wrapped by the error for a Contents disk whose
// SizeMiB cannot hold its contents.
var ErrDiskTooSmall = errors.New("disk too small for its contents")

// diskModules are loaded when a machine has disks: the virtio block driver
// and ext4 (which also mounts ext2, as busybox's mke2fs makes), with the
// crc32c it asks for only as a soft dependency (modules.softdep), which
// modules.dep does not list.
var diskModules = []string{"virtio_blk", "crc32c_generic", "ext4"}

var diskNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,20}$`)

const mib = 1 << 20

// diskName is d's name, or its default by position.
func diskName(i int, d Disk) string {
	if d.Name != "" {
		return d.Name
	}
	return fmt.Sprintf("disk%d", i)
}

// checkDisks rejects disks that cannot be built, when the machine is
// declared: bad names, missing paths, a size that cannot hold the
// contents.
func checkDisks(disks []Disk) error {
	seen := map[string]bool{}
	for i, d := range disks {
		name := diskName(i, d)
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
				need, _, err := contentsSize(d.Contents)
				if err != nil {
					return fmt.Errorf("disk %s: contents: %w", name, err)
				}
				if int64(d.SizeMiB)*mib < need {
					return fmt.Errorf("disk %s: %w: %s needs at least %d MiB, SizeMiB is %d", name, ErrDiskTooSmall, d.Contents, (need+mib-1)/mib, d.SizeMiB)
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

// contentsSize estimates the space dir takes on ext4: allocated blocks of
// its files (holes are free) and a block per directory and symlink, and
// counts its entries for the inode table.
func contentsSize(dir string) (bytes int64, entries int, err error) {
	const block = 4096
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		entries++
		info, err := e.Info()
		if err != nil {
			return err
		}
		size := int64(block)
		if info.Mode().IsRegular() {
			size = info.Size()
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				size = min(size, st.Blocks*512)
			}
		}
		bytes += (size + block - 1) / block * block
		return nil
	})
	// Inodes take 256 bytes each.
	return bytes + int64(entries)*256, entries, err
}

// autoSizeMiB is the size of a Contents disk with SizeMiB 0: the contents,
// a tenth more, and room for ext4's own metadata and a journal.
func autoSizeMiB(need int64) int {
	return int((need+need/10+mib-1)/mib) + 24
}

// diskFile is a disk as QEMU opens it.
type diskFile struct {
	name, path, format string
	readOnly           bool
}

// prepareDisks makes the machine's disk files, on its first boot, in the
// run directory, and returns them in order; later boots find them there
// and reuse them, which is what keeps disk contents across Reboot.
func (m *machine) prepareDisks() ([]diskFile, error) {
	if len(m.cfg.Disks) == 0 {
		return nil, nil
	}
	dir := filepath.Join(m.tb.dir, m.name+"-disks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	var files []diskFile
	for i, d := range m.cfg.Disks {
		name := diskName(i, d)
		df := diskFile{name: name, format: "raw", readOnly: d.ReadOnly}
		var err error
		switch {
		case d.Image != "" && d.ReadOnly:
			df.path, err = filepath.Abs(d.Image)
			if err == nil {
				df.format, err = imageFormat(df.path)
			}
		case d.Image != "":
			df.path, df.format = filepath.Join(dir, name+".qcow2"), "qcow2"
			err = once(df.path, func(tmp string) error { return overlay(d.Image, tmp) })
		case d.Contents != "":
			df.path = filepath.Join(dir, name+".ext4")
			err = once(df.path, func(tmp string) error { return buildExt4(tmp, name, d, "") })
		default:
			df.path = filepath.Join(dir, name+".raw")
			err = once(df.path, func(tmp string) error { return sparseFile(tmp, int64(d.SizeMiB)*mib) })
		}
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", name, err)
		}
		files = append(files, df)
	}
	return files, nil
}

// once makes path with build (writing to a temporary name, renamed when
// complete) unless it exists: a boot that failed half-way leaves no
// half-built disk behind.
func once(path string, build func(tmp string) error) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := build(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func sparseFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// imageFormat tells qcow2 from raw by the header.
func imageFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if n, _ := f.Read(magic); n == 4 && bytes.Equal(magic, []byte("QFI\xfb")) {
		return "qcow2", nil
	}
	return "raw", nil
}

// overlay creates a qcow2 file whose reads fall through to image and whose
// writes stay in it.
func overlay(image, path string) error {
	abs, err := filepath.Abs(image)
	if err != nil {
		return err
	}
	format, err := imageFormat(abs)
	if err != nil {
		return err
	}
	bin, err := findTool("qemu-img")
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, "create", "-q", "-f", "qcow2", "-b", abs, "-F", format, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// buildExt4 makes an ext4 image of d.Contents at path.
// A seed makes the file system reproducible: its UUID and directory hash
// seed come from the seed, and its own times and every inode's are
// debianEpoch; without one, mke2fs makes them up and copies the tree's.
func buildExt4(path, name string, d Disk, seed string) error {
	bin, err := findTool("mke2fs")
	if err != nil {
		return err
	}
	need, entries, err := contentsSize(d.Contents)
	if err != nil {
		return fmt.Errorf("contents: %w", err)
	}
	size := d.SizeMiB
	if size == 0 {
		size = autoSizeMiB(need)
	}
	if err := sparseFile(path, int64(size)*mib); err != nil {
		return err
	}
	args := mke2fsArgs(path, name, d, size, entries, seed)
	cmd := exec.Command(bin, args...)
	if seed != "" {
		cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", debianEpoch))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "Could not allocate") || strings.Contains(msg, "No space left") {
			return fmt.Errorf("%w: %d MiB cannot hold %s (about %d MiB): %s", ErrDiskTooSmall, size, d.Contents, (need+mib-1)/mib, lastLine(msg))
		}
		return fmt.Errorf("mke2fs: %v: %s", err, msg)
	}
	if seed != "" {
		return fixInodeTimes(path, debianEpoch)
	}
	return nil
}

// fixInodeTimes sets the access, change and modification times of every
// inode in use in the ext4 image at path to epoch. mke2fs -d copies them
// from the source tree, where the kernel sets ctime to the time of the
// last change and reading a file may move its atime: those cannot be set
// on the host, so all three are set in the image, with debugfs, which
// keeps the inodes' checksums right.
func fixInodeTimes(path string, epoch int64) error {
	dumpe2fs, err := findTool("dumpe2fs")
	if err != nil {
		return err
	}
	debugfs, err := findTool("debugfs")
	if err != nil {
		return err
	}
	out, err := exec.Command(dumpe2fs, path).Output()
	if err != nil {
		return fmt.Errorf("dumpe2fs %s: %w", path, err)
	}
	used, err := usedInodes(string(out))
	if err != nil {
		return fmt.Errorf("dumpe2fs %s: %w", path, err)
	}
	var cmds bytes.Buffer
	for _, ino := range used {
		for _, field := range []string{"atime", "ctime", "mtime"} {
			fmt.Fprintf(&cmds, "sif <%d> %s @%d\n", ino, field, epoch)
		}
	}
	cmd := exec.Command(debugfs, "-w", "-f", "-", path)
	cmd.Stdin = &cmds
	// Its own writes (the superblock's write time) at epoch too.
	cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", epoch))
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("debugfs %s: %v: %s", path, err, tailLines(string(b), 5))
	}
	// debugfs exits 0 whatever its commands did: it echoes each command
	// ("debugfs: sif ...") and its banner, and says nothing else unless a
	// command fails.
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs") {
			return fmt.Errorf("debugfs %s: %s", path, line)
		}
	}
	return nil
}

// usedInodes parses dumpe2fs's output into the numbers of the inodes in
// use, except the reserved ones below the first ordinary inode (11) other
// than the root directory (2).
func usedInodes(dump string) ([]int, error) {
	perGroup := 0
	var free [][]int // per group: the free inodes' ranges, flattened
	for _, line := range strings.Split(dump, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "Inodes per group:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("inodes per group %q: %w", v, err)
			}
			perGroup = n
			continue
		}
		v, ok := strings.CutPrefix(line, "Free inodes:")
		if !ok || perGroup == 0 {
			continue // the header's "Free inodes:" is a count
		}
		var ranges []int
		for _, r := range strings.Split(v, ",") {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || b < a {
				return nil, fmt.Errorf("free inodes %q", r)
			}
			ranges = append(ranges, a, b)
		}
		free = append(free, ranges)
	}
	if perGroup == 0 || len(free) == 0 {
		return nil, errors.New("no inode groups in its output")
	}
	var used []int
	for g, ranges := range free {
		next := g*perGroup + 1
		emit := func(to int) {
			for ino := next; ino < to; ino++ {
				if ino == 2 || ino >= 11 {
					used = append(used, ino)
				}
			}
		}
		for i := 0; i < len(ranges); i += 2 {
			emit(ranges[i])
			next = ranges[i+1] + 1
		}
		emit((g+1)*perGroup + 1)
	}
	return used, nil
}

// mke2fsArgs builds mke2fs's command line: 4 KiB blocks whatever the
// size, root-owned files, no reserved blocks, no journal on a read-only
// disk, and inodes enough for the entries.
func mke2fsArgs(path, name string, d Disk, sizeMiB, entries int, seed string) []string {
	ext := "root_owner=0:0"
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-L", name}
	if seed != "" {
		u := seedUUID(seed)
		args = append(args, "-U", u)
		ext += ",hash_seed=" + u
	}
	args = append(args, "-E", ext, "-d", d.Contents)
	if d.ReadOnly {
		args = append(args, "-O", "^has_journal")
	}
	// mke2fs's default is an inode per 16 KiB.
	if want := entries*2 + 64; want > sizeMiB*mib/16384 {
		args = append(args, "-N", strconv.Itoa(want))
	}
	return append(args, path)
}

// seedUUID makes a version 4 style UUID of a seed's SHA-256.
func seedUUID(seed string) string {
	b := sha256.Sum256([]byte(seed))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// diskArgs returns QEMU's arguments for the disks, in order: each a drive
// without a default device and a virtio-blk PCI device with the disk's
// name as serial.
func diskArgs(disks []diskFile) []string {
	var args []string
	for i, d := range disks {
		drive := fmt.Sprintf("file=%s,if=none,id=disk%d,format=%s", strings.ReplaceAll(d.path, ",", ",,"), i, d.format)
		if d.readOnly {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive, "-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d,serial=%s", i, d.name))
	}
	return args
}
