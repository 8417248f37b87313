package network

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// directCall is one call of a fake port's direct write.
type directCall struct {
	frames [][]byte
	bytes  uint64
}

// splitStream splits frames in stream framing.
func splitStream(t *testing.T, stream []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(stream) > 0 {
		if len(stream) < prefixLen {
			t.Fatalf("stream ends in a length prefix: %x", stream)
		}
		n := prefixLen + int(binary.BigEndian.Uint32(stream))
		if n > len(stream) {
			t.Fatalf("stream ends inside a frame: prefix says %d bytes, %d left", n-prefixLen, len(stream)-prefixLen)
		}
		out = append(out, bytes.Clone(stream[prefixLen:n]))
		stream = stream[n:]
	}
	return out
}

// fakeDirectPort adds a port whose direct writes are recorded, and succeed
// while *accept is true.
func fakeDirectPort(t *testing.T, s *Switch, name string, calls *[]directCall, accept *bool) *portCore {
	t.Helper()
	p, err := s.addPort(name, nil, func(stream []byte, frames int, n uint64) bool {
		if !*accept {
			return false
		}
		fs := splitStream(t, stream)
		if len(fs) != frames {
			t.Errorf("direct write to %s: %d frames in the stream, told %d", name, len(fs), frames)
		}
		*calls = append(*calls, directCall{fs, n})
		return true
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBurst checks what a burst hands each destination: the frames bound
// for it, in order, in as few direct writes as writeBatch allows, and into
// its queue, in order and copied, when a direct write is refused.
func TestBurst(t *testing.T) {
	tests := []struct {
		name   string
		sizes  []int // frames to a, then b, alternating
		accept bool
		// wantWrites is the direct writes expected for a.
		wantWrites int
	}{
		{"one write per destination", []int{60, 1514, 60, 1514, 100}, true, 1},
		{"a write's worth goes first", []int{9000, 60, 9000, 60, 9000, 60, 9000, 60, 9000, 60, 9000, 60, 9000, 60, 9000, 60}, true, 2},
		{"refused goes to the queue", []int{60, 1514, 60}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSwitch(t, Config{MTU: 9000})
			accept := tt.accept
			var aCalls, bCalls []directCall
			a := fakeDirectPort(t, s, "a", &aCalls, &accept)
			bp := fakeDirectPort(t, s, "b", &bCalls, &accept)
			var b burst
			var wantA, wantB [][]byte
			for i, size := range tt.sizes {
				f := mkFrame(macOf(1), macOf(2), uint32(i), size)
				dst, want := a, &wantA
				if i%2 == 1 {
					dst, want = bp, &wantB
				}
				*want = append(*want, bytes.Clone(f))
				s.addToBurst(&b, dst, f)
				// The burst must hold a copy: the caller's buffer is
				// the next read's.
				clear(f)
			}
			s.flush(&b)
			if b.n != 0 {
				t.Errorf("after flush: %d destinations held, want 0", b.n)
			}
			for _, d := range []struct {
				p     *portCore
				calls []directCall
				want  [][]byte
			}{{a, aCalls, wantA}, {bp, bCalls, wantB}} {
				var got [][]byte
				if tt.accept {
					if d.p == a && len(d.calls) != tt.wantWrites {
						t.Errorf("port a: %d direct writes, want %d", len(d.calls), tt.wantWrites)
					}
					for _, c := range d.calls {
						var n uint64
						for _, f := range c.frames {
							n += uint64(len(f))
						}
						if n != c.bytes {
							t.Errorf("port %s: direct write told %d bytes, frames hold %d", d.p.name, c.bytes, n)
						}
						if len(c.frames) > 1 && n+uint64(prefixLen*len(c.frames)) > writeBatch {
							t.Errorf("port %s: direct write of %d bytes, beyond writeBatch %d", d.p.name, n, writeBatch)
						}
						got = append(got, c.frames...)
					}
				} else {
					if len(d.calls) != 0 {
						t.Fatalf("port %s: direct writes while refused", d.p.name)
					}
					for d.p.q.len() > 0 {
						it, ok, _ := d.p.q.popOne(s.clock())
						if !ok {
							t.Fatalf("port %s: queued frame not yet released", d.p.name)
						}
						got = append(got, it.data)
					}
				}
				if len(got) != len(d.want) {
					t.Fatalf("port %s: got %d frames, want %d", d.p.name, len(got), len(d.want))
				}
				for i := range got {
					if !bytes.Equal(got[i], d.want[i]) {
						t.Errorf("port %s frame %d: got seq %d (%d bytes), want seq %d (%d bytes)",
							d.p.name, i, seqOf(got[i]), len(got[i]), seqOf(d.want[i]), len(d.want[i]))
					}
				}
			}
		})
	}
}

// TestPortBurst sends frames from one QEMU to another that is not reading,
// many to a write as a guest's TCP stream does, with the receiver's socket
// small enough that bursts are taken in part, or not at all, and queued.
// When the receiver reads, every frame must arrive whole and in order.
func TestPortBurst(t *testing.T) {
	const frames = 300
	s := newSwitch(t, Config{QueueLen: frames, MTU: 9000})
	var ports []*Port
	for i := range 2 {
		p, err := s.AddPort("vm" + string(rune('1'+i)))
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	var serr error
	if err := ports[1].raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	sender, receiver := fakeQEMU(t, ports[0]), fakeQEMU(t, ports[1])
	// The receiver's MAC is learned first, so that frames go to it alone.
	h := hostPorts(t, s, "host")[0]
	if _, err := receiver.Write(prefixed(mkFrame(broadcast, macOf(2), 0, 60))); err != nil {
		t.Fatal(err)
	}
	read(t, h)
	var want [][]byte
	var batch []byte
	for i := range frames {
		f := mkFrame(macOf(2), macOf(1), uint32(i), 1000+(i*997)%8000)
		want = append(want, f)
		batch = appendFrame(batch, f)
		if i%20 == 19 || i == frames-1 {
			if _, err := sender.Write(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// Once the switch has read them all, the receiver's socket is full
	// and the rest wait in its queue.
	for deadline := time.Now().Add(frameWait); ports[0].Counters().RxFrames < frames; {
		if time.Now().After(deadline) {
			t.Fatalf("switch read %d frames from the sender in %v, want %d", ports[0].Counters().RxFrames, frameWait, frames)
		}
		time.Sleep(time.Millisecond)
	}
	if q := ports[1].core.q.len(); q == 0 {
		t.Errorf("receiver's queue empty with its socket full: want the bursts that did not fit queued")
	}
	for i, w := range want {
		if got := readPrefixed(t, receiver); !bytes.Equal(got, w) {
			t.Fatalf("frame %d: got seq %d (%d bytes), want seq %d (%d bytes)", i, seqOf(got), len(got), seqOf(w), len(w))
		}
	}
	if c := ports[1].Counters(); c.TxFrames != frames || c.Drops.Total() != 0 {
		t.Errorf("got tx %d, drops %+v; want tx %d and no drops", c.TxFrames, c.Drops, frames)
	}
}
