package network

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// TestQEMUStream checks the framing against a real QEMU, without a guest:
// QEMU itself announces its NIC (QMP announce-self sends RARP frames from
// the NIC's address), and a filter-dump on the netdev records what QEMU
// parsed of the frames the switch sent it. It takes well under a second.
func TestQEMUStream(t *testing.T) {
	testenv.NeedVM(t)
	s := newSwitch(t, Config{Name: "qemu"})
	p, err := s.AddPort("vm")
	if err != nil {
		t.Fatal(err)
	}
	h := hostPorts(t, s, "host")[0]
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	qmpOurs, qmpTheirs := os.NewFile(uintptr(fds[0]), "qmp"), os.NewFile(uintptr(fds[1]), "qmp qemu")
	defer qmpOurs.Close()
	dump := filepath.Join(t.TempDir(), "nic.pcap")
	nicMAC := macOf(1)
	// fds 3 and 4 are ExtraFiles 0 and 1.
	cmd := exec.Command("qemu-system-x86_64",
		"-nodefaults", "-no-user-config", "-display", "none", "-machine", "q35,accel=tcg",
		"-netdev", p.Netdev("n0", 3),
		// No option ROM: iPXE would send DHCP of its own.
		"-device", fmt.Sprintf("virtio-net-pci,netdev=n0,romfile=,mac=%02x:%02x:%02x:%02x:%02x:%02x",
			nicMAC[0], nicMAC[1], nicMAC[2], nicMAC[3], nicMAC[4], nicMAC[5]),
		"-object", "filter-dump,id=dump,netdev=n0,file="+dump,
		"-chardev", "socket,id=qmp,fd=4", "-mon", "chardev=qmp,mode=control")
	cmd.ExtraFiles = []*os.File{p.File(), qmpTheirs}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
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
	p.File().Close()
	qmpTheirs.Close()

	qmp := bufio.NewReader(qmpOurs)
	command := func(c string) {
		t.Helper()
		qmpOurs.SetDeadline(time.Now().Add(frameWait))
		if _, err := fmt.Fprintln(qmpOurs, c); err != nil {
			t.Fatalf("qmp %s: %v", c, err)
		}
		for {
			line, err := qmp.ReadString('\n')
			if err != nil {
				t.Fatalf("qmp %s: %v; qemu said: %s", c, err, stderr.String())
			}
			if strings.HasPrefix(line, `{"return"`) {
				return
			}
			if strings.HasPrefix(line, `{"error"`) {
				t.Fatalf("qmp %s: %s", c, line)
			}
		}
	}
	command(`{"execute":"qmp_capabilities"}`)
	command(`{"execute":"announce-self","arguments":{"initial":10,"max":100,"rounds":1,"step":10}}`)

	f := read(t, h)
	if len(f) != 60 || !bytes.Equal(f[6:12], nicMAC[:]) || binary.BigEndian.Uint16(f[12:]) != 0x8035 {
		t.Fatalf("from QEMU: got %x, want a 60-byte RARP frame from %x", f, nicMAC)
	}

	// Frames of several sizes to the NIC, which QEMU must parse back
	// exactly: a misread prefix would garble every frame after it.
	var sent [][]byte
	for i, size := range []int{60, 1514, 61, 300} {
		fr := mkFrame(nicMAC, macOf(2), uint32(i), size)
		sent = append(sent, fr)
		write(t, h, fr)
	}
	deadline := time.Now().Add(frameWait)
	var got [][]byte
	for time.Now().Before(deadline) {
		got = dumpedFrom(t, dump, macOf(2))
		if len(got) >= len(sent) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != len(sent) {
		t.Fatalf("QEMU's dump holds %d of our %d frames", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d as QEMU read it: got %d bytes %x, want %d bytes", i, len(got[i]), got[i], len(sent[i]))
		}
	}

	// QEMU's exit reaches the switch as a disconnect.
	kill()
	select {
	case <-p.Done():
	case <-time.After(frameWait):
		t.Fatal("port still plugged in after QEMU exited")
	}
	if c := p.Counters(); c.Disconnects != 1 || c.Drops.Total() != 0 {
		t.Errorf("after QEMU's exit: got %+v, want one disconnect and no drops", c)
	}
}

// dumpedFrom returns the frames from src in a pcap QEMU is writing.
func dumpedFrom(t *testing.T, path string, src mac) [][]byte {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer file.Close()
	r, err := pcapgo.NewReader(file)
	if err != nil {
		return nil
	}
	var frames [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return frames
		}
		if len(data) >= headerLen && bytes.Equal(data[6:12], src[:]) {
			frames = append(frames, data)
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
