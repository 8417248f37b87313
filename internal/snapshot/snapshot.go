// Package snapshot owns the on-disk form of a whole-testbed snapshot: a
// directory holding, per machine, QEMU's saved RAM and device state and a
// copy of its disk files, and a manifest that names the machines, which
// of them ran, and the networks' faults. It reads a snapshot back with
// the checks that turn a missing, truncated or foreign one into an error
// that says so before QEMU is asked to load it. The testbed (the root
// package) does the pausing, saving and restoring; this package imports
// only the layers below it (qemu, network).
package snapshot

import (
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
	"time"

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

// Key is the cache key of a checkpoint: the user's key and everything the
// saved state depends on (each machine's configuration and boot files,
// the accelerator, QEMU itself), hashed.
func Key(user string, parts any) (string, error) {
	b, err := json.Marshal(parts)
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", user, err)
	}
	h := sha256.Sum256(append([]byte(user+"\x00"), b...))
	return hex.EncodeToString(h[:16]), nil
}
