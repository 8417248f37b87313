// Package snapshot owns the on-disk form of a whole-testbed snapshot: a
// directory holding, per machine, QEMU's saved RAM and device state and a
// copy of its disk files, and a manifest that names the machines, which
// of them ran, and the networks' faults. It reads a snapshot back with
// the checks that turn a missing, truncated or foreign one into an error
// that says so before QEMU is asked to load it; and it keeps checkpoints,
// snapshots in the cache under a key of everything they depend on. The
// testbed (the root package) does the pausing, saving and restoring;
// this package imports only the layers below it (qemu, network,
// image/cache).
package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/network"
	"github.com/shakedown-dev/shakedown/qemu"
)

// Version is the manifest's format; a snapshot of another version is
// refused rather than misread.
const Version = 1

// Kind is the cache kind of checkpoints: snapshots kept across tests
// and processes, keyed by Key.
const Kind = "checkpoint"

// manifestName is the manifest's file in a snapshot directory.
const manifestName = "manifest.json"

// ErrUnusable is wrapped by every error of Read: the snapshot is missing,
// damaged or not this testbed's, and the caller should set up cold.
var ErrUnusable = errors.New("snapshot unusable")

// Manifest describes a snapshot.
type Manifest struct {
	Version int
	// Name is the snapshot's name, or the checkpoint's key as the test
	// gave it.
	Name     string
	Made     time.Time
	Machines []Machine
	// Faults are each network's impairments and partition, by network
	// name, with peers named.
	Faults map[string]network.FaultState `json:",omitempty"`
}

// Machine is one machine's part of a snapshot.
type Machine struct {
	Name string
	// Running machines have a saved state of StateBytes bytes; the
	// others only their disks.
	Running    bool
	StateBytes int64 `json:",omitempty"`
	// Blocked are the networks whose link Block had cut.
	Blocked []string `json:",omitempty"`
}

// StatePath is where a snapshot in dir keeps machine's saved state.
func StatePath(dir, machine string) string { return filepath.Join(dir, machine+".state") }

// DisksPath is where a snapshot in dir keeps a copy of machine's disks.
func DisksPath(dir, machine string) string { return filepath.Join(dir, machine+"-disks") }

// Write writes m as dir's manifest, filling in Version and the size of
// each running machine's state, which Read checks.
func Write(dir string, m Manifest) error {
	m.Version = Version
	for i, mc := range m.Machines {
		if !mc.Running {
			continue
		}
		fi, err := os.Stat(StatePath(dir, mc.Name))
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", dir, err)
		}
		m.Machines[i].StateBytes = fi.Size()
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("snapshot %s: %w", dir, err)
	}
	return os.Rename(tmp, filepath.Join(dir, manifestName))
}

// Read reads dir's manifest and checks that every running machine's
// state is there, whole and QEMU's. Its errors wrap ErrUnusable.
func Read(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%w: no snapshot in %s (no %s)", ErrUnusable, dir, manifestName)
	}
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %s: %w", ErrUnusable, filepath.Join(dir, manifestName), err)
	}
	if m.Version != Version {
		return m, fmt.Errorf("%w: %s is of format %d, this shakedown reads %d (take the snapshot again)", ErrUnusable, dir, m.Version, Version)
	}
	for _, mc := range m.Machines {
		if !mc.Running {
			continue
		}
		p := StatePath(dir, mc.Name)
		fi, err := os.Stat(p)
		if err != nil {
			return m, fmt.Errorf("%w: machine %s: %w", ErrUnusable, mc.Name, err)
		}
		if fi.Size() != mc.StateBytes {
			return m, fmt.Errorf("%w: machine %s: %s holds %d bytes, the manifest says %d: it is truncated or was replaced", ErrUnusable, mc.Name, p, fi.Size(), mc.StateBytes)
		}
		if err := qemu.CheckState(p); err != nil {
			return m, fmt.Errorf("%w: machine %s: %w", ErrUnusable, mc.Name, err)
		}
	}
	return m, nil
}

// Machine returns the named machine's part of the manifest.
func (m Manifest) Machine(name string) (Machine, bool) {
	for _, mc := range m.Machines {
		if mc.Name == name {
			return mc, true
		}
	}
	return Machine{}, false
}

// CopyDisks copies a machine's disk directory from to to, replacing what
// to held; a missing from leaves to absent (the machine had no disks).
// Disk files are sparse (blank raw disks) or small (qcow2 overlays), so
// the copy keeps holes and shares extents where the file system can
// (cp's --sparse and --reflink: Go's io.Copy would write every hole).
func CopyDisks(from, to string) error {
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	out, err := exec.Command("cp", "-R", "--sparse=always", "--reflink=auto", from, to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy disks %s: %v: %s", from, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Member is a testbed's machine as a snapshot sees it. Take and Restore
// hold its Lock while they work, so that nothing else starts or stops it.
type Member interface {
	Name() string
	Lock()
	Unlock()
	Running() bool
	// Blocked are the networks whose link is cut; SetBlocked sets them
	// before Load.
	Blocked() []string
	SetBlocked(networks []string)
	// DisksDir holds the machine's disk files.
	DisksDir() string
	// Pause ends the host's session with the agent and stops the vCPUs;
	// SaveState then saves RAM and devices to a file; Resume runs the
	// machine again and reconnects.
	Pause(ctx context.Context) error
	SaveState(ctx context.Context, path string) error
	Resume(ctx context.Context) error
	// Stop kills the machine's QEMU, if it runs.
	Stop()
	// Load starts a QEMU from a saved state and reconnects.
	Load(state string) error
}

// Take saves the members into dir as the snapshot name, with the
// networks' faults: the running ones are paused together, so that their
// states are of one moment, saved, their disks copied, and resumed,
// whether or not the saving worked.
func Take(ctx context.Context, dir, name string, ms []Member, faults func() map[string]network.FaultState) error {
	for _, m := range ms {
		m.Lock()
		defer m.Unlock()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	man := Manifest{Name: name, Made: time.Now()}
	var running []Member
	for _, m := range ms {
		mc := Machine{Name: m.Name(), Running: m.Running(), Blocked: m.Blocked()}
		if mc.Running {
			running = append(running, m)
		}
		man.Machines = append(man.Machines, mc)
	}
	err := Each(running, func(m Member) error { return m.Pause(ctx) })
	if err == nil {
		err = Each(running, func(m Member) error { return m.SaveState(ctx, StatePath(dir, m.Name())) })
	}
	for _, m := range ms {
		if err == nil {
			err = CopyDisks(m.DisksDir(), DisksPath(dir, m.Name()))
		}
	}
	man.Faults = faults()
	if err == nil {
		err = Write(dir, man)
	}
	return errors.Join(err, Each(running, func(m Member) error { return m.Resume(ctx) }))
}

// Restore puts the members back to the snapshot in dir: it checks the
// snapshot whole (Read) and that it names only these members, has
// setFaults apply its faults, then stops each member it holds, puts its
// disks back and loads the running ones, together. Members the snapshot
// does not hold (declared after it) are left as they are.
func Restore(dir string, ms []Member, setFaults func(map[string]network.FaultState) error) error {
	man, err := Read(dir)
	if err != nil {
		return err
	}
	byName := map[string]Member{}
	for _, m := range ms {
		byName[m.Name()] = m
	}
	for _, mc := range man.Machines {
		if byName[mc.Name] == nil {
			return fmt.Errorf("%w: it holds machine %s, which this testbed does not declare", ErrUnusable, mc.Name)
		}
	}
	if err := setFaults(man.Faults); err != nil {
		return err
	}
	var running []Member
	for _, mc := range man.Machines {
		m := byName[mc.Name]
		m.Lock()
		defer m.Unlock()
		m.Stop()
		m.SetBlocked(mc.Blocked)
		if err := CopyDisks(DisksPath(dir, mc.Name), m.DisksDir()); err != nil {
			return err
		}
		if mc.Running {
			running = append(running, m)
		}
	}
	return Each(running, func(m Member) error { return m.Load(StatePath(dir, m.Name())) })
}

// Each runs f on every element of xs at once and joins their errors.
func Each[T any](xs []T, f func(T) error) error {
	errs := make([]error, len(xs))
	var wg sync.WaitGroup
	for i, x := range xs {
		wg.Go(func() { errs[i] = f(x) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Key is the cache key of a checkpoint: the user's key and everything the
// saved state depends on, hashed: parts (each machine's configuration
// and boot files, say), the accelerator, and QEMU's binary, by size and
// modification time (a state does not load into another QEMU version).
func Key(user, accel string, parts any) (string, error) {
	bin, err := exec.LookPath(qemu.DefaultBinary)
	if err != nil {
		return "", qemu.ErrNoQEMU
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal([]any{accel, fi.Size(), fi.ModTime().UnixNano(), parts})
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", user, err)
	}
	h := sha256.Sum256(append([]byte(user+"\x00"), b...))
	return hex.EncodeToString(h[:16]), nil
}

// Steps are what Checkpoint does with the testbed.
type Steps struct {
	// Restore restores the snapshot in a directory.
	Restore func(dir string) error
	// Reset undoes what a failed Restore left: machines stopped, their
	// disks removed, ready for Setup.
	Reset func()
	// Setup brings the testbed to the state to keep.
	Setup func() error
	// Save takes a snapshot into a directory.
	Save func(dir string) error
	// Logf says what became of the checkpoint.
	Logf func(format string, args ...any)
}

// Checkpoint restores the checkpoint named name, under key in c, or runs
// s.Setup and keeps a snapshot of its end there. A checkpoint that does
// not restore is logged, removed and set up anew. Setup's error is
// returned as it is, and nothing is kept.
func Checkpoint(c *cache.Cache, name, key string, s Steps) error {
	if dir, ok := c.Lookup(Kind, key); ok {
		began := time.Now()
		err := s.Restore(dir)
		if err == nil {
			s.Logf("shakedown: checkpoint %s restored in %.2fs", name, time.Since(began).Seconds())
			return nil
		}
		s.Logf("shakedown: checkpoint %s: %v; setting up cold", name, err)
		s.Reset()
		if err := c.Remove(Kind, key); err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
	}
	if err := s.Setup(); err != nil {
		return err
	}
	if _, err := c.Dir(Kind, key, s.Save); err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	return nil
}
