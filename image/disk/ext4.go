package disk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/shakedown-dev/shakedown/internal/hosttools"
)

// Ext4 is an ext4 file system made of a host directory with mke2fs -d,
// which keeps the tree's owners, modes, xattrs (file capabilities), hard
// links and holes (sparse files stay sparse); files are owned by root.
type Ext4 struct {
	// Contents is the host directory copied onto the file system.
	Contents string
	// Label is the file system's label (mke2fs -L).
	Label string
	// SizeMiB is the file system's size; 0 means AutoSizeMiB of the
	// contents.
	SizeMiB int
	// NoJournal leaves out the journal, which a disk the guest never
	// writes does not need.
	NoJournal bool
	// Seed, if set, makes the file system reproducible: its UUID and
	// directory hash seed come from the seed, and its own times and every
	// inode's are Epoch (seconds since 1970). Without one, mke2fs makes
	// them up and copies the tree's.
	Seed  string
	Epoch int64
}

// Build makes path an image of the file system: a sparse file of its
// size, filled by mke2fs. A size that cannot hold the contents fails
// with ErrTooSmall.
func (e Ext4) Build(path string) error {
	bin, err := hosttools.Find("mke2fs")
	if err != nil {
		return err
	}
	need, entries, err := ContentsSize(e.Contents)
	if err != nil {
		return fmt.Errorf("contents: %w", err)
	}
	size := e.SizeMiB
	if size == 0 {
		size = AutoSizeMiB(need)
	}
	if err := Sparse(path, int64(size)*mib); err != nil {
		return err
	}
	cmd := exec.Command(bin, e.mke2fsArgs(path, size, entries)...)
	if e.Seed != "" {
		cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", e.Epoch))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "Could not allocate") || strings.Contains(msg, "No space left") {
			return fmt.Errorf("%w: %d MiB cannot hold %s (about %d MiB): %s", ErrTooSmall, size, e.Contents, (need+mib-1)/mib, tailLines(msg, 1))
		}
		return fmt.Errorf("mke2fs: %v: %s", err, msg)
	}
	if e.Seed != "" {
		return fixInodeTimes(path, e.Epoch)
	}
	return nil
}

// mke2fsArgs builds mke2fs's command line: 4 KiB blocks whatever the
// size, root-owned files, no reserved blocks, and inodes enough for the
// entries.
func (e Ext4) mke2fsArgs(path string, sizeMiB, entries int) []string {
	ext := "root_owner=0:0"
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-L", e.Label}
	if e.Seed != "" {
		u := seedUUID(e.Seed)
		args = append(args, "-U", u)
		ext += ",hash_seed=" + u
	}
	args = append(args, "-E", ext, "-d", e.Contents)
	if e.NoJournal {
		args = append(args, "-O", "^has_journal")
	}
	// mke2fs's default is an inode per 16 KiB.
	if want := entries*2 + 64; want > sizeMiB*mib/16384 {
		args = append(args, "-N", strconv.Itoa(want))
	}
	return append(args, path)
}

// ContentsSize estimates the space dir takes on ext4: allocated blocks of
// its files (holes are free) and a block per directory and symlink, and
// counts its entries for the inode table.
func ContentsSize(dir string) (bytes int64, entries int, err error) {
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

// AutoSizeMiB is the size of a file system for contents of need bytes
// (see ContentsSize): the contents, a tenth more, and room for ext4's own
// metadata and a journal.
func AutoSizeMiB(need int64) int {
	return int((need+need/10+mib-1)/mib) + 24
}

// seedUUID makes a version 4 style UUID of a seed's SHA-256.
func seedUUID(seed string) string {
	b := sha256.Sum256([]byte(seed))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// fixInodeTimes sets the access, change and modification times of every
// inode in use in the ext4 image at path to epoch. mke2fs -d copies them
// from the source tree, where the kernel sets ctime to the time of the
// last change and reading a file may move its atime: those cannot be set
// on the host, so all three are set in the image, with debugfs, which
// keeps the inodes' checksums right.
func fixInodeTimes(path string, epoch int64) error {
	dumpe2fs, err := hosttools.Find("dumpe2fs")
	if err != nil {
		return err
	}
	debugfs, err := hosttools.Find("debugfs")
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
