package snapshot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/network"
	"github.com/shakedown-dev/shakedown/qemu"
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
	if _, err := exec.LookPath(qemu.DefaultBinary); err != nil {
		t.Skip("Key hashes QEMU's binary: install qemu-system-x86")
	}
	key := func(user, accel string, parts any) string {
		k, err := Key(user, accel, parts)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a := key("ready", "tcg", []any{"m", 1})
	for _, other := range []string{key("ready", "tcg", []any{"m", 2}), key("other", "tcg", []any{"m", 1}), key("ready", "kvm", []any{"m", 1})} {
		if other == a {
			t.Errorf("two different checkpoints share key %s", a)
		}
	}
	if again := key("ready", "tcg", []any{"m", 1}); again != a || len(a) != 32 {
		t.Errorf("keys %s and %s: want the same, of 32 hex digits", a, again)
	}
}

// TestCheckpoint follows a checkpoint through its lives in a real cache:
// made by setup, restored, found damaged and made again; a failing setup
// keeps nothing.
func TestCheckpoint(t *testing.T) {
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var did []string
	restoreErr := error(nil)
	steps := Steps{
		Restore: func(dir string) error {
			did = append(did, "restore")
			if _, err := os.Stat(filepath.Join(dir, "saved")); err != nil {
				return err
			}
			return restoreErr
		},
		Reset: func() { did = append(did, "reset") },
		Setup: func() error { did = append(did, "setup"); return nil },
		Save: func(dir string) error {
			did = append(did, "save")
			return os.WriteFile(filepath.Join(dir, "saved"), nil, 0o644)
		},
		Logf: t.Logf,
	}
	const key = "00ff"
	for _, tt := range []struct {
		name       string
		restoreErr error
		want       string
	}{
		{"first", nil, "setup save"},
		{"again", nil, "restore"},
		{"damaged", ErrUnusable, "restore reset setup save"},
		{"made anew", nil, "restore"},
	} {
		did, restoreErr = nil, tt.restoreErr
		if err := Checkpoint(c, "ready", key, steps); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := strings.Join(did, " "); got != tt.want {
			t.Errorf("%s: did %q, want %q", tt.name, got, tt.want)
		}
	}

	failing := errors.New("setup failed")
	steps.Setup = func() error { return failing }
	if err := Checkpoint(c, "other", "0abc", steps); err != failing {
		t.Errorf("a failing setup: got %v, want its error as it is", err)
	}
	if _, ok := c.Lookup(Kind, "0abc"); ok {
		t.Error("a failing setup left a checkpoint")
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

// fake is a Member that records what is done to it, in a journal shared
// by all the fakes of a test.
type fake struct {
	name    string
	running bool
	blocked []string
	disks   string
	saveErr error
	mu      sync.Mutex // what Lock locks
	journal *journal
}

type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.lines = append(j.lines, s); j.mu.Unlock() }

func (f *fake) Name() string                 { return f.name }
func (f *fake) Lock()                        { f.mu.Lock() }
func (f *fake) Unlock()                      { f.mu.Unlock() }
func (f *fake) Running() bool                { return f.running }
func (f *fake) Blocked() []string            { return f.blocked }
func (f *fake) SetBlocked(ns []string)       { f.blocked = ns }
func (f *fake) DisksDir() string             { return f.disks }
func (f *fake) Stop()                        { f.journal.add("stop " + f.name); f.running = false }
func (f *fake) Pause(context.Context) error  { f.journal.add("pause " + f.name); return nil }
func (f *fake) Resume(context.Context) error { f.journal.add("resume " + f.name); return nil }
func (f *fake) Load(state string) error {
	f.journal.add("load " + f.name)
	f.running = true
	return qemu.CheckState(state)
}
func (f *fake) SaveState(_ context.Context, path string) error {
	f.journal.add("save " + f.name)
	if f.saveErr != nil {
		return f.saveErr
	}
	return os.WriteFile(path, state, 0o644)
}

// TestTakeRestore takes a snapshot of two running machines and a stopped
// one through fakes: every running machine is paused before any is
// saved, all resume, disks and blocked links come back on restore, and
// the stopped machine is stopped again, not loaded.
func TestTakeRestore(t *testing.T) {
	root := t.TempDir()
	j := &journal{}
	disks := func(name string) string {
		d := filepath.Join(root, name+"-disks")
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "data.raw"), []byte("before"), 0o644)
		return d
	}
	a := &fake{name: "a", running: true, blocked: []string{"lan"}, disks: disks("a"), journal: j}
	b := &fake{name: "b", running: true, disks: disks("b"), journal: j}
	c := &fake{name: "c", disks: disks("c"), journal: j}
	ms := []Member{a, b, c}
	dir := filepath.Join(root, "snap")
	faults := map[string]network.FaultState{"lan": {Groups: [][]string{{"a"}, {"b"}}}}
	if err := Take(context.Background(), dir, "ready", ms, func() map[string]network.FaultState { return faults }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(j.lines, ","); !strings.HasPrefix(got, "pause ") || strings.Index(got, "save") < strings.LastIndex(got, "pause") || strings.Count(got, "resume") != 2 {
		t.Errorf("take did %s: want both paused before any save, then both resumed", got)
	}

	for _, m := range []*fake{a, b, c} {
		os.WriteFile(filepath.Join(m.disks, "data.raw"), []byte("after"), 0o644)
	}
	a.blocked, b.running, c.running = nil, false, true
	j.lines = nil
	var gotFaults map[string]network.FaultState
	if err := Restore(dir, ms, func(f map[string]network.FaultState) error { gotFaults = f; return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotFaults, faults) {
		t.Errorf("restored faults %v, want %v", gotFaults, faults)
	}
	if got := strings.Join(j.lines, ","); strings.Count(got, "stop") != 3 || strings.Contains(got, "load c") || !strings.Contains(got, "load a") || !strings.Contains(got, "load b") {
		t.Errorf("restore did %s: want all three stopped and a and b loaded", got)
	}
	if len(a.blocked) != 1 || a.blocked[0] != "lan" || c.running {
		t.Errorf("after restore: a blocked %v, c running %v", a.blocked, c.running)
	}
	for _, m := range []*fake{a, b, c} {
		if b, _ := os.ReadFile(filepath.Join(m.disks, "data.raw")); string(b) != "before" {
			t.Errorf("%s's disk holds %q after restore", m.name, b)
		}
	}

	// A snapshot of machines this testbed lacks is refused before
	// anything is stopped.
	j.lines = nil
	err := Restore(dir, []Member{a, b}, func(map[string]network.FaultState) error { return nil })
	if !errors.Is(err, ErrUnusable) || !strings.Contains(err.Error(), "machine c") || len(j.lines) != 0 {
		t.Errorf("restore without machine c: got %v after %v, want ErrUnusable naming c and nothing done", err, j.lines)
	}

	// A save that fails still resumes every machine.
	j.lines = nil
	b.running, b.saveErr = true, errors.New("disk full")
	err = Take(context.Background(), filepath.Join(root, "snap2"), "x", ms, func() map[string]network.FaultState { return nil })
	if err == nil || !strings.Contains(err.Error(), "disk full") || strings.Count(strings.Join(j.lines, ","), "resume") != 2 {
		t.Errorf("failed save: got %v after %v, want the error and every machine resumed", err, j.lines)
	}
}
