package network

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestLearningAndFlooding(t *testing.T) {
	s := newSwitch(t, Config{Name: "learn"})
	hs := hostPorts(t, s, "a", "b", "c")
	a, b, c := hs[0], hs[1], hs[2]
	ma, mb := macOf(1), macOf(2)

	// Nothing is known yet: a's frame to b floods to b and c.
	f := mkFrame(mb, ma, 1, 60)
	write(t, a, f)
	for _, h := range []*HostPort{b, c} {
		if got := read(t, h); !bytes.Equal(got, f) {
			t.Fatalf("flooded frame at %s: got %x, want %x", h.Name(), got, f)
		}
	}
	silent(t, a)

	// a is learned: b's answer goes to a only.
	write(t, b, mkFrame(ma, mb, 2, 60))
	if got := seqOf(read(t, a)); got != 2 {
		t.Fatalf("answer at a: got seq %d, want 2", got)
	}
	silent(t, c)

	// b is learned now too: unicast both ways.
	write(t, a, mkFrame(mb, ma, 3, 60))
	if got := seqOf(read(t, b)); got != 3 {
		t.Fatalf("unicast at b: got seq %d, want 3", got)
	}
	silent(t, c)

	// Broadcast and multicast flood, whatever is learned.
	for i, dst := range []mac{broadcast, {0x01, 0x00, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}} {
		write(t, c, mkFrame(dst, macOf(3), uint32(10+i), 60))
		for _, h := range []*HostPort{a, b} {
			if got := seqOf(read(t, h)); got != uint32(10+i) {
				t.Fatalf("group frame to %x at %s: got seq %d, want %d", dst, h.Name(), got, 10+i)
			}
		}
		silent(t, c)
	}

	// A frame whose destination sits behind its own port is filtered.
	write(t, a, mkFrame(ma, macOf(9), 20, 60))
	silent(t, a)
	silent(t, b)

	ca := a.Counters()
	if ca.RxFrames != 3 || ca.TxFrames != 4 {
		t.Errorf("a counters: got rx %d tx %d, want rx 3 tx 4", ca.RxFrames, ca.TxFrames)
	}
	if sc := s.Counters(); sc.RxFrames != 7 || sc.Drops.Total() != 0 {
		t.Errorf("switch counters: got rx %d drops %+v, want rx 7 and no drops", sc.RxFrames, sc.Drops)
	}
}

func TestAgeing(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	s := newSwitch(t, Config{Now: clock, Ageing: time.Minute})
	hs := hostPorts(t, s, "a", "b", "c")
	a, b, c := hs[0], hs[1], hs[2]
	ma, mb := macOf(1), macOf(2)

	write(t, a, mkFrame(broadcast, ma, 1, 60))
	read(t, b)
	read(t, c)

	advance(59 * time.Second)
	write(t, b, mkFrame(ma, mb, 2, 60))
	read(t, a)
	silent(t, c) // still learned

	advance(time.Second)
	write(t, b, mkFrame(ma, mb, 3, 60))
	if got := seqOf(read(t, c)); got != 3 {
		t.Fatalf("after ageing, c: got seq %d, want 3 (flooded)", got)
	}
	read(t, a)

	// An address that moves is learned on its new port at once.
	write(t, c, mkFrame(broadcast, ma, 4, 60))
	read(t, a)
	read(t, b)
	write(t, b, mkFrame(ma, mb, 5, 60))
	if got := seqOf(read(t, c)); got != 5 {
		t.Fatalf("after the move, c: got seq %d, want 5", got)
	}
	silent(t, a)
}

func TestMACTableBounded(t *testing.T) {
	tab := newMACTable(time.Minute)
	now := time.Unix(0, 0)
	for i := range maxMACs + 100 {
		src := mac{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		tab.forward(src, broadcast, 1, now)
	}
	if n := len(tab.m); n != maxMACs {
		t.Fatalf("table size: got %d, want %d", n, maxMACs)
	}
	// Once the old entries age, new ones find room again.
	later := now.Add(time.Minute)
	src := mac{0x02, 1, 1, 1, 1, 1}
	tab.forward(src, broadcast, 2, later)
	if p, ok := tab.lookup(src, later); !ok || p != 2 {
		t.Fatalf("lookup after expiry: got %d %v, want 2 true", p, ok)
	}
	// A group address is never learned as a source.
	tab.forward(broadcast, src, 3, later)
	if _, ok := tab.lookup(broadcast, later); ok {
		t.Fatal("broadcast address learned as a source")
	}
}

func TestVLANPassthrough(t *testing.T) {
	s := newSwitch(t, Config{})
	hs := hostPorts(t, s, "a", "b")
	a, b := hs[0], hs[1]
	tagged := func(tags []uint16, payload int) []byte {
		var f []byte
		f = append(f, broadcast[:]...)
		src := macOf(1)
		f = append(f, src[:]...)
		for _, tpid := range tags {
			f = append(f, byte(tpid>>8), byte(tpid), 0x20, 0x0a) // PCP 1, VID 10
		}
		f = append(f, 0x08, 0x00)
		for i := range payload {
			f = append(f, byte(i))
		}
		return f
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"802.1Q full MTU", tagged([]uint16{0x8100}, 1500), true},
		{"QinQ full MTU", tagged([]uint16{0x88a8, 0x8100}, 1500), true},
		{"802.1Q over MTU", tagged([]uint16{0x8100}, 1501), false},
		{"three tags get two tags' room", tagged([]uint16{0x88a8, 0x8100, 0x8100}, 1500), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.Counters().Drops.Oversize + a.Counters().Drops.Oversize
			write(t, a, tc.frame)
			if !tc.pass {
				silent(t, b)
				if got := b.Counters().Drops.Oversize + a.Counters().Drops.Oversize - before; got != 1 {
					t.Fatalf("oversize drops: got %d, want 1", got)
				}
				return
			}
			if got := read(t, b); !bytes.Equal(got, tc.frame) {
				t.Fatalf("tagged frame changed: got %x, want %x", got, tc.frame)
			}
		})
	}
}

func TestMTU(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mtu       int
		size      int
		pass      bool
		malformed bool
	}{
		{"default full", 0, 1514, true, false},
		{"default over", 0, 1515, false, false},
		{"header only", 0, 14, true, false},
		{"runt", 0, 13, false, true},
		{"empty", 0, 0, false, true},
		{"jumbo full", 9000, 9014, true, false},
		{"jumbo over", 9000, 9015, false, false},
		{"max mtu", MaxMTU, headerLen + MaxMTU, true, false},
		{"small mtu", 576, 591, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSwitch(t, Config{MTU: tc.mtu})
			hs := hostPorts(t, s, "a", "b")
			a, b := hs[0], hs[1]
			f := make([]byte, tc.size)
			if tc.size >= headerLen {
				copy(f, mkFrame(broadcast, macOf(1), 1, tc.size))
			}
			write(t, a, f)
			if tc.pass {
				if got := read(t, b); len(got) != tc.size {
					t.Fatalf("got %d bytes, want %d", len(got), tc.size)
				}
				return
			}
			silent(t, b)
			d := a.Counters().Drops
			want := Drops{Oversize: 1}
			if tc.malformed {
				want = Drops{Malformed: 1}
			}
			if d != want {
				t.Fatalf("drops: got %+v, want %+v", d, want)
			}
		})
	}
	for _, mtu := range []int{-1, MinMTU - 1, MaxMTU + 1} {
		if _, err := New(Config{MTU: mtu}); err == nil {
			t.Errorf("New with MTU %d: got no error", mtu)
		}
	}
}

// TestStalledPort checks that ports whose peers stop reading, a host port
// nobody reads and a QEMU port whose peer is stopped, cost the others
// nothing: the frames meant for them are dropped at their queues.
func TestStalledPort(t *testing.T) {
	const frames = 3000
	s := newSwitch(t, Config{QueueLen: 64})
	hs := hostPorts(t, s, "sender", "reader", "stalled")
	sender, reader, stalled := hs[0], hs[1], hs[2]
	// A QEMU port whose QEMU never reads: its socket buffer fills, then its
	// writer blocks for good.
	q, err := s.AddPort("stopped-qemu")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range frames {
		// Broadcast: every frame is queued for every port.
		write(t, sender, mkFrame(broadcast, macOf(1), uint32(i), 1514))
		if got := seqOf(read(t, reader)); got != uint32(i) {
			t.Fatalf("reader: got seq %d, want %d", got, i)
		}
	}
	took := time.Since(start)
	if sd := stalled.Counters().Drops.QueueFull; sd != frames-64 {
		t.Errorf("stalled host port queue-full drops: got %d, want %d", sd, frames-64)
	}
	if qd := q.Counters().Drops.QueueFull; qd == 0 || qd >= frames {
		t.Errorf("stopped QEMU port queue-full drops: got %d, want some but not all %d", qd, frames)
	}
	if rd := reader.Counters().Drops.Total(); rd != 0 {
		t.Errorf("reader drops: got %d, want 0", rd)
	}
	t.Logf("%d frames through with two stalled ports in %v; QEMU port took %d before it blocked",
		frames, took, q.Counters().TxFrames)
}

func TestLinkDown(t *testing.T) {
	s := newSwitch(t, Config{})
	hs := hostPorts(t, s, "a", "b")
	a, b := hs[0], hs[1]
	ma, mb := macOf(1), macOf(2)
	write(t, b, mkFrame(broadcast, mb, 0, 60))
	read(t, a)

	// A frame queued for b when its link goes down is dropped too.
	write(t, a, mkFrame(mb, ma, 1, 60))
	if err := s.SetLink(b.ID(), false); err != nil {
		t.Fatal(err)
	}
	write(t, a, mkFrame(mb, ma, 2, 60))
	write(t, b, mkFrame(ma, mb, 3, 60))
	silent(t, a)
	silent(t, b)
	if got := b.Counters().Drops.LinkDown; got != 3 {
		t.Errorf("b link-down drops: got %d, want 3 (queued, to, from)", got)
	}

	if err := s.SetLink(b.ID(), true); err != nil {
		t.Fatal(err)
	}
	write(t, a, mkFrame(mb, ma, 4, 60))
	if got := seqOf(read(t, b)); got != 4 {
		t.Fatalf("after link up: got seq %d, want 4", got)
	}
	if err := s.SetLink(99, false); !errors.Is(err, ErrNoPort) {
		t.Errorf("SetLink(99): got %v, want ErrNoPort", err)
	}
}

func TestPartition(t *testing.T) {
	s := newSwitch(t, Config{})
	hs := hostPorts(t, s, "a", "b", "c", "dns")
	a, b, c, dns := hs[0], hs[1], hs[2], hs[3]
	if err := s.Partition([]PortID{a.ID(), b.ID()}, []PortID{c.ID()}); err != nil {
		t.Fatal(err)
	}
	// reach lists who hears a broadcast from each port.
	reach := func(from *HostPort, want ...*HostPort) {
		t.Helper()
		write(t, from, mkFrame(broadcast, macOf(byte(from.ID())), uint32(from.ID()), 60))
		for _, h := range hs {
			if h == from {
				continue
			}
			heard := tryRead(h, silenceWait) != nil
			wanted := false
			for _, w := range want {
				wanted = wanted || w == h
			}
			if heard != wanted {
				t.Errorf("%s heard %s: %v, want %v", h.Name(), from.Name(), heard, wanted)
			}
		}
	}
	reach(a, b, dns)
	reach(c, dns)
	reach(dns, a, b, c)
	// Drops count at the receiving port: a to c, c to a, c to b.
	if got := s.Counters().Drops.Partition; got != 3 {
		t.Errorf("partition drops: got %d, want 3", got)
	}

	s.Heal()
	reach(a, b, c, dns)
	reach(c, a, b, dns)

	for _, tc := range []struct {
		name   string
		groups [][]PortID
		want   error
	}{
		{"unknown port", [][]PortID{{a.ID()}, {42}}, ErrNoPort},
		{"port twice", [][]PortID{{a.ID()}, {a.ID(), b.ID()}}, nil},
	} {
		err := s.Partition(tc.groups...)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want an error (%v)", tc.name, err, tc.want)
		}
	}
}

func TestClose(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	hs := hostPorts(t, s, "a")
	p, err := s.AddPort("q")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := hs[0].ReadFrame(t.Context())
		readErr <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("ReadFrame after Close: got %v, want ErrClosed", err)
		}
	case <-time.After(frameWait):
		t.Fatal("ReadFrame still waiting after Close")
	}
	if err := hs[0].WriteFrame(mkFrame(broadcast, macOf(1), 0, 60)); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteFrame after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.AddHostPort("late"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddHostPort after Close: got %v, want ErrClosed", err)
	}
	if !errors.Is(p.Err(), ErrClosed) {
		t.Errorf("QEMU port Err after Close: got %v, want ErrClosed", p.Err())
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
