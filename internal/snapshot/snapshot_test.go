package snapshot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shakedown-dev/shakedown/network"
)

// state is the start of a QEMU migration stream, which CheckState wants.
var state = []byte("QEVM\x00\x00\x00\x03rest of the stream")

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(StatePath(dir, "a"), state, 0o644)
	m := Manifest{
		Machines: []Machine{{Name: "a", Running: true, Blocked: []string{"lan"}}, {Name: "b"}},
		Faults:   map[string]network.FaultState{"lan": {Groups: [][]string{{"a"}, {"b", "dns"}}}},
	}
	if err := Write(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := got.Machine("a"); a.StateBytes != int64(len(state)) || a.Blocked[0] != "lan" {
		t.Errorf("machine a read back as %+v", a)
	}
	if _, ok := got.Machine("c"); ok {
		t.Error("Machine found a machine the manifest does not hold")
	}
	if g := got.Faults["lan"].Groups; len(g) != 2 || g[1][1] != "dns" {
		t.Errorf("faults read back as %+v", got.Faults)
	}
}

// TestReadUnusable checks that every way a snapshot can be wrong is found
// by Read, wraps ErrUnusable, and says what is wrong.
func TestReadUnusable(t *testing.T) {
	for _, tt := range []struct {
		name   string
		break_ func(dir string)
		want   string
	}{
		{"no manifest", func(dir string) { os.Remove(filepath.Join(dir, manifestName)) }, "no manifest.json"},
		{"bad manifest", func(dir string) { os.WriteFile(filepath.Join(dir, manifestName), []byte("{"), 0o644) }, "manifest.json"},
		{"other version", func(dir string) {
			os.WriteFile(filepath.Join(dir, manifestName), []byte(`{"Version": 99}`), 0o644)
		}, "format 99"},
		{"state missing", func(dir string) { os.Remove(StatePath(dir, "a")) }, "no such file"},
		{"state truncated", func(dir string) { os.Truncate(StatePath(dir, "a"), 6) }, "truncated"},
		{"state foreign", func(dir string) {
			os.WriteFile(StatePath(dir, "a"), bytes.Repeat([]byte("x"), len(state)), 0o644)
		}, "QEMU migration stream"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(StatePath(dir, "a"), state, 0o644)
			if err := Write(dir, Manifest{Machines: []Machine{{Name: "a", Running: true}}}); err != nil {
				t.Fatal(err)
			}
			tt.break_(dir)
			_, err := Read(dir)
			if !errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrUnusable saying %q", err, tt.want)
			}
		})
	}
}

// TestCopyDisks checks that a copy keeps a sparse file's holes, replaces
// what was there, and that a machine without disks copies to nothing.
func TestCopyDisks(t *testing.T) {
	root := t.TempDir()
	from, to := filepath.Join(root, "from"), filepath.Join(root, "to")
	os.MkdirAll(from, 0o755)
	f, _ := os.Create(filepath.Join(from, "blank.raw"))
	f.Truncate(1 << 30)
	f.WriteAt([]byte("end"), 1<<30-3)
	f.Close()
	os.MkdirAll(to, 0o755)
	os.WriteFile(filepath.Join(to, "stale"), nil, 0o644)
	if err := CopyDisks(from, to); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(to, "blank.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 1<<30 {
		t.Fatalf("copy is %d bytes", fi.Size())
	}
	if _, err := os.Stat(filepath.Join(to, "stale")); err == nil {
		t.Error("CopyDisks kept a file the source does not have")
	}
	if used := allocated(t, filepath.Join(to, "blank.raw")); used > 1<<20 {
		t.Errorf("the copy of a sparse GiB takes %d bytes on disk", used)
	}
	if err := CopyDisks(filepath.Join(root, "none"), to); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(to); err == nil {
		t.Error("a machine without disks left a disk directory")
	}
}

func TestKey(t *testing.T) {
	a, _ := Key("ready", []any{"m", 1})
	b, _ := Key("ready", []any{"m", 2})
	c, _ := Key("other", []any{"m", 1})
	again, _ := Key("ready", []any{"m", 1})
	if a == b || a == c || a != again || len(a) != 32 {
		t.Errorf("keys %s %s %s %s: want stable, distinct per input, 32 hex digits", a, b, c, again)
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
