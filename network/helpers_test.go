package network

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// Test timeouts. A frame crosses the switch in microseconds; these leave
// room for a loaded CI machine without making a failing test slow.
const (
	// frameWait bounds the wait for a frame that must arrive.
	frameWait = 5 * time.Second
	// silenceWait is how long a port must stay silent to pass for one
	// that receives nothing.
	silenceWait = 50 * time.Millisecond
)

// newSwitch returns a switch closed when the test ends.
func newSwitch(t testing.TB, cfg Config) *Switch {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close switch: %v", err)
		}
	})
	return s
}

// hostPorts adds one host port per name.
func hostPorts(t testing.TB, s *Switch, names ...string) []*HostPort {
	t.Helper()
	var hs []*HostPort
	for _, n := range names {
		h, err := s.AddHostPort(n)
		if err != nil {
			t.Fatalf("AddHostPort(%q): %v", n, err)
		}
		hs = append(hs, h)
	}
	return hs
}

// macOf is the DESIGN.md address of machine n on network 1.
func macOf(n byte) mac { return mac{0x52, 0x54, 0x00, 0x12, 0x01, n} }

var broadcast = mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// etherTest is IEEE's local experimental EtherType: no stack parses it.
const etherTest = 0x88b5

// mkFrame builds an untagged frame whose payload starts with seq and is
// size bytes long in all (at least 18).
func mkFrame(dst, src mac, seq uint32, size int) []byte {
	f := make([]byte, max(size, headerLen+4))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], etherTest)
	binary.BigEndian.PutUint32(f[14:], seq)
	for i := headerLen + 4; i < len(f); i++ {
		f[i] = byte(i)
	}
	return f
}

// seqOf returns the sequence number mkFrame put in f.
func seqOf(f []byte) uint32 { return binary.BigEndian.Uint32(f[headerLen:]) }

func write(t testing.TB, h *HostPort, f []byte) {
	t.Helper()
	if err := h.WriteFrame(f); err != nil {
		t.Fatalf("WriteFrame on %s: %v", h.Name(), err)
	}
}

// read returns the next frame for h, failing the test after frameWait.
func read(t testing.TB, h *HostPort) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	f, err := h.ReadFrame(ctx)
	if err != nil {
		t.Fatalf("ReadFrame on %s: %v", h.Name(), err)
	}
	return f
}

// silent fails the test if h receives a frame within silenceWait.
func silent(t testing.TB, h *HostPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), silenceWait)
	defer cancel()
	f, err := h.ReadFrame(ctx)
	if err == nil {
		t.Fatalf("port %s got a frame (seq %d, %d bytes), want none", h.Name(), seqOf(f), len(f))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFrame on %s: %v, want a timeout", h.Name(), err)
	}
}

// tryRead returns the next frame within d, or nil.
func tryRead(h *HostPort, d time.Duration) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	f, _ := h.ReadFrame(ctx)
	return f
}
