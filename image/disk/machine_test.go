package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDiskArgs(t *testing.T) {
	got := QEMUArgs([]File{
		{Name: "data", Path: "/run/m-disks/data.raw", Format: "raw"},
		{Name: "bundle", Path: "/run/a,b/bundle.ext4", Format: "raw", ReadOnly: true},
		{Name: "base", Path: "/img/base.qcow2", Format: "qcow2"},
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

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	os.MkdirAll(big, 0o755)
	os.WriteFile(filepath.Join(big, "f"), make([]byte, 3<<20), 0o644) // zeros, but not sparse
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	tests := []struct {
		name  string
		disks []Spec
		want  string
	}{
		{"blank", []Spec{{SizeMiB: 10}}, ""},
		{"contents, auto size", []Spec{{Contents: big, ReadOnly: true}}, ""},
		{"image", []Spec{{Image: file, ReadOnly: true}}, ""},
		{"blank without size", []Spec{{Name: "d"}}, "disk d: a blank disk needs SizeMiB"},
		{"blank read-only", []Spec{{SizeMiB: 1, ReadOnly: true}}, "disk disk0: a blank read-only disk can hold nothing"},
		{"missing contents", []Spec{{Contents: filepath.Join(dir, "nope")}}, "disk disk0: contents: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"contents not a dir", []Spec{{Contents: file}}, "is not a directory"},
		{"missing image", []Spec{{Image: "/nonexistent.qcow2"}}, "disk disk0: image: stat /nonexistent.qcow2: no such file or directory"},
		{"too small", []Spec{{Name: "b", Contents: big, SizeMiB: 2}}, "disk b: disk too small for its contents: " + big + " needs at least 4 MiB, SizeMiB is 2"},
		{"bad name", []Spec{{Name: "has space", SizeMiB: 1}}, `disk "has space": a name has`},
		{"twice", []Spec{{Name: "a", SizeMiB: 1}, {Name: "a", SizeMiB: 1}}, "disk a: declared twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.disks)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestWithRoot checks that the root overlay comes first, is a qcow2 over
// the base, and is made once: a second boot keeps what the first wrote.
func TestWithRoot(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("needs qemu-img (apt-get install qemu-utils)")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := Sparse(base, 1<<20); err != nil {
		t.Fatal(err)
	}
	extra := []File{{Name: "data", Path: "/d", Format: "raw"}}
	files, err := WithRoot(filepath.Join(dir, "disks"), base, extra)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "root" || files[0].Format != "qcow2" || files[1] != extra[0] {
		t.Fatalf("got %+v, want the root overlay, then the data disk", files)
	}
	if f, err := Format(files[0].Path); err != nil || f != "qcow2" {
		t.Fatalf("overlay format %q, %v", f, err)
	}
	marker := []byte("written by the first boot")
	if err := os.WriteFile(files[0].Path, marker, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := WithRoot(filepath.Join(dir, "disks"), base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(again[0].Path); string(b) != string(marker) {
		t.Errorf("a second WithRoot replaced the overlay")
	}
}
