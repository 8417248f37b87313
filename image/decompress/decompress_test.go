package decompress

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "rewrite the testdata fixtures with the host's xz and bzip2")

// sample is what every test stream holds: text that compresses well, with
// an x86 call (E8 and a 32-bit displacement whose top byte is 0) on every
// line, which the x86 BCJ filter converts, so that the BCJ fixture really
// exercises the filter.
func sample() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 8192; i++ {
		fmt.Fprintf(&b, "line %d of the sample\n", i)
		b.Write([]byte{0xe8, byte(i), byte(i >> 8), 0, 0})
	}
	return b.Bytes()
}

// fixtures are the streams no Go library in the module writes, made by the
// real tools; go test -update makes them again.
var fixtures = []struct {
	path string
	cmd  []string
}{
	// As the kernel's scripts/Makefile.modinst compresses modules.
	{"testdata/sample.xz", []string{"xz", "--format=xz", "--check=crc32", "--lzma2=dict=1MiB", "--stdout"}},
	// As the kernel's scripts/xz_wrap.sh compresses an x86 payload.
	{"testdata/sample-x86.xz", []string{"xz", "--format=xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB", "--stdout"}},
	{"testdata/sample.bz2", []string{"bzip2", "-9", "--stdout"}},
}

func fixture(t *testing.T, path string) []byte {
	t.Helper()
	if *update {
		for _, f := range fixtures {
			if f.path != path {
				continue
			}
			cmd := exec.Command(f.cmd[0], f.cmd[1:]...)
			cmd.Stdin = bytes.NewReader(sample())
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", strings.Join(f.cmd, " "), err)
			}
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(p)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstded(t *testing.T, p []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := zstd.NewWriter(&b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readAll(t *testing.T, o Options, compressed []byte, f Format) ([]byte, error) {
	t.Helper()
	r, err := o.NewReader(bytes.NewReader(compressed), f)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return got, err
}

func TestRoundTrip(t *testing.T) {
	want := sample()
	tests := []struct {
		name       string
		format     Format
		ext        string
		compressed func(t *testing.T) []byte
	}{
		{"none", None, "", func(*testing.T) []byte { return want }},
		{"gzip", Gzip, ".gz", func(t *testing.T) []byte { return gzipped(t, want) }},
		{"zstd", Zstd, ".zst", func(t *testing.T) []byte { return zstded(t, want) }},
		{"xz", XZ, ".xz", func(t *testing.T) []byte { return fixture(t, "testdata/sample.xz") }},
		{"xz x86 BCJ", XZ, ".xz", func(t *testing.T) []byte { return fixture(t, "testdata/sample-x86.xz") }},
		{"bzip2", Bzip2, ".bz2", func(t *testing.T) []byte { return fixture(t, "testdata/sample.bz2") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.compressed(t)
			if f, err := ByExt(tt.ext); err != nil || f != tt.format {
				t.Errorf("ByExt(%q): got %v, %v, want %v", tt.ext, f, err, tt.format)
			}
			if ext := tt.format.Ext(); ext != tt.ext {
				t.Errorf("Ext: got %q, want %q", ext, tt.ext)
			}
			if tt.format != None {
				if f, err := Detect(c); err != nil || f != tt.format {
					t.Errorf("Detect: got %v, %v, want %v", f, err, tt.format)
				}
			}
			for _, o := range []Options{{}, {MaxMemory: 64 << 20}} {
				got, err := readAll(t, o, c, tt.format)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%+v: got %d bytes, %v, want the %d-byte sample", o, len(got), err, len(want))
				}
			}
		})
	}
}

// TestXZBCJ checks that the BCJ fixture's block really chains the x86
// filter (ID 0x04) before LZMA2, so that TestRoundTrip's case proves that
// the one xz decoder reads Debian's kernel payloads.
func TestXZBCJ(t *testing.T) {
	b := fixture(t, "testdata/sample-x86.xz")
	// A 12-byte stream header, then the block header: its size, its flags
	// (filter count - 1 in the low bits), then the first filter's ID.
	if len(b) < 15 || b[13]&3 != 1 || b[14] != 0x04 {
		t.Fatalf("got block header % x, want two filters, the first x86 BCJ (ID 04): run go test -update", b[12:min(len(b), 17)])
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"extension", func() error { _, err := ByExt(".lz4"); return err }, `".lz4"`},
		{"lz4 magic", func() error { _, err := Detect([]byte{0x02, 0x21, 0x4c, 0x18, 0, 0}); return err }, "lz4"},
		{"lzma magic", func() error { _, err := Detect([]byte{0x5d, 0, 0, 0x80, 0}); return err }, "lzma"},
		{"unknown magic", func() error { _, err := Detect([]byte("\x7fELF\x02\x01\x01")); return err }, "7f 45 4c 46 02 01"},
		{"short", func() error { _, err := Detect([]byte{0xfd}); return err }, "magic fd"},
		{"format", func() error { _, err := NewReader(strings.NewReader("x"), Format("lz4")); return err }, `"lz4"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrUnsupported naming %s", err, tt.want)
			}
		})
	}
}

// TestMaxMemory checks that a stream asking for more history than
// MaxMemory fails rather than allocating it.
func TestMaxMemory(t *testing.T) {
	big := bytes.Repeat(sample(), 64) // 512 KiB: more than one window
	tests := []struct {
		name       string
		format     Format
		compressed func(t *testing.T) []byte
	}{
		{"zstd 1 MiB window", Zstd, func(t *testing.T) []byte { return zstded(t, big, zstd.WithWindowSize(1<<20)) }},
		{"xz 1 MiB dictionary", XZ, func(t *testing.T) []byte { return fixture(t, "testdata/sample.xz") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.compressed(t)
			if _, err := readAll(t, Options{MaxMemory: 64 << 10}, c, tt.format); err == nil {
				t.Errorf("MaxMemory 64 KiB: got no error, want the stream refused")
			}
			if _, err := readAll(t, Options{MaxMemory: 2 << 20}, c, tt.format); err != nil {
				t.Errorf("MaxMemory 2 MiB: got %v, want no error", err)
			}
		})
	}
}

func TestCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		data   []byte
	}{
		{"gzip", Gzip, []byte("not gzip")},
		{"xz", XZ, []byte("not xz at all")},
		{"zstd", Zstd, []byte("not zstd")},
		{"bzip2", Bzip2, []byte("not bzip2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := readAll(t, Options{}, tt.data, tt.format); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
}
