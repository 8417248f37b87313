package shakedown_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
)

// TestSnapshotRestore takes a snapshot of a machine with state in RAM (a
// running process, a file in its RAM root) and on a disk, changes both,
// restores, and finds the snapshot's state in both; the clock is the
// host's and the first command answers at once. Restoring twice works
// (the snapshot's disk copies are not the ones the machine writes), and a
// truncated or missing snapshot is refused with ErrSnapshotUnusable.
func TestSnapshotRestore(t *testing.T) {
	tb := newTestbed(t)
	m := tb.Machine("keeper", shakedown.MachineConfig{Disks: []shakedown.Disk{{Name: "data", SizeMiB: 16}}})
	m.Succeed("mke2fs -q /dev/vda && mkdir /data && mount /dev/vda /data && echo snapped > /data/f && sync")
	m.Succeed("echo snapped > /run/ram")
	pid := strings.TrimSpace(m.Succeed("sleep 100000 >/dev/null 2>&1 & echo $!"))
	tb.Snapshot("ready")
	// The machine runs on after the snapshot.
	m.Succeed("echo changed > /data/f && echo changed > /run/ram && kill " + pid + " && sync")

	for round := range 2 {
		m.Succeed("echo changed > /data/f && echo changed > /run/ram && sync")
		began := time.Now()
		tb.Restore("ready")
		took := time.Since(began)
		got := m.Succeed("cat /data/f /run/ram; kill -0 " + pid + " && echo alive")
		firstCommand := time.Since(began) - took
		if got != "snapped\nsnapped\nalive\n" {
			t.Errorf("round %d: after Restore got %q, want the snapshot's disk, RAM file and process", round, got)
		}
		// At once: a boot takes seconds; a loaded CI host slows both.
		if firstCommand > 3*time.Second {
			t.Errorf("round %d: the first command after Restore took %v", round, firstCommand)
		}
		// busybox date has no %N; a new file's mtime is the clock to the
		// nanosecond. It must fall within the command's time on the host,
		// give or take a second.
		before := time.Now()
		out := m.Succeed("touch /run/now && stat -c %y /run/now")
		after := time.Now()
		guest, err := time.Parse("2006-01-02 15:04:05.999999999 -0700", strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		if guest.Before(before.Add(-time.Second)) || guest.After(after.Add(time.Second)) {
			t.Errorf("round %d: the guest's clock says %v during a command the host timed from %v to %v", round, guest, before, after)
		}
		t.Logf("round %d: restored in %v, first command in %v", round, took, firstCommand)
	}

	// Bad snapshots: a name that is no snapshot, and a truncated state.
	if err := tb.RestoreE("never-taken"); !errors.Is(err, shakedown.ErrSnapshotUnusable) {
		t.Errorf("Restore of a snapshot never taken: got %v, want ErrSnapshotUnusable", err)
	}
	state := filepath.Join(tb.OutputDir(), "snapshots", "ready", "keeper.state")
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(state, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	err = tb.RestoreE("ready")
	if !errors.Is(err, shakedown.ErrSnapshotUnusable) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Restore of a truncated snapshot: got %v, want ErrSnapshotUnusable saying truncated", err)
	}
	// A refused restore leaves the machine as it was.
	if got := m.Succeed("cat /run/ram"); got != "snapped\n" {
		t.Errorf("after a refused Restore got %q", got)
	}
	if err := tb.SnapshotE("../escape"); !errors.Is(err, shakedown.ErrInvalid) {
		t.Errorf("Snapshot with a path for a name: got %v, want ErrInvalid", err)
	}
}

// TestSnapshotPartition restores three machines on two networks with a
// partition and a blocked link in force when the snapshot was taken: after
// restore the partition and the block hold, and healing works.
func TestSnapshotPartition(t *testing.T) {
	tb := newTestbed(t)
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	back := tb.Network("back", shakedown.NetworkOptions{})
	a := tb.Machine("a", shakedown.MachineConfig{Networks: []string{"lan"}})
	b := tb.Machine("b", shakedown.MachineConfig{Networks: []string{"lan", "back"}})
	c := tb.Machine("c", shakedown.MachineConfig{Networks: []string{"lan", "back"}})
	tb.StartAll()
	// c's address on back: the network's number, c's machine number.
	cBack := fmt.Sprintf("192.168.%d.%d", back.Number(), c.Addr().As4()[3])
	lan.Partition([]shakedown.Peer{a}, []shakedown.Peer{b, c})
	c.Block("back")
	const ping = "ping -c 1 -W 1 "
	a.Fail(ping + "b")
	b.WaitUntilSucceeds(ping + "c")
	tb.Snapshot("split")

	lan.Heal()
	c.Unblock("back")
	a.WaitUntilSucceeds(ping + "b")
	b.WaitUntilSucceeds(ping + cBack)

	tb.Restore("split")
	a.Fail(ping + "b")
	a.Fail(ping + "c")
	b.WaitUntilSucceeds(ping + "c") // b and c are on one side of lan
	b.Fail(ping + cBack)            // c's link to back is blocked
	lan.Heal()
	c.Unblock("back")
	a.WaitUntilSucceeds(ping + "b")
	b.WaitUntilSucceeds(ping + cBack)
}
