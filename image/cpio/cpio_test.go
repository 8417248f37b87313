package cpio

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

// entry is one archive member as the test reader sees it.
type entry struct {
	ino, mode, uid, gid, nlink, mtime uint32
	devMajor, devMinor                uint32
	rdevMajor, rdevMinor              uint32
	name                              string
	data                              string
}

// readArchive parses a newc archive independently of the writer and checks
// the invariants the kernel relies on: magic, zero check field, 4-byte
// alignment of names and data, a trailer, and padding to 512 bytes. The
// trailer is not returned.
func readArchive(t testing.TB, b []byte) []entry {
	t.Helper()
	if len(b)%512 != 0 {
		t.Fatalf("archive length %d is not a multiple of 512", len(b))
	}
	var out []entry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at offset %d is not 4-aligned", off)
		}
		if off+110 > len(b) {
			t.Fatalf("archive ends at %d inside a header, no trailer", len(b))
		}
		h := b[off : off+110]
		if got := string(h[:6]); got != "070701" {
			t.Fatalf("magic at offset %d: got %q, want %q", off, got, "070701")
		}
		var f [13]uint32
		for i := range f {
			s := string(h[6+8*i : 14+8*i])
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil || len(s) != 8 {
				t.Fatalf("header field %d at offset %d: %q is not 8 hex digits", i, off, s)
			}
			f[i] = uint32(v)
		}
		if f[12] != 0 {
			t.Fatalf("check field at offset %d: got %d, want 0", off, f[12])
		}
		namesize := int(f[11])
		nameEnd := off + 110 + namesize
		if namesize == 0 || nameEnd > len(b) || b[nameEnd-1] != 0 {
			t.Fatalf("name at offset %d is not NUL-terminated within namesize %d", off, namesize)
		}
		e := entry{
			ino: f[0], mode: f[1], uid: f[2], gid: f[3], nlink: f[4], mtime: f[5],
			devMajor: f[7], devMinor: f[8], rdevMajor: f[9], rdevMinor: f[10],
			name: string(b[off+110 : nameEnd-1]),
		}
		dataStart := nameEnd + int(pad4(int64(nameEnd)))
		for _, c := range b[nameEnd:dataStart] {
			if c != 0 {
				t.Fatalf("name padding of %q is not zero", e.name)
			}
		}
		dataEnd := dataStart + int(f[6])
		if dataEnd > len(b) {
			t.Fatalf("data of %q runs past the end of the archive", e.name)
		}
		e.data = string(b[dataStart:dataEnd])
		off = dataEnd + int(pad4(int64(dataEnd)))
		if e.name == "TRAILER!!!" {
			for _, c := range b[dataEnd:] {
				if c != 0 {
					t.Fatalf("bytes after the trailer are not zero padding")
				}
			}
			return out
		}
		out = append(out, e)
	}
}

// build runs fn against a fresh Writer, closes it and returns the bytes.
func build(t testing.TB, fn func(w *Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := fn(w); err != nil {
		t.Fatalf("write entries: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// sample writes one entry of each kind, with names and data of lengths
// that exercise every padding remainder.
func sample(w *Writer) error {
	steps := []func() error{
		func() error { return w.Dir("/etc", 0o755) },
		func() error { return w.Dir("tmp", 0o777|fs.ModeSticky|fs.ModeDir) },
		func() error { return w.File("etc/hostname", 0o644, []byte("node1\n")) },
		func() error { return w.File("etc/a", 0o600, []byte("abc")) },
		func() error { return w.File("etc/ab", 0o644, []byte("")) },
		func() error { return w.File("etc/abc", 0o755|fs.ModeSetuid, []byte("1234")) },
		func() error { return w.Dir("var", 0o1777) },
		func() error {
			return w.FileFrom("etc/stream", 0o644, 5, strings.NewReader("hello"))
		},
		func() error { return w.Symlink("etc/link", "/etc/hostname") },
		func() error { return w.Dir("dev", 0o755) },
		func() error { return w.CharDev("dev/console", 0o600, 5, 1) },
		func() error { return w.BlockDev("dev/vda", 0o660, 254, 0) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func TestEntries(t *testing.T) {
	got := readArchive(t, build(t, sample))
	want := []entry{
		{ino: 1, mode: 0o040755, nlink: 2, name: "etc"},
		{ino: 2, mode: 0o041777, nlink: 2, name: "tmp"},
		{ino: 3, mode: 0o100644, nlink: 1, name: "etc/hostname", data: "node1\n"},
		{ino: 4, mode: 0o100600, nlink: 1, name: "etc/a", data: "abc"},
		{ino: 5, mode: 0o100644, nlink: 1, name: "etc/ab"},
		{ino: 6, mode: 0o104755, nlink: 1, name: "etc/abc", data: "1234"},
		{ino: 7, mode: 0o041777, nlink: 2, name: "var"},
		{ino: 8, mode: 0o100644, nlink: 1, name: "etc/stream", data: "hello"},
		{ino: 9, mode: 0o120777, nlink: 1, name: "etc/link", data: "/etc/hostname"},
		{ino: 10, mode: 0o040755, nlink: 2, name: "dev"},
		{ino: 11, mode: 0o020600, nlink: 1, name: "dev/console", rdevMajor: 5, rdevMinor: 1},
		{ino: 12, mode: 0o060660, nlink: 1, name: "dev/vda", rdevMajor: 254},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestGolden pins the exact bytes of a tiny archive, so any change to the
// layout (and thereby to every cache key built on it) is deliberate.
// Refresh with: go test ./image/cpio -run Golden -update
func TestGolden(t *testing.T) {
	got := build(t, func(w *Writer) error {
		if err := w.Dir("bin", 0o755); err != nil {
			return err
		}
		if err := w.File("bin/hi", 0o755, []byte("#!/bin/sh\necho hi\n")); err != nil {
			return err
		}
		return w.Symlink("bin/hello", "hi")
	})
	golden := filepath.Join("testdata", "tiny.cpio")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("archive differs from %s:\ngot  %q\nwant %q", golden, got, want)
	}
	// The first header spelled out, so a reader of this test sees the
	// format without a hex dump: ino 1, mode 040755, nlink 2, namesize 4.
	wantHeader := "070701" + "00000001" + "000041ed" + "00000000" + "00000000" +
		"00000002" + "00000000" + "00000000" + "00000000" + "00000000" +
		"00000000" + "00000000" + "00000004" + "00000000" + "bin\x00"
	if gotHeader := string(got[:len(wantHeader)]); gotHeader != wantHeader {
		t.Errorf("first header: got %q, want %q", gotHeader, wantHeader)
	}
}

func TestReproducible(t *testing.T) {
	a := build(t, sample)
	b := build(t, sample)
	if !bytes.Equal(a, b) {
		t.Errorf("two archives from the same calls differ")
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func(w *Writer) error
		want string
	}{
		{"empty name", func(w *Writer) error { return w.Dir("/", 0o755) }, "empty name"},
		{"dotdot", func(w *Writer) error { return w.File("a/../b", 0o644, nil) }, "clean path"},
		{"trailing slash", func(w *Writer) error { return w.Dir("a/", 0o755) }, "clean path"},
		{"double slash", func(w *Writer) error { return w.Dir("a//b", 0o755) }, "clean path"},
		{"duplicate", func(w *Writer) error {
			if err := w.Dir("a", 0o755); err != nil {
				return err
			}
			return w.File("/a", 0o644, nil)
		}, "already in the archive"},
		{"dir mode on file", func(w *Writer) error { return w.File("a", fs.ModeDir|0o755, nil) }, "type bits"},
		{"symlink mode on dir", func(w *Writer) error { return w.Dir("a", fs.ModeSymlink|0o755) }, "type bits"},
		{"empty symlink", func(w *Writer) error { return w.Symlink("a", "") }, "empty target"},
		{"negative size", func(w *Writer) error { return w.FileFrom("a", 0o644, -1, strings.NewReader("")) }, "out of newc's range"},
		{"too big", func(w *Writer) error { return w.FileFrom("a", 0o644, 1<<32, strings.NewReader("")) }, "out of newc's range"},
		{"short stream", func(w *Writer) error { return w.FileFrom("a", 0o644, 5, strings.NewReader("abc")) }, "got 3 bytes, header says 5"},
		{"long stream", func(w *Writer) error { return w.FileFrom("a", 0o644, 2, strings.NewReader("abc")) }, "longer than"},
		{"reader error", func(w *Writer) error {
			return w.FileFrom("a", 0o644, 5, iotest.ErrReader(errors.New("disk on fire")))
		}, "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn(NewWriter(io.Discard))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// A rejected name writes nothing, so the archive stays usable.
func TestRejectedCallLeavesArchiveWhole(t *testing.T) {
	got := readArchive(t, build(t, func(w *Writer) error {
		if err := w.Dir("../x", 0o755); err == nil {
			return errors.New("Dir(../x) succeeded")
		}
		return w.Dir("x", 0o755)
	}))
	if len(got) != 1 || got[0].name != "x" || got[0].ino != 1 {
		t.Errorf("got %+v, want one entry x with inode 1", got)
	}
}

type failWriter struct{ left int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, errors.New("no space left")
	}
	f.left -= len(p)
	return len(p), nil
}

func TestStickyErrorAndClose(t *testing.T) {
	w := NewWriter(&failWriter{left: 300})
	if err := w.File("a", 0o644, make([]byte, 100)); err != nil {
		t.Fatalf("first file: %v", err)
	}
	err := w.File("b", 0o644, make([]byte, 100))
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("second file: got %v, want no space left", err)
	}
	if err2 := w.Dir("c", 0o755); err2 != err {
		t.Errorf("after a failed write: got %v, want the same error %v", err2, err)
	}
	if err2 := w.Close(); err2 != err {
		t.Errorf("Close after a failed write: got %v, want %v", err2, err)
	}

	w = NewWriter(io.Discard)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Dir("x", 0o755); !errors.Is(err, ErrClosed) {
		t.Errorf("Dir after Close: got %v, want ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: got %v, want ErrClosed", err)
	}
}

func TestEmptyArchive(t *testing.T) {
	b := build(t, func(*Writer) error { return nil })
	if len(b) != 512 {
		t.Errorf("got %d bytes, want 512", len(b))
	}
	if got := readArchive(t, b); len(got) != 0 {
		t.Errorf("got %d entries, want none", len(got))
	}
}

func needCpio(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed (Debian package cpio)")
	}
	return p
}

// TestGNUCpioList checks that GNU cpio reads every entry kind with the
// type, mode, owner, size and link target we wrote.
func TestGNUCpioList(t *testing.T) {
	cpio := needCpio(t)
	cmd := exec.Command(cpio, "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(build(t, sample))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	// Fields of cpio -tv: mode, links, owner, group, size (or major, minor
	// for devices), date (3 fields), name [-> target].
	want := []string{
		"drwxr-xr-x 2 root root 0 etc",
		"drwxrwxrwt 2 root root 0 tmp",
		"-rw-r--r-- 1 root root 6 etc/hostname",
		"-rw------- 1 root root 3 etc/a",
		"-rw-r--r-- 1 root root 0 etc/ab",
		"-rwsr-xr-x 1 root root 4 etc/abc",
		"drwxrwxrwt 2 root root 0 var",
		"-rw-r--r-- 1 root root 5 etc/stream",
		"lrwxrwxrwx 1 root root 13 etc/link -> /etc/hostname",
		"drwxr-xr-x 2 root root 0 dev",
		"crw------- 1 root root 5, 1 dev/console",
		"brw-rw---- 1 root root 254, 0 dev/vda",
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("cpio listed %d entries, want %d:\n%s", len(lines), len(want), out)
	}
	for i, line := range lines {
		f := strings.Fields(line)
		// Drop the three date fields, which depend on the local time zone.
		if len(f) < 9 {
			t.Fatalf("cpio line %q has too few fields", line)
		}
		dateAt := 5
		if strings.HasSuffix(f[4], ",") { // device: "major, minor"
			dateAt = 6
		}
		got := strings.Join(append(f[:dateAt:dateAt], f[dateAt+3:]...), " ")
		if got != want[i] {
			t.Errorf("line %d: got %q, want %q", i, got, want[i])
		}
	}
}

// TestGNUCpioExtract unpacks with GNU cpio and compares what lands on disk.
// Device nodes are left out: creating them needs privileges a test
// container may lack, and the listing test covers them.
func TestGNUCpioExtract(t *testing.T) {
	cpio := needCpio(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 70000) // over 1 MiB, streamed
	archive := build(t, func(w *Writer) error {
		for _, step := range []error{
			w.Dir("d", 0o750),
			w.Dir("d/sub", 0o755),
			w.File("d/f", 0o640, []byte("contents\n")),
			w.FileFrom("d/sub/big", 0o600, int64(len(big)), bytes.NewReader(big)),
			w.Symlink("d/l", "sub/big"),
		} {
			if step != nil {
				return step
			}
		}
		return nil
	})
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -idm: %v\n%s", err, out)
	}
	for _, c := range []struct {
		path string
		mode fs.FileMode
		data []byte
	}{
		{"d/f", 0o640, []byte("contents\n")},
		{"d/sub/big", 0o600, big},
	} {
		p := filepath.Join(dir, c.path)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: got mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
		if !fi.ModTime().IsZero() && fi.ModTime().Unix() != 0 {
			t.Errorf("%s: got mtime %v, want the epoch", c.path, fi.ModTime())
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.data) {
			t.Errorf("%s: got %d bytes, want %d", c.path, len(got), len(c.data))
		}
	}
	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{{"d", fs.ModeDir | 0o750}, {"d/sub", fs.ModeDir | 0o755}} {
		fi, err := os.Stat(filepath.Join(dir, c.path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: got mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	target, err := os.Readlink(filepath.Join(dir, "d/l"))
	if err != nil || target != "sub/big" {
		t.Errorf("d/l: got link %q (%v), want %q", target, err, "sub/big")
	}
}

func ExampleWriter() {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Dir("dev", 0o755)
	w.CharDev("dev/console", 0o600, 5, 1)
	w.File("init", 0o755, []byte("#!/bin/sh\nexec sh\n"))
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}
	fmt.Println(buf.Len())
	// Output: 512
}
