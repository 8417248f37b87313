package shakedown

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/internal/snapshot"
	"github.com/shakedown-dev/shakedown/network"
)

// ErrSnapshotUnusable is wrapped by Restore's error for a snapshot that
// is missing, truncated, damaged or another testbed's.
var ErrSnapshotUnusable = snapshot.ErrUnusable

// snapshotTimeout bounds taking or restoring a snapshot.
const snapshotTimeout = 5 * time.Minute

// Snapshot saves the whole testbed under name, to be Restored later in
// this test: every running machine is paused at the same moment, its RAM
// and device state saved and its disks copied, and the networks' faults
// and blocked links recorded; then the machines run on. Sessions open on
// a machine's agent (Background commands' streams, forwarded
// connections, shakedown ssh) end; the guest's processes do not. Frames
// in flight in the switches are lost, as on a real network.
func (tb *Testbed) Snapshot(name string) {
	tb.t.Helper()
	tb.must(tb.SnapshotE(name))
}

// SnapshotE is Snapshot returning its error.
func (tb *Testbed) SnapshotE(name string) error {
	end := tb.rec.Begin("", "snapshot "+name, false)
	dir, err := tb.snapshotDir(name)
	if err == nil {
		err = tb.save(dir, name)
	}
	end(err, "")
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", name, err)
	}
	return nil
}

// Restore puts the testbed back to Snapshot's state under name: every
// machine's QEMU is replaced by a fresh one loaded from the saved state
// (a machine stopped then is stopped), its disks are the saved copies,
// its clock is set to the host's, and the faults are the snapshot's.
// Named hosts keep their listeners; their open TCP connections to
// machines are gone, as after a reboot of the peer.
func (tb *Testbed) Restore(name string) {
	tb.t.Helper()
	tb.must(tb.RestoreE(name))
}

// RestoreE is Restore returning its error; it wraps ErrSnapshotUnusable
// when the snapshot is missing or damaged.
func (tb *Testbed) RestoreE(name string) error {
	end := tb.rec.Begin("", "restore "+name, false)
	dir, err := tb.snapshotDir(name)
	if err == nil {
		err = tb.restore(dir)
	}
	end(err, "")
	if err != nil {
		return fmt.Errorf("restore %s: %w", name, err)
	}
	return nil
}

func (tb *Testbed) snapshotDir(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name[0] == '.' {
		return "", fmt.Errorf("%w: snapshot name %q: use a plain name such as \"ready\"", ErrInvalid, name)
	}
	return filepath.Join(tb.dir, "snapshots", name), nil
}

// Checkpoint runs setup and saves the testbed's state in the cache under
// key, or, when such a state is there, restores it instead of running
// setup: a suite's slow setup (machines booted, a cluster Ready) runs
// once per change of what it depends on, and every test after that
// starts from its end in about a second. The saved state belongs to key
// together with every machine's configuration and image, the networks,
// the accelerator and QEMU: a change to any of them sets up anew.
// Checkpoints persist across tests and processes, and image ls and gc
// list and collect them. Declare networks, hosts and stand-in services
// before Checkpoint, and keep setup to what happens on the machines: a
// restore does not run it, so Go-side state it made is not there.
// A checkpoint that cannot be restored is removed and set up cold.
func (tb *Testbed) Checkpoint(key string, setup func()) {
	tb.t.Helper()
	tb.must(tb.CheckpointE(key, func() error { setup(); return nil }))
}

// CheckpointE is Checkpoint with a setup that returns its error, which it
// returns; nothing is saved then.
func (tb *Testbed) CheckpointE(key string, setup func() error) error {
	k, err := tb.checkpointKey(key)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", key, err)
	}
	return snapshot.Checkpoint(tb.cache, key, k, snapshot.Steps{
		Restore: tb.restore,
		Reset: func() {
			tb.stopAll()
			for _, m := range tb.Machines() {
				os.RemoveAll(m.disksDir())
			}
		},
		Setup: setup,
		Save:  func(dir string) error { return tb.save(dir, key) },
		Logf:  tb.logf,
	})
}

// checkpointKey is a checkpoint's cache key: the user's key with every
// machine's configuration and boot files, and the networks.
func (tb *Testbed) checkpointKey(key string) (string, error) {
	accel, err := tb.hypervisor()
	if err != nil {
		return "", err
	}
	type part struct {
		Name   string
		Number int
		Config MachineConfig
		Boot   [3]string
	}
	var parts []any
	for _, m := range tb.Machines() {
		bf, err := tb.bootFiles(tb.ctx, m.name, m.cfg)
		if err != nil {
			return "", err
		}
		cfg := m.cfg
		cfg.BootTimeout = 0
		parts = append(parts, part{Name: m.name, Number: tb.machineNumber(m.name), Config: cfg, Boot: [3]string{bf.Kernel, bf.Initrd, bf.Root}})
	}
	for _, n := range tb.allNetworks() {
		parts = append(parts, n.name, n.Number())
	}
	return snapshot.Key(key, string(accel), parts)
}

// save takes a snapshot of the testbed into dir (snapshot.Take).
func (tb *Testbed) save(dir, name string) error {
	ctx, cancel := context.WithTimeoutCause(tb.ctx, snapshotTimeout, fmt.Errorf("%w after %v saving the testbed", ErrTimeout, snapshotTimeout))
	defer cancel()
	return snapshot.Take(ctx, dir, name, tb.members(), func() map[string]network.FaultState {
		fs := map[string]network.FaultState{}
		for _, n := range tb.allNetworks() {
			fs[n.name] = n.faults.State(peerName)
		}
		return fs
	})
}

// restore replaces the testbed's machines and faults with the snapshot
// in dir (snapshot.Restore).
func (tb *Testbed) restore(dir string) error {
	return snapshot.Restore(dir, tb.members(), func(faults map[string]network.FaultState) error {
		for name, fs := range faults {
			n := tb.lookupNetwork(name)
			if n == nil {
				return fmt.Errorf("%w: it holds network %s, which this testbed does not declare", ErrSnapshotUnusable, name)
			}
			if err := n.faults.SetState(fs, tb.peerByName); err != nil {
				return fmt.Errorf("%w: network %s: %w", ErrSnapshotUnusable, name, err)
			}
		}
		return nil
	})
}

// member is a machine as package snapshot sees it (snapshot.Member);
// bootMu is held while it works.
type member struct{ *machine }

func (tb *Testbed) members() []snapshot.Member {
	var ms []snapshot.Member
	for _, m := range tb.Machines() {
		ms = append(ms, member{m.machine})
	}
	return ms
}

func (m member) Name() string            { return m.name }
func (m member) Lock()                   { m.bootMu.Lock() }
func (m member) Unlock()                 { m.bootMu.Unlock() }
func (m member) Running() bool           { return m.running() }
func (m member) DisksDir() string        { return m.disksDir() }
func (m member) Stop()                   { m.kill() }
func (m member) Load(state string) error { return m.wrap(m.boot(state)) }
func (m member) SaveState(ctx context.Context, p string) error {
	return m.current().SaveState(ctx, p)
}
func (m member) Pause(ctx context.Context) error  { return m.wrap(m.current().Pause(ctx)) }
func (m member) Resume(ctx context.Context) error { return m.wrap(m.current().Resume(ctx)) }

// Blocked lists the networks whose link Block cut, sorted.
func (m member) Blocked() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ns []string
	for n, b := range m.blocked {
		if b {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns
}

func (m member) SetBlocked(networks []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocked = map[string]bool{}
	for _, n := range networks {
		m.blocked[n] = true
	}
}

// peerName names a fault's peer in a snapshot; peerByName finds it again.
func peerName(k any) string {
	switch k := k.(type) {
	case *machine:
		return k.name
	case *Host:
		return k.name
	}
	return fmt.Sprint(k)
}

func (tb *Testbed) peerByName(name string) (any, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if m := tb.machines[name]; m != nil {
		return m, true
	}
	if h := tb.hosts[name]; h != nil {
		return h, true
	}
	return nil, false
}
