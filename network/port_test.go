package network

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeQEMU takes QEMU's end of p, as QEMU would, and closes the original as
// the machine layer does once QEMU has started.
func fakeQEMU(t *testing.T, p *Port) net.Conn {
	t.Helper()
	c, err := net.FileConn(p.File())
	if err != nil {
		t.Fatalf("FileConn: %v", err)
	}
	p.File().Close()
	t.Cleanup(func() { c.Close() })
	return c
}

func prefixed(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = appendFrame(b, f)
	}
	return b
}

// readPrefixed reads one length-prefixed frame from c.
func readPrefixed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(frameWait))
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		t.Fatalf("read length prefix: %v", err)
	}
	f := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c, f); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

func TestPortFraming(t *testing.T) {
	s := newSwitch(t, Config{})
	p, err := s.AddPort("vm")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Netdev("n0", 6), "stream,id=n0,addr.type=fd,addr.str=6"; got != want {
		t.Errorf("Netdev: got %q, want %q", got, want)
	}
	qemu := fakeQEMU(t, p)
	h := hostPorts(t, s, "host")[0]

	// Several frames in one write, a runt and an oversized frame among
	// them: the two bad ones are dropped, the stream stays in step.
	good := [][]byte{mkFrame(broadcast, macOf(1), 1, 60), mkFrame(broadcast, macOf(1), 2, 1514)}
	if _, err := qemu.Write(prefixed(good[0], []byte{1, 2, 3}, make([]byte, 1515), good[1])); err != nil {
		t.Fatal(err)
	}
	for _, want := range good {
		if got := read(t, h); !bytes.Equal(got, want) {
			t.Fatalf("from QEMU: got seq %d (%d bytes), want seq %d", seqOf(got), len(got), seqOf(want))
		}
	}
	if d := p.Counters().Drops; d != (Drops{Malformed: 1, Oversize: 1}) {
		t.Errorf("QEMU port drops: got %+v, want one malformed, one oversize", d)
	}

	// And back: each frame with its length prefix.
	for i := range 3 {
		want := mkFrame(macOf(1), macOf(2), uint32(10+i), 100+i)
		write(t, h, want)
		if got := readPrefixed(t, qemu); !bytes.Equal(got, want) {
			t.Fatalf("to QEMU: got %x, want %x", got, want)
		}
	}
	if c := p.Counters(); c.TxFrames != 3 || c.RxFrames != 4 {
		t.Errorf("QEMU port: got tx %d rx %d, want tx 3 rx 4", c.TxFrames, c.RxFrames)
	}
}

func TestPortDisconnect(t *testing.T) {
	frame := mkFrame(broadcast, macOf(1), 1, 60)
	for _, tc := range []struct {
		name  string
		send  []byte
		drops Drops
	}{
		{"between frames", prefixed(frame), Drops{}},
		{"in a prefix", append(prefixed(frame), 0, 0), Drops{Truncated: 1}},
		{"in a frame", append(prefixed(frame), prefixed(frame)[:30]...), Drops{Truncated: 1}},
		{"bad length", append(prefixed(frame), 0x7f, 0xff, 0xff, 0xff, 1, 2, 3), Drops{BadLength: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSwitch(t, Config{})
			p, err := s.AddPort("vm")
			if err != nil {
				t.Fatal(err)
			}
			qemu := fakeQEMU(t, p)
			h := hostPorts(t, s, "host")[0]
			if _, err := qemu.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.drops.BadLength == 0 {
				qemu.Close()
			}
			select {
			case <-p.Done():
			case <-time.After(frameWait):
				t.Fatal("port still plugged in after its peer went")
			}
			t.Logf("Err: %v", p.Err())
			if p.Err() == nil {
				t.Error("Err: got nil, want why the port went")
			}
			if got := read(t, h); !bytes.Equal(got, frame) {
				t.Errorf("the whole frame before the end: got %x, want %x", got, frame)
			}
			c := p.Counters()
			if c.Drops != tc.drops || c.Disconnects != 1 {
				t.Errorf("got drops %+v disconnects %d, want %+v and 1", c.Drops, c.Disconnects, tc.drops)
			}
			if sc := s.Counters(); sc.Disconnects != 1 || sc.RxFrames != c.RxFrames {
				t.Errorf("switch counters: got %+v, want the removed port's in them", sc)
			}
			// The switch goes on without it.
			write(t, h, frame)
			if _, err := s.AddHostPort("after"); err != nil {
				t.Errorf("AddHostPort after a disconnect: %v", err)
			}
			if tc.drops.BadLength != 0 {
				// Its end is closed: the peer reads the end of the stream.
				qemu.SetReadDeadline(time.Now().Add(frameWait))
				if _, err := io.ReadAll(qemu); err != nil {
					t.Errorf("peer after a bad length: %v, want EOF", err)
				}
			}
		})
	}
}

// TestPortBackpressure sends a QEMU that is not reading more than its
// socket holds: frames go straight to the socket until it is full, and
// the rest wait in the queue. A small send buffer makes the kernel take
// jumbo frames in pieces, so that the socket fills in the middle of one.
// When QEMU reads, every frame must arrive whole and in order.
func TestPortBackpressure(t *testing.T) {
	const frames = 300
	s := newSwitch(t, Config{QueueLen: frames, MTU: 9000})
	p, err := s.AddPort("vm")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.raw.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	}); err != nil {
		t.Fatal(err)
	}
	qemu := fakeQEMU(t, p)
	h := hostPorts(t, s, "host")[0]
	// Learn the QEMU port's MAC, so that frames go to it alone.
	if _, err := qemu.Write(prefixed(mkFrame(broadcast, macOf(1), 0, 60))); err != nil {
		t.Fatal(err)
	}
	read(t, h)
	var want [][]byte
	for i := range frames {
		f := mkFrame(macOf(1), macOf(2), uint32(i), 5001+i%7)
		f[len(f)-1] = byte(i)
		want = append(want, f)
		write(t, h, f)
	}
	if q := p.core.q.len(); q == 0 {
		t.Errorf("queue empty after %d frames to a QEMU that does not read: want the socket full and frames queued", frames)
	}
	for i, w := range want {
		if got := readPrefixed(t, qemu); !bytes.Equal(got, w) {
			t.Fatalf("frame %d: got seq %d (%d bytes), want seq %d (%d bytes)", i, seqOf(got), len(got), seqOf(w), len(w))
		}
	}
	if c := p.Counters(); c.TxFrames != frames || c.Drops.Total() != 0 {
		t.Errorf("got tx %d, drops %+v; want tx %d and no drops", c.TxFrames, c.Drops, frames)
	}
}
