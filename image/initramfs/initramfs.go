// Package initramfs owns the layout of a shakedown machine's initramfs
// (agent as /init, busybox, kernel modules, user files) and writes it as a
// reproducible newc cpio; it imports image/cpio, image/decompress,
// image/fstree and internal/suggest.
package initramfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"

	"github.com/shakedown-dev/shakedown/image/cpio"
	"github.com/shakedown-dev/shakedown/image/fstree"
)

// CacheKind is the cache kind of built initramfs images, whoever builds
// them (initramfs machines, and the root-mounting one of Debian machines).
const CacheKind = "initramfs"

// File places a host file, a host directory tree, or bytes at a guest path.
type File struct {
	// Guest is the absolute path in the guest, e.g. "/etc/hostname".
	// Paths with ".." elements are rejected rather than resolved.
	Guest string
	// Host is a host file or directory to copy. A symlink given here is
	// followed; symlinks inside a directory are kept as symlinks. Leave
	// it empty to use Data.
	Host string
	// Data is the file's content when Host is empty; both empty gives an
	// empty file.
	Data []byte
	// Mode holds permission bits, plus setuid, setgid and sticky as
	// fs.ModeSetuid etc. or as Unix 0o4000 etc. Zero means 0644 for Data,
	// and for a host file 0755 if any execute bit is set on the host, else
	// 0644, so that the host's umask does not leak into the image. For a
	// host directory Mode is the directory's own mode (zero: 0755); what
	// it contains gets those normalized modes.
	Mode fs.FileMode
}

// Spec is everything an initramfs holds. Zero values mean "not included";
// the zero Spec gives just the standard directories and device nodes.
type Spec struct {
	// Agent is the host path of the static agent binary; it becomes /init
	// (mode 0755), the program the kernel starts as PID 1.
	Agent string
	// Busybox is the host path of a static busybox; it becomes
	// /bin/busybox with a symlink for each applet it was built with
	// (bin/sh, sbin/ip, usr/bin/wget, ...). Build runs it on the host
	// with --list-full to learn them. A File at an applet's path replaces
	// the applet's symlink, which is how a real tool takes over from
	// busybox's.
	Busybox string
	// ModulesDir is a kernel's lib/modules/VERSION directory, with
	// modules.dep. Its base name is taken as the kernel version, so it
	// must be what the guest kernel's uname -r says.
	ModulesDir string
	// Modules names the modules wanted, e.g. "virtio_pci"; they and their
	// dependencies from modules.dep are included (see ModuleClosure).
	Modules []string
	// Entries are prepared entries placed exactly as given, such as the
	// files of unpacked Debian packages (pkgset.Set.Entries). They
	// replace busybox's applet links at the same path (a package's real
	// /usr/bin/wget wins) and give way to Files (the user's word is
	// last). Two Entries at one path are an error.
	Entries []fstree.Entry
	// Files are further files and directory trees.
	Files []File
}

// Build writes the initramfs for s to w as an uncompressed newc cpio (the
// kernel accepts it as is, and a compressed copy would defeat the
// content-addressed cache's deduplication for nothing on a local disk).
//
// The output is byte-identical for the same inputs: entries are sorted by
// path, parent directories are created (mode 0755) before their children,
// and no host metadata other than the execute bit (see File.Mode) gets in.
// It always holds the standard directories dev, proc, sys, run, tmp (1777),
// etc, root (0700), bin, sbin, usr/bin, usr/sbin and lib/modules, plus
// /dev/console (char 5,1) and /dev/null (char 1,3), because the kernel
// opens /dev/console for PID 1 before anything could mount devtmpfs.
//
// Modules are placed at lib/modules/VERSION/<their path in modules.dep>,
// decompressed if they were .ko.xz, .ko.zst or .ko.gz, so that the guest
// can load them with finit_module whatever the kernel's decompression
// support. The load order (dependencies first, one absolute guest path per
// line) goes to /etc/shakedown/modules for the agent, and a modules.dep
// trimmed to the included modules to lib/modules/VERSION for modprobe.
//
// On error, part of the archive may already be written to w; the caller
// must discard it.
func Build(w io.Writer, s Spec) error {
	nodes, err := plan(s)
	if err != nil {
		return fmt.Errorf("build initramfs: %w", err)
	}
	cw := cpio.NewWriter(w)
	for _, n := range nodes {
		if err := n.write(cw); err != nil {
			return fmt.Errorf("build initramfs: %w", err)
		}
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("build initramfs: %w", err)
	}
	return nil
}

// keyVersion names the layout Build produces. Change it whenever Build
// would write different bytes for the same inputs, so that cached archives
// from older code stop matching.
const keyVersion = "shakedown-initramfs-1"

// Key returns a hex SHA-256 over everything Build reads and decides: each
// entry's guest path, type, mode, link target and device number, and the
// content of every file (module files hashed as stored on the host, with
// their compression, which fixes their decompressed bytes). Host paths
// themselves are not part of it, so moving a checkout keeps the key. Two
// Specs with the same key build the same bytes, so callers can cache the
// archive content-addressed; computing the key reads every input once
// but writes and decompresses nothing.
func Key(s Spec) (string, error) {
	nodes, err := plan(s)
	if err != nil {
		return "", fmt.Errorf("initramfs key: %w", err)
	}
	h := sha256.New()
	field := func(s string) {
		// Length-prefixed, so no choice of names can make two different
		// entry lists hash the same byte stream.
		io.WriteString(h, strconv.Itoa(len(s)))
		io.WriteString(h, ":")
		io.WriteString(h, s)
	}
	field(keyVersion)
	for _, n := range nodes {
		field(strconv.Itoa(int(n.kind)))
		field(n.path)
		field(strconv.FormatUint(uint64(n.mode), 8))
		field(n.target)
		field(strconv.FormatUint(uint64(n.major), 10) + ":" + strconv.FormatUint(uint64(n.minor), 10))
		if n.kind != kindFile {
			continue
		}
		sum, err := n.contentHash()
		if err != nil {
			return "", fmt.Errorf("initramfs key: %w", err)
		}
		field(string(n.comp)) // "xz", "zstd", "gzip" or "", as keys have always spelled them
		field(sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// contentHash is the hex SHA-256 of a file node's content as it is read,
// before any decompression.
func (n *node) contentHash() (string, error) {
	h := sha256.New()
	if n.host == "" {
		h.Write(n.data)
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	f, err := os.Open(n.host)
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.origin, err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: read %s: %w", n.origin, n.host, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
