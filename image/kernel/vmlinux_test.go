package kernel

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/shakedown-dev/shakedown/image/decompress"
)

var update = flag.Bool("update", false, "rewrite testdata/pvh.elf.xz with the host's xz")

func TestExtractVmlinux(t *testing.T) {
	elfData := pvhELF()
	enc, _ := zstd.NewWriter(nil)
	zst := enc.EncodeAll(elfData, nil)
	xzBCJ, err := os.ReadFile("testdata/pvh.elf.xz")
	if err != nil {
		t.Fatal(err)
	}
	var bz2 []byte // nil without the bzip2 command: that case is skipped
	if _, err := exec.LookPath("bzip2"); err == nil {
		cmd := exec.Command("bzip2", "-9", "--stdout")
		cmd.Stdin = bytes.NewReader(elfData)
		if bz2, err = cmd.Output(); err != nil {
			t.Fatalf("bzip2: %v", err)
		}
		bz2 = withSize(bz2, len(elfData))
	}
	tests := []struct {
		name    string
		payload []byte
		opts    bzImageOptions
	}{
		{"gzip", gzipBytes(t, elfData), bzImageOptions{setupSects: 27, payloadOffset: 716}},
		{"bzip2 with size", bz2, bzImageOptions{setupSects: 4}},
		{"gzip setup_sects 0 means 4", gzipBytes(t, elfData), bzImageOptions{setupSects: 0, payloadOffset: 0}},
		{"zstd with size", withSize(zst, len(elfData)), bzImageOptions{setupSects: 1, payloadOffset: 64}},
		{"xz x86 BCJ with size", withSize(xzBCJ, len(elfData)), bzImageOptions{setupSects: 39, payloadOffset: 716}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.payload == nil {
				t.Skip("no bzip2 command to make the payload")
			}
			got, err := ExtractVmlinux(makeBzImage(tt.payload, tt.opts))
			if err != nil {
				t.Fatalf("ExtractVmlinux: %v", err)
			}
			if !bytes.Equal(got, elfData) {
				t.Errorf("got %d bytes starting % x, want the %d-byte test ELF", len(got), got[:min(len(got), 8)], len(elfData))
			}
		})
	}
}

// TestXZTestdata checks that testdata/pvh.elf.xz holds the test ELF
// compressed as the kernel does (xz --x86 --lzma2), and with -update
// rewrites it.
func TestXZTestdata(t *testing.T) {
	path := "testdata/pvh.elf.xz"
	if *update {
		cmd := exec.Command("xz", "--format=xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB", "--stdout")
		cmd.Stdin = bytes.NewReader(pvhELF())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz: %v", err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// As in a bzImage: the uncompressed size appended.
	got, err := decompressPayload(withSize(b, len(pvhELF())))
	if err != nil || !bytes.Equal(got, pvhELF()) {
		t.Errorf("decompress %s: got %d bytes, %v, want the test ELF (run go test -update)", path, len(got), err)
	}
}

func TestExtractVmlinuxErrors(t *testing.T) {
	elfData := pvhELF()
	good := makeBzImage(gzipBytes(t, elfData), bzImageOptions{setupSects: 4})
	noMagic := bytes.Clone(good)
	copy(noMagic[offHeaderMagic:], "XXXX")
	corrupt := gzipBytes(t, elfData)
	corrupt[len(corrupt)/2] ^= 0xff
	corrupt[len(corrupt)/2+1] ^= 0xff
	lz4 := []byte{0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4}
	xzBCJ, err := os.ReadFile("testdata/pvh.elf.xz")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		bz   []byte
		want string
		is   error
	}{
		{"empty", nil, "too short", nil},
		{"short", good[:0x100], "too short", nil},
		{"no HdrS", noMagic, "no \"HdrS\"", nil},
		{"old protocol", makeBzImage(gzipBytes(t, elfData), bzImageOptions{protocol: 0x0206}), "predates 2.08", nil},
		{"truncated", good[:len(good)-150], "outside the", nil},
		{"offset past the end", makeBzImage(gzipBytes(t, elfData), bzImageOptions{payloadOffset: 0}), "", nil},
		{"lz4", makeBzImage(lz4, bzImageOptions{}), "unsupported compression format lz4", decompress.ErrUnsupported},
		{"unknown magic", makeBzImage([]byte("hello world"), bzImageOptions{}), "unknown magic", decompress.ErrUnsupported},
		{"xz without its size", makeBzImage(xzBCJ, bzImageOptions{}), "xz payload", nil},
		{"corrupt gzip", makeBzImage(corrupt, bzImageOptions{}), "gzip payload", nil},
		{"not ELF", makeBzImage(gzipBytes(t, []byte("not an elf at all")), bzImageOptions{}), "not an ELF", nil},
		{"no PVH note", makeBzImage(gzipBytes(t, tinyELF("GNU", 3)), bzImageOptions{}), "boot the bzImage", ErrNoPVH},
		{"Xen note of another type", makeBzImage(gzipBytes(t, tinyELF("Xen", 17)), bzImageOptions{}), "", ErrNoPVH},
		{"truncated ELF", makeBzImage(gzipBytes(t, elfData[:70]), bzImageOptions{}), "ELF", nil},
	}
	// The payload offset field pointing past the end of the file.
	past := bytes.Clone(good)
	past[offPayloadOffset+3] = 0xff
	tests[5].bz, tests[5].want = past, "outside the"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExtractVmlinux(tt.bz)
			if err == nil {
				t.Fatalf("got %d bytes, nil error, want an error", len(got))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got error %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestVersionFromBzImage(t *testing.T) {
	tests := []struct {
		name string
		bz   []byte
		want string
	}{
		{"debian", makeBzImage([]byte{1}, bzImageOptions{version: "6.1.0-56-amd64"}), "6.1.0-56-amd64"},
		{"no version", makeBzImage([]byte{1}, bzImageOptions{}), ""},
		{"garbage", []byte("nope"), ""},
	}
	for _, tt := range tests {
		if got := versionFromBzImage(tt.bz); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func FuzzExtractVmlinux(f *testing.F) {
	f.Add(makeBzImage(gzipBytes(f, pvhELF()), bzImageOptions{}))
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ExtractVmlinux(b) // must not panic
	})
}
