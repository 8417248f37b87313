package shakedown

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"

	"github.com/shakedown-dev/shakedown/internal/snapshot"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// envCheckpointChild makes TestCheckpointAcrossProcesses the process that
// makes the checkpoint, under the key it holds.
const envCheckpointChild = "SHAKEDOWN_TEST_CHECKPOINT_CHILD"

// TestCheckpointAcrossProcesses makes a checkpoint in one test process
// and restores it in another, without running setup; then damages it,
// and the next Checkpoint sets up cold and saves it anew. The entry is
// removed at the end: only the test's cache is the user's.
func TestCheckpointAcrossProcesses(t *testing.T) {
	testenv.NeedVM(t)
	cfg := MachineConfig{Disks: []Disk{{Name: "data", SizeMiB: 8}}}
	const mark = "echo made > /run/mark && echo made > /dev/vda && sync"
	if key := os.Getenv(envCheckpointChild); key != "" {
		tb := New(t, Options{QuietConsole: true})
		m := tb.Machine("saved", cfg)
		tb.Checkpoint(key, func() { m.Succeed(mark) })
		return
	}
	b := make([]byte, 8)
	rand.Read(b)
	key := "across-" + hex.EncodeToString(b)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointAcrossProcesses$", "-test.v")
	cmd.Env = append(os.Environ(), envCheckpointChild+"="+key)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the process making the checkpoint failed: %v\n%s", err, out)
	}

	tb := New(t, Options{QuietConsole: true})
	m := tb.Machine("saved", cfg)
	k, err := tb.checkpointKey(key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.cache.Remove(snapshot.Kind, k) })
	dir, ok := tb.cache.Lookup(snapshot.Kind, k)
	if !ok {
		t.Fatalf("no checkpoint %s in the cache after the child made it:\n%s", k, out)
	}
	tb.Checkpoint(key, func() { t.Error("setup ran although the checkpoint was there") })
	if got := m.Succeed("cat /run/mark; head -c 5 /dev/vda"); got != "made\nmade\n" {
		t.Errorf("restored machine holds %q, want the child's marks in RAM and on disk", got)
	}

	// A damaged checkpoint: the next testbed sets up cold and saves anew.
	if err := os.Truncate(snapshot.StatePath(dir, "saved"), 100); err != nil {
		t.Fatal(err)
	}
	tb2 := New(t, Options{QuietConsole: true})
	m2 := tb2.Machine("saved", cfg)
	ran := false
	tb2.Checkpoint(key, func() { ran = true; m2.Succeed(mark) })
	if !ran {
		t.Fatal("setup did not run for a damaged checkpoint")
	}
	if _, err := snapshot.Read(dir); err != nil {
		t.Errorf("the checkpoint was not saved anew: %v", err)
	}
	if got := m2.Succeed("cat /run/mark"); got != "made\n" {
		t.Errorf("after a cold setup got %q", got)
	}
}
