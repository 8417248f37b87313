package shakedown

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/internal/snapshot"
	"github.com/shakedown-dev/shakedown/network"
	"github.com/shakedown-dev/shakedown/qemu"
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
	dir, err := tb.snapshotDir(name)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		err = tb.save(dir, name)
	}
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
	dir, err := tb.snapshotDir(name)
	if err == nil {
		err = tb.restore(dir)
	}
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
	if dir, ok := tb.cache.Lookup(snapshot.Kind, k); ok {
		began := time.Now()
		err := tb.restore(dir)
		if err == nil {
			tb.logf("shakedown: checkpoint %s restored in %.2fs", key, time.Since(began).Seconds())
			return nil
		}
		tb.logf("shakedown: checkpoint %s: %v; setting up cold", key, err)
		tb.stopAll()
		for _, m := range tb.Machines() {
			os.RemoveAll(m.disksDir())
		}
		if err := tb.cache.Remove(snapshot.Kind, k); err != nil {
			return fmt.Errorf("checkpoint %s: %w", key, err)
		}
	}
	if err := setup(); err != nil {
		return err
	}
	_, err = tb.cache.Dir(snapshot.Kind, k, func(tmp string) error { return tb.save(tmp, key) })
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", key, err)
	}
	return nil
}

// checkpointKey is a checkpoint's cache key: the user's key with every
// machine's configuration and boot files, the networks and hosts.
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
	if bin, err := exec.LookPath(qemu.DefaultBinary); err == nil {
		fi, err := os.Stat(bin)
		if err != nil {
			return "", err
		}
		parts = append(parts, accel, fi.Size(), fi.ModTime().UnixNano())
	}
	for _, m := range tb.Machines() {
		bf, err := tb.bootFiles(tb.ctx, m.name, m.cfg)
		if err != nil {
			return "", err
		}
		cfg := m.cfg
		cfg.BootTimeout = 0
		parts = append(parts, part{Name: m.name, Number: tb.machineNumber(m.name), Config: cfg, Boot: [3]string{bf.kernel, bf.initrd, bf.root}})
	}
	for _, n := range tb.allNetworks() {
		parts = append(parts, n.name, n.Number())
	}
	return snapshot.Key(key, parts)
}

// save pauses every running machine at once, saves the testbed into dir
// and lets the machines run on. Every machine's bootMu is held
// throughout, so that no verb starts or stops one meanwhile.
func (tb *Testbed) save(dir, name string) error {
	ms := tb.Machines()
	for _, m := range ms {
		m.bootMu.Lock()
		defer m.bootMu.Unlock()
	}
	ctx, cancel := context.WithTimeoutCause(tb.ctx, snapshotTimeout, fmt.Errorf("%w after %v saving the testbed", ErrTimeout, snapshotTimeout))
	defer cancel()
	man := snapshot.Manifest{Name: name, Made: time.Now(), Faults: map[string]network.FaultState{}}
	var running []*Machine
	for _, m := range ms {
		mc := snapshot.Machine{Name: m.name, Running: m.running(), Blocked: m.blockedNetworks()}
		if mc.Running {
			running = append(running, m)
		}
		man.Machines = append(man.Machines, mc)
	}
	// Pause all first: the saved states are of one moment.
	err := eachMachine(running, func(m *Machine) error { return m.pause(ctx) })
	if err == nil {
		err = eachMachine(running, func(m *Machine) error {
			return m.procNow().QMP.SaveState(ctx, snapshot.StatePath(dir, m.name))
		})
	}
	for _, m := range ms {
		if err == nil {
			err = snapshot.CopyDisks(m.disksDir(), snapshot.DisksPath(dir, m.name))
		}
	}
	for _, n := range tb.allNetworks() {
		man.Faults[n.name] = n.faults.State(peerName)
	}
	if err == nil {
		err = snapshot.Write(dir, man)
	}
	if rerr := eachMachine(running, func(m *Machine) error { return m.resume(ctx) }); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// restore replaces the testbed's machines and faults with the snapshot
// in dir.
func (tb *Testbed) restore(dir string) error {
	man, err := snapshot.Read(dir)
	if err != nil {
		return err
	}
	ms := tb.Machines()
	for _, mc := range man.Machines {
		if !slices.ContainsFunc(ms, func(m *Machine) bool { return m.name == mc.Name }) {
			return fmt.Errorf("%w: it holds machine %s, which this testbed does not declare", ErrSnapshotUnusable, mc.Name)
		}
	}
	for name, fs := range man.Faults {
		n := tb.lookupNetwork(name)
		if n == nil {
			return fmt.Errorf("%w: it holds network %s, which this testbed does not declare", ErrSnapshotUnusable, name)
		}
		if err := n.faults.SetState(fs, tb.peerByName); err != nil {
			return fmt.Errorf("%w: network %s: %w", ErrSnapshotUnusable, name, err)
		}
	}
	var running []*Machine
	for _, m := range ms {
		mc, ok := man.Machine(m.name)
		if !ok {
			continue // declared after the snapshot: left as it is
		}
		m.bootMu.Lock()
		defer m.bootMu.Unlock()
		m.kill()
		m.mu.Lock()
		m.blocked = map[string]bool{}
		for _, n := range mc.Blocked {
			m.blocked[n] = true
		}
		m.mu.Unlock()
		if err := snapshot.CopyDisks(snapshot.DisksPath(dir, m.name), m.disksDir()); err != nil {
			return err
		}
		if mc.Running {
			running = append(running, m)
		}
	}
	return eachMachine(running, func(m *Machine) error {
		return m.wrap(m.boot(snapshot.StatePath(dir, m.name)))
	})
}

// eachMachine runs f on every machine at once and joins their errors.
func eachMachine(ms []*Machine, f func(*Machine) error) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = f(m) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pause ends the agent session, so that the guest's agent goes back to
// waiting for a host, and stops the vCPUs; bootMu is held.
func (m *machine) pause(ctx context.Context) error {
	m.mu.Lock()
	agent, proc := m.agent, m.proc
	m.agent = nil
	m.mu.Unlock()
	if agent != nil {
		// The agent notices that the host went away, closes its port and
		// opens it again for the next host; QEMU reports the opening. A
		// state saved before it would hold the dead session, which would
		// swallow the next host's first hello (half a second).
		events, unsubscribe := proc.QMP.Subscribe()
		agent.Close()
		awaitPortOpen(ctx, events, reopenWait)
		unsubscribe()
	}
	if err := proc.QMP.Stop(ctx); err != nil {
		return m.wrap(fmt.Errorf("pause: %w", err))
	}
	return nil
}

// reopenWait bounds the wait for the agent to reopen its port: past it,
// the snapshot is taken all the same, and costs a hello on restore.
const reopenWait = 5 * time.Second

// awaitPortOpen waits until QEMU reports that the guest opened a
// virtio-serial port (VSERPORT_CHANGE), for at most d.
func awaitPortOpen(ctx context.Context, events <-chan qemu.Event, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case e := <-events:
			var data struct{ Open bool }
			if e.Name == "VSERPORT_CHANGE" && json.Unmarshal(e.Data, &data) == nil && data.Open {
				return
			}
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// resume runs a machine that pause stopped, reconnects its agent and
// sets its clock to the host's; bootMu is held.
func (m *machine) resume(ctx context.Context) error {
	proc := m.procNow()
	if err := proc.QMP.Cont(ctx); err != nil {
		return m.wrap(fmt.Errorf("resume: %w", err))
	}
	client, err := dialAgent(ctx, proc, true)
	if err != nil {
		return m.wrap(fmt.Errorf("resume: agent: %w", err))
	}
	m.mu.Lock()
	m.agent = client
	m.mu.Unlock()
	return nil
}

func (m *machine) procNow() *qemu.Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// blockedNetworks lists the networks whose link Block cut, sorted.
func (m *machine) blockedNetworks() []string {
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
