package disk

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown/internal/hosttools"
)

func TestMke2fsArgs(t *testing.T) {
	got := strings.Join(Ext4{Contents: "/src", Label: "b", NoJournal: true}.mke2fsArgs("/x.ext4", 32, 10), " ")
	want := "-q -F -t ext4 -b 4096 -m 0 -L b -E root_owner=0:0 -d /src -O ^has_journal /x.ext4"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Many small files in a small disk: more inodes than the default.
	if got := strings.Join(Ext4{Contents: "/src", Label: "b"}.mke2fsArgs("/x", 8, 5000), " "); !strings.Contains(got, "-N 10064") {
		t.Errorf("got %q, want -N 10064", got)
	}
	// A seed fixes the UUID and the directory hash seed, one UUID per seed.
	u := seedUUID("k1")
	got = strings.Join(Ext4{Contents: "/src", Label: "root", Seed: "k1"}.mke2fsArgs("/x", 64, 10), " ")
	if want := "-U " + u + " -E root_owner=0:0,hash_seed=" + u + " -d /src"; !strings.Contains(got, want) {
		t.Errorf("got %q, want it to contain %q", got, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u) {
		t.Errorf("seedUUID: got %q, want a version 4 UUID", u)
	}
	if seedUUID("k2") == u {
		t.Error("seedUUID: two seeds, one UUID")
	}
}

func TestBuildExt4TooSmall(t *testing.T) {
	if _, err := hosttools.Find("mke2fs"); err != nil {
		t.Skip(err)
	}
	src := t.TempDir()
	// Random data cannot be stored sparsely; the size check passes (it
	// counts 3 MiB) but ext4's own metadata does not fit.
	b := make([]byte, 3<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	os.WriteFile(filepath.Join(src, "f"), b, 0o644)
	out := filepath.Join(t.TempDir(), "d.ext4")
	err := Once(out, Ext4{Contents: src, Label: "d", SizeMiB: 3}.Build)
	if !errors.Is(err, ErrTooSmall) {
		t.Fatalf("got %v, want ErrTooSmall", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed build left the disk file behind")
	}
	if err := Once(out, Ext4{Contents: src, Label: "d"}.Build); err != nil {
		t.Fatalf("auto size: %v", err)
	}
}

// TestBuildExt4Seed builds one tree twice with one seed: the images must
// be the same bytes, whatever the tree's times.
func TestBuildExt4Seed(t *testing.T) {
	for _, tool := range []string{"mke2fs", "dumpe2fs", "debugfs"} {
		if _, err := hosttools.Find(tool); err != nil {
			t.Skip(err)
		}
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "motd"), []byte("hello\n"), 0o644)
	var images [2][]byte
	for i := range images {
		out := filepath.Join(t.TempDir(), "d.ext4")
		if err := (Ext4{Contents: src, Label: "root", SizeMiB: 8, Seed: "k", Epoch: 1686355200}).Build(out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		images[i] = b
		// A changed time in the tree must not change the image.
		os.WriteFile(filepath.Join(src, "etc", "motd"), []byte("hello\n"), 0o644)
	}
	if !slices.Equal(images[0], images[1]) {
		t.Error("two seeded builds of one tree differ")
	}
}

func TestUsedInodes(t *testing.T) {
	dump := `Inode count:              48
Free inodes:              30
Inodes per group:         16

Group 0: (Blocks 0-32767) csum 0x1234
  Free inodes: 14-16
Group 1: (Blocks 32768-65535)
  Free inodes: 17-20, 23, 25-32
Group 2: (Blocks 65536-98303)
  Free inodes: 
`
	got, err := usedInodes(dump)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{2, 11, 12, 13, 21, 22, 24, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "Inodes per group: 16\n  Free inodes: 9-3\n", "Inodes per group: x\n"} {
		if _, err := usedInodes(bad); err == nil {
			t.Errorf("usedInodes(%q): no error", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ data, want string }{
		"qcow2": {"QFI\xfb\x00\x00\x00\x03", "qcow2"},
		"raw":   {"\x00\x00\x00\x00", "raw"},
		"short": {"QF", "raw"},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(tc.data), 0o644)
		if got, err := Format(p); err != nil || got != tc.want {
			t.Errorf("Format(%s): got %q, %v, want %q", name, got, err, tc.want)
		}
	}
}

func TestSparse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "blank.raw")
	if err := Sparse(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != 64<<20 {
		t.Fatalf("got %v, %v, want a 64 MiB file", fi, err)
	}
	need, entries, err := ContentsSize(filepath.Dir(p))
	if err != nil || entries != 2 || need > 2*4096+2*256 {
		t.Errorf("ContentsSize of a directory with a blank 64 MiB file: got %d bytes, %d entries, %v; want its holes free", need, entries, err)
	}
}
