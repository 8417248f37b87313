package shakedown

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestDiskArgs(t *testing.T) {
	got := diskArgs([]diskFile{
		{name: "data", path: "/run/m-disks/data.raw", format: "raw"},
		{name: "bundle", path: "/run/a,b/bundle.ext4", format: "raw", readOnly: true},
		{name: "base", path: "/img/base.qcow2", format: "qcow2"},
	})
	want := []string{
		"-drive", "file=/run/m-disks/data.raw,if=none,id=disk0,format=raw", "-device", "virtio-blk-pci,drive=disk0,serial=data",
		"-drive", "file=/run/a,,b/bundle.ext4,if=none,id=disk1,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=disk1,serial=bundle",
		"-drive", "file=/img/base.qcow2,if=none,id=disk2,format=qcow2", "-device", "virtio-blk-pci,drive=disk2,serial=base",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMke2fsArgs(t *testing.T) {
	got := strings.Join(mke2fsArgs("/x.ext4", "b", Disk{Contents: "/src", ReadOnly: true}, 32, 10, ""), " ")
	want := "-q -F -t ext4 -b 4096 -m 0 -L b -E root_owner=0:0 -d /src -O ^has_journal /x.ext4"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Many small files in a small disk: more inodes than the default.
	if got := strings.Join(mke2fsArgs("/x", "b", Disk{Contents: "/src"}, 8, 5000, ""), " "); !strings.Contains(got, "-N 10064") {
		t.Errorf("got %q, want -N 10064", got)
	}
	// A seed fixes the UUID and the directory hash seed, one UUID per seed.
	u := seedUUID("k1")
	got = strings.Join(mke2fsArgs("/x", "root", Disk{Contents: "/src"}, 64, 10, "k1"), " ")
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

func TestCheckDisks(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	os.MkdirAll(big, 0o755)
	os.WriteFile(filepath.Join(big, "f"), make([]byte, 3<<20), 0o644) // zeros, but not sparse
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	tests := []struct {
		name  string
		disks []Disk
		want  string
	}{
		{"blank", []Disk{{SizeMiB: 10}}, ""},
		{"contents, auto size", []Disk{{Contents: big, ReadOnly: true}}, ""},
		{"image", []Disk{{Image: file, ReadOnly: true}}, ""},
		{"blank without size", []Disk{{Name: "d"}}, "disk d: a blank disk needs SizeMiB"},
		{"blank read-only", []Disk{{SizeMiB: 1, ReadOnly: true}}, "disk disk0: a blank read-only disk can hold nothing"},
		{"missing contents", []Disk{{Contents: filepath.Join(dir, "nope")}}, "disk disk0: contents: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"contents not a dir", []Disk{{Contents: file}}, "is not a directory"},
		{"missing image", []Disk{{Image: "/nonexistent.qcow2"}}, "disk disk0: image: stat /nonexistent.qcow2: no such file or directory"},
		{"too small", []Disk{{Name: "b", Contents: big, SizeMiB: 2}}, "disk b: disk too small for its contents: " + big + " needs at least 4 MiB, SizeMiB is 2"},
		{"bad name", []Disk{{Name: "has space", SizeMiB: 1}}, `disk "has space": a name has`},
		{"twice", []Disk{{Name: "a", SizeMiB: 1}, {Name: "a", SizeMiB: 1}}, "disk a: declared twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkDisks(tt.disks)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBuildExt4TooSmall(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/mke2fs"); err != nil {
		t.Skip("no mke2fs (e2fsprogs)")
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
	err := once(out, func(tmp string) error { return buildExt4(tmp, "d", Disk{Contents: src, SizeMiB: 3}, "") })
	if !errors.Is(err, ErrDiskTooSmall) {
		t.Fatalf("got %v, want ErrDiskTooSmall", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed build left the disk file behind")
	}
	if err := once(out, func(tmp string) error { return buildExt4(tmp, "d", Disk{Contents: src}, "") }); err != nil {
		t.Fatalf("auto size: %v", err)
	}
}

func TestCheckServices(t *testing.T) {
	tests := []struct {
		name string
		cfg  MachineConfig
		want string
	}{
		{"ok", MachineConfig{Services: []Service{{Name: "a", Command: "x"}, {Name: "b", Command: "y", After: []string{"a"}}}}, ""},
		{"unknown dependency", MachineConfig{Services: []Service{{Name: "a", Command: "x", After: []string{"db"}}}}, `service a: unknown dependency "db" (services: a)`},
		{"cycle", MachineConfig{Services: []Service{{Name: "a", Command: "x", After: []string{"b"}}, {Name: "b", Command: "y", After: []string{"a"}}}}, "dependency cycle a -> b -> a"},
		{"own initrd", MachineConfig{Initrd: "/x", Services: []Service{{Name: "a", Command: "x"}}}, "services need shakedown's initramfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkServices(tt.cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
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
