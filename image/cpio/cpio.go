// Package cpio owns the writing of reproducible "newc" cpio archives, the format the Linux kernel unpacks as an initramfs, and imports only the standard library.
package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Format constants of the "newc" (SVR4 without checksum) header, as read
// by the kernel's init/initramfs.c and by GNU cpio -H newc.
const (
	magic      = "070701"
	headerSize = 6 + 13*8 // magic plus thirteen 8-digit hex fields
	trailer    = "TRAILER!!!"
	// blockSize is the size the finished archive is padded to. The kernel
	// does not need it, but GNU cpio writes 512-byte blocks and tools that
	// concatenate archives (an early microcode cpio, then ours) expect it.
	blockSize = 512
	// maxSize is the largest file newc's 8 hex digits can describe.
	maxSize = 1<<32 - 1
)

// Unix file type bits for the mode field (see inode(7)).
const (
	typeChar = 0o020000
	typeDir  = 0o040000
	typeBlk  = 0o060000
	typeReg  = 0o100000
	typeLink = 0o120000
)

// ErrClosed is returned by every method of a Writer after Close.
var ErrClosed = errors.New("cpio: writer closed")

// Writer writes a newc cpio archive whose bytes depend only on the calls
// made: entries appear in call order, with mtime 0, uid and gid 0, inode
// numbers counting up from 1 and device numbers 0, so the same calls give
// the same archive on any host. The caller creates parent directories
// before their children; the kernel does not create missing parents.
//
// Modes carry permission bits plus setuid, setgid and sticky, given either
// as fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky or Unix-style as 0o4000,
// 0o2000, 0o1000.
//
// A Writer does not close the io.Writer it wraps. Errors are sticky: after
// a failed write every later call returns the same error.
type Writer struct {
	out    countWriter
	ino    uint32
	names  map[string]bool
	err    error
	closed bool
}

// countWriter counts what it passes on, for the final padding. It has no
// ReadFrom, so io.Copy cannot bypass the count.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewWriter returns a Writer that writes an archive to w. The caller must
// call Close to write the trailer; without it the kernel rejects the
// archive.
func NewWriter(w io.Writer) *Writer {
	return &Writer{out: countWriter{w: w}, names: make(map[string]bool)}
}

// header is one newc header; unlisted fields (uid, gid, mtime, devmajor,
// devminor, check) are always zero.
type header struct {
	ino       uint32
	mode      uint32
	nlink     uint32
	size      uint32
	rdevMajor uint32
	rdevMinor uint32
	name      string
}

// Dir adds a directory. mode carries the permission bits (and setuid,
// setgid, sticky); fs.ModeDir may be set or not.
func (w *Writer) Dir(name string, mode fs.FileMode) error {
	m, err := unixMode(mode, fs.ModeDir, typeDir)
	if err != nil {
		return w.fail("dir", name, err)
	}
	// Two links: the entry in its parent and its own ".", as a real
	// filesystem would report for a directory without subdirectories.
	return w.entry("dir", name, header{mode: m, nlink: 2}, nil, 0)
}

// File adds a regular file whose content is held in memory.
func (w *Writer) File(name string, mode fs.FileMode, data []byte) error {
	return w.FileFrom(name, mode, int64(len(data)), bytes.NewReader(data))
}

// FileFrom adds a regular file of size bytes read from r, so large files
// stream through without being held in memory. r must yield exactly size
// bytes: a shorter or longer stream (a host file that changed after it was
// measured) is an error, because the header already promised size.
func (w *Writer) FileFrom(name string, mode fs.FileMode, size int64, r io.Reader) error {
	m, err := unixMode(mode, 0, typeReg)
	if err != nil {
		return w.fail("file", name, err)
	}
	if size < 0 || size > maxSize {
		return w.fail("file", name, fmt.Errorf("size %d out of newc's range 0..%d", size, int64(maxSize)))
	}
	return w.entry("file", name, header{mode: m, nlink: 1, size: uint32(size)}, r, size)
}

// Symlink adds a symbolic link to target, which is stored as given
// (absolute targets stay absolute: they resolve inside the guest).
func (w *Writer) Symlink(name, target string) error {
	if target == "" {
		return w.fail("symlink", name, errors.New("empty target"))
	}
	if int64(len(target)) > maxSize {
		return w.fail("symlink", name, errors.New("target too long"))
	}
	h := header{mode: typeLink | 0o777, nlink: 1, size: uint32(len(target))}
	return w.entry("symlink", name, h, strings.NewReader(target), int64(len(target)))
}

// CharDev adds a character device node with device number major:minor,
// such as dev/console (5:1), which the kernel opens before any devtmpfs
// is mounted.
func (w *Writer) CharDev(name string, mode fs.FileMode, major, minor uint32) error {
	m, err := unixMode(mode, fs.ModeDevice|fs.ModeCharDevice, typeChar)
	if err != nil {
		return w.fail("char device", name, err)
	}
	h := header{mode: m, nlink: 1, rdevMajor: major, rdevMinor: minor}
	return w.entry("char device", name, h, nil, 0)
}

// BlockDev adds a block device node with device number major:minor.
func (w *Writer) BlockDev(name string, mode fs.FileMode, major, minor uint32) error {
	m, err := unixMode(mode, fs.ModeDevice, typeBlk)
	if err != nil {
		return w.fail("block device", name, err)
	}
	h := header{mode: m, nlink: 1, rdevMajor: major, rdevMinor: minor}
	return w.entry("block device", name, h, nil, 0)
}

// Close writes the trailer entry and pads the archive to a multiple of
// 512 bytes. It does not close the underlying io.Writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	// GNU cpio writes the trailer with inode 0 and one link; the kernel
	// only looks at the name.
	if err := w.writeHeader(header{nlink: 1, name: trailer}); err != nil {
		return w.setErr(fmt.Errorf("cpio: write trailer: %w", err))
	}
	if pad := (blockSize - w.out.n%blockSize) % blockSize; pad > 0 {
		if err := w.write(make([]byte, pad)); err != nil {
			return w.setErr(fmt.Errorf("cpio: pad archive: %w", err))
		}
	}
	return nil
}

// entry checks name, then writes the header and size bytes of body.
func (w *Writer) entry(kind, name string, h header, body io.Reader, size int64) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	clean, err := cleanName(name)
	if err != nil {
		return w.fail(kind, name, err)
	}
	if w.names[clean] {
		return w.fail(kind, name, errors.New("already in the archive"))
	}
	if w.ino == maxSize {
		return w.fail(kind, name, errors.New("more entries than newc inode numbers"))
	}
	w.names[clean] = true
	w.ino++
	h.ino = w.ino
	h.name = clean
	if err := w.writeHeader(h); err != nil {
		return w.setErr(fmt.Errorf("cpio: write %s %s: %w", kind, clean, err))
	}
	if size == 0 {
		return nil
	}
	n, err := io.Copy(&w.out, io.LimitReader(body, size))
	if err == nil && n < size {
		err = fmt.Errorf("got %d bytes, header says %d", n, size)
	}
	if err == nil {
		// Reading one byte more tells a stream that grew from one that
		// ended on time; the header cannot be taken back either way.
		var extra [1]byte
		if m, _ := io.ReadFull(body, extra[:]); m > 0 {
			err = fmt.Errorf("data longer than the %d bytes the header says", size)
		}
	}
	if err == nil {
		err = w.write(make([]byte, pad4(size)))
	}
	if err != nil {
		return w.setErr(fmt.Errorf("cpio: write %s %s: %w", kind, clean, err))
	}
	return nil
}

// writeHeader writes h, its NUL-terminated name and the padding that
// aligns the data that follows to 4 bytes.
func (w *Writer) writeHeader(h header) error {
	namesize := len(h.name) + 1
	buf := make([]byte, 0, headerSize+namesize+3)
	buf = append(buf, magic...)
	for _, v := range [13]uint32{
		h.ino, h.mode, 0, 0, h.nlink, 0, h.size,
		0, 0, h.rdevMajor, h.rdevMinor, uint32(namesize), 0,
	} {
		buf = fmt.Appendf(buf, "%08x", v)
	}
	buf = append(buf, h.name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(int64(len(buf))))...)
	return w.write(buf)
}

// write writes all of p or fails.
func (w *Writer) write(p []byte) error {
	_, err := w.out.Write(p)
	return err
}

// fail reports a rejected call. It does not make the error sticky: nothing
// was written, so the archive is still whole.
func (w *Writer) fail(kind, name string, err error) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	return fmt.Errorf("cpio: %s %q: %w", kind, name, err)
}

func (w *Writer) setErr(err error) error {
	w.err = err
	return err
}

// cleanName strips a leading "/" (the kernel and cpio -i want relative
// names) and rejects names that are empty, contain "..", or are not in
// clean form, since the kernel would create them as given.
func cleanName(name string) (string, error) {
	clean := strings.TrimLeft(name, "/")
	if clean == "" {
		return "", errors.New("empty name")
	}
	if strings.ContainsRune(clean, 0) {
		return "", errors.New("name contains NUL")
	}
	if !fs.ValidPath(clean) {
		return "", errors.New(`name must be a clean path without ".." or empty elements`)
	}
	return clean, nil
}

// unixMode converts mode to the st_mode value of the given type. allowed
// names the fs.FileMode type bits that may be set without changing the
// meaning (fs.ModeDir for a directory); any other type bit is an error
// rather than being dropped silently.
func unixMode(mode, allowed fs.FileMode, typ uint32) (uint32, error) {
	if other := mode & fs.ModeType &^ allowed; other != 0 {
		return 0, fmt.Errorf("mode %v has type bits %v that do not fit this entry", mode, other)
	}
	// Unix-style 0o4000/0o2000/0o1000 are honoured as well as Go's
	// fs.ModeSetuid and friends: fs.FileMode leaves those bits unused, and
	// "0o1777" for /tmp is how people write it.
	m := typ | uint32(mode&0o7777)
	if mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m, nil
}

// pad4 returns how many bytes bring n to a multiple of 4.
func pad4(n int64) int64 { return (4 - n%4) % 4 }
