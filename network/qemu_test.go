package network

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// TestQEMUStream checks the framing against a real QEMU, without a guest or
// even a CPU (-machine none): a QEMU hub joins two stream netdevs, each on a
// port of its own switch, so that every frame goes through QEMU's stream
// parser and back out through its stream writer. Frames of every size
// arriving whole and in order in both directions is the proof. It takes
// well under a second.
func TestQEMUStream(t *testing.T) {
	testenv.NeedVM(t)
	var (
		hosts [2]*HostPort
		ports [2]*Port
	)
	for i := range 2 {
		s := newSwitch(t, Config{Name: fmt.Sprint("qemu", i), MTU: 9000})
		p, err := s.AddPort("qemu")
		if err != nil {
			t.Fatal(err)
		}
		ports[i], hosts[i] = p, hostPorts(t, s, "host")[0]
	}
	var stderr lockedBuffer
	// fds 3 and 4 are ExtraFiles 0 and 1.
	cmd := exec.Command("qemu-system-x86_64",
		"-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
		"-netdev", ports[0].Netdev("n0", 3), "-netdev", ports[1].Netdev("n1", 4),
		"-netdev", "hubport,id=h0,hubid=0,netdev=n0", "-netdev", "hubport,id=h1,hubid=0,netdev=n1")
	cmd.ExtraFiles = []*os.File{ports[0].File(), ports[1].File()}
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	kill := func() {
		cmd.Process.Kill()
		<-waited
	}
	t.Cleanup(kill)
	for _, p := range ports {
		p.File().Close()
	}

	// QEMU connects a stream netdev's fd asynchronously, and its hub drops
	// frames for a netdev not yet connected: probe until both directions
	// go through. Probes may still trail in later; they are skipped.
	const probe = 0xffffffff
	for dir := range 2 {
		from, to := hosts[dir], hosts[1-dir]
		var f []byte
		for deadline := time.Now().Add(frameWait); f == nil && time.Now().Before(deadline); {
			write(t, from, mkFrame(broadcast, macOf(byte(dir+1)), probe, 60))
			f = tryRead(to, 20*time.Millisecond)
		}
		if f == nil {
			t.Fatalf("direction %d: no frame through QEMU within %v; qemu said: %s", dir, frameWait, stderr.String())
		}
	}

	sizes := []int{60, 1514, 61, 9014, 300, 14 + 4}
	for dir := range 2 {
		from, to := hosts[dir], hosts[1-dir]
		var sent [][]byte
		for i, size := range sizes {
			f := mkFrame(broadcast, macOf(byte(dir+1)), uint32(i), size)
			sent = append(sent, f)
			write(t, from, f)
		}
		for i, want := range sent {
			f := tryRead(to, frameWait)
			for f != nil && seqOf(f) == probe {
				f = tryRead(to, frameWait)
			}
			if f == nil {
				t.Fatalf("direction %d: frame %d did not come through QEMU; qemu said: %s", dir, i, stderr.String())
			}
			if !bytes.Equal(f, want) {
				t.Fatalf("direction %d frame %d: got %d bytes %.40x..., want %d bytes %.40x...", dir, i, len(f), f, len(want), want)
			}
		}
	}

	// QEMU's exit reaches the switches as disconnects.
	kill()
	for _, p := range ports {
		select {
		case <-p.Done():
		case <-time.After(frameWait):
			t.Fatal("port still plugged in after QEMU exited")
		}
		if c := p.Counters(); c.Disconnects != 1 || c.Drops.Total() != 0 {
			t.Errorf("after QEMU's exit: got %+v, want one disconnect and no drops", c)
		}
	}
}

// lockedBuffer collects QEMU's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
