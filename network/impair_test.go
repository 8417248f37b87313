package network

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// sendAll sends n frames of size bytes from a to b's address and returns the
// sequence numbers b received, in arrival order, once b has been silent for
// a while. Port n has address macOf(n), as learned sets up.
func sendAll(t *testing.T, a, b *HostPort, n, size int) []uint32 {
	t.Helper()
	for i := range n {
		write(t, a, mkFrame(macOf(byte(b.ID())), macOf(byte(a.ID())), uint32(i), size))
	}
	var got []uint32
	for {
		f := tryRead(b, silenceWait)
		if f == nil {
			return got
		}
		got = append(got, seqOf(f))
	}
}

// learned returns a switch with ports a and b that know each other's
// address, so that a's frames to b are unicast, and queues long enough for
// the statistical tests' bursts.
func learned(t *testing.T, seed uint64) (s *Switch, a, b *HostPort) {
	t.Helper()
	s = newSwitch(t, Config{QueueLen: 16384, Seed: seed})
	hs := hostPorts(t, s, "a", "b")
	a, b = hs[0], hs[1]
	write(t, a, mkFrame(broadcast, macOf(1), 0, 60))
	read(t, b)
	write(t, b, mkFrame(broadcast, macOf(2), 0, 60))
	read(t, a)
	return s, a, b
}

// within fails unless got is want±tol.
func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s: got %.4g, want %.4g ± %.4g", what, got, want, tol)
	} else {
		t.Logf("%s: %.4g (want %.4g ± %.4g)", what, got, want, tol)
	}
}

func TestLoss(t *testing.T) {
	const n = 5000
	run := func(seed uint64) []uint32 {
		s, a, b := learned(t, seed)
		if err := s.SetImpairment(a.ID(), Impairment{LossPercent: 30}); err != nil {
			t.Fatal(err)
		}
		got := sendAll(t, a, b, n, 100)
		// 4.5 standard deviations of a binomial(5000, 0.3): about 3%.
		within(t, "loss fraction", 1-float64(len(got))/n, 0.30, 0.03)
		if d := a.Counters().Drops.Loss; d != uint64(n-len(got)) {
			t.Errorf("loss drops counted: got %d, want %d", d, n-len(got))
		}
		if !slices.IsSorted(got) {
			t.Error("loss alone reordered frames")
		}
		return got
	}
	first := run(1)
	if again := run(1); !slices.Equal(first, again) {
		t.Error("same seed, same frames: the lost frames differ")
	}
	if other := run(2); slices.Equal(first, other) {
		t.Error("different seeds lost the very same frames")
	}
}

func TestLinkImpairmentBothWays(t *testing.T) {
	const n = 2000
	s, a, b := learned(t, 0)
	if err := s.SetImpairment(b.ID(), Impairment{LossPercent: 50}); err != nil {
		t.Fatal(err)
	}
	within(t, "a to b delivered", float64(len(sendAll(t, a, b, n, 60)))/n, 0.5, 0.05)
	within(t, "b to a delivered", float64(len(sendAll(t, b, a, n, 60)))/n, 0.5, 0.05)

	// Cleared at run time, it drops nothing more.
	if err := s.SetImpairment(b.ID(), Impairment{}); err != nil {
		t.Fatal(err)
	}
	if got := len(sendAll(t, a, b, n, 60)); got != n {
		t.Errorf("after clearing: got %d frames, want %d", got, n)
	}
}

func TestPairImpairment(t *testing.T) {
	const n = 2000
	s := newSwitch(t, Config{QueueLen: 16384})
	hs := hostPorts(t, s, "a", "b", "c")
	a, b, c := hs[0], hs[1], hs[2]
	if err := s.SetPairImpairment(a.ID(), b.ID(), Impairment{LossPercent: 50}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		write(t, a, mkFrame(broadcast, macOf(1), uint32(i), 60))
	}
	count := func(h *HostPort) int {
		k := 0
		for tryRead(h, silenceWait) != nil {
			k++
		}
		return k
	}
	within(t, "a to b delivered", float64(count(b))/n, 0.5, 0.05)
	if got := count(c); got != n {
		t.Errorf("a to c: got %d frames, want all %d", got, n)
	}
	for i := range n {
		write(t, b, mkFrame(broadcast, macOf(2), uint32(i), 60))
	}
	if got := count(a); got != n {
		t.Errorf("b to a (the reverse pair): got %d frames, want all %d", got, n)
	}
	count(c)

	s.ClearImpairments()
	for i := range n {
		write(t, a, mkFrame(broadcast, macOf(1), uint32(i), 60))
	}
	if got := count(b); got != n {
		t.Errorf("after ClearImpairments: got %d frames, want %d", got, n)
	}
	if err := s.SetPairImpairment(a.ID(), a.ID(), Impairment{LossPercent: 1}); err == nil {
		t.Error("pair impairment of a port with itself: got no error")
	}
}

func TestDuplicate(t *testing.T) {
	const n = 5000
	s, a, b := learned(t, 0)
	if err := s.SetImpairment(b.ID(), Impairment{DuplicatePercent: 20}); err != nil {
		t.Fatal(err)
	}
	got := sendAll(t, a, b, n, 100)
	within(t, "duplicated fraction", float64(len(got)-n)/n, 0.20, 0.03)
	if d := b.Counters().Duplicated; d != uint64(len(got)-n) {
		t.Errorf("duplicates counted: got %d, want %d", d, len(got)-n)
	}
	// A copy follows its original.
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Fatalf("frame %d after %d", got[i], got[i-1])
		}
	}
}

func TestCorrupt(t *testing.T) {
	const n = 5000
	s, a, b := learned(t, 0)
	if err := s.SetImpairment(b.ID(), Impairment{CorruptPercent: 10}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		write(t, a, mkFrame(macOf(2), macOf(1), uint32(i), 200))
	}
	corrupted := 0
	for i := range n {
		// Nothing is lost or reordered: frame i arrives i-th.
		f, want := read(t, b), mkFrame(macOf(2), macOf(1), uint32(i), 200)
		bits := 0
		for j := range f {
			bits += popcount(f[j] ^ want[j])
			if f[j] != want[j] && j < headerLen {
				t.Fatalf("frame %d: corruption in the Ethernet header at byte %d", i, j)
			}
		}
		if bits > 1 {
			t.Fatalf("frame %d: %d bits flipped, want at most 1", i, bits)
		}
		corrupted += bits
	}
	within(t, "corrupted fraction", float64(corrupted)/n, 0.10, 0.02)
	if c := b.Counters().Corrupted; c != uint64(corrupted) {
		t.Errorf("corruptions counted: got %d, want %d", c, corrupted)
	}
}

func popcount(b byte) int {
	n := 0
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}

func TestReorder(t *testing.T) {
	const n = 2000
	s, a, b := learned(t, 0)
	// Held long enough that the whole burst overtakes a held frame.
	if err := s.SetImpairment(b.ID(), Impairment{ReorderPercent: 25, ReorderHold: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		write(t, a, mkFrame(macOf(2), macOf(1), uint32(i), 100))
	}
	late, highest := 0, -1
	for range n {
		seq := int(seqOf(read(t, b)))
		if seq < highest {
			late++
		}
		highest = max(highest, seq)
	}
	within(t, "reordered fraction", float64(late)/n, 0.25, 0.05)
	within(t, "reorders counted", float64(b.Counters().Reordered)/n, 0.25, 0.05)
}

// stamp puts the switch clock's time into a frame.
func stamped(s *Switch, seq uint32) []byte {
	f := mkFrame(macOf(2), macOf(1), seq, 100)
	binary.BigEndian.PutUint64(f[headerLen+4:], uint64(s.clock()))
	return f
}

func TestDelay(t *testing.T) {
	const (
		n      = 200
		delay  = 20 * time.Millisecond
		jitter = 5 * time.Millisecond
	)
	s, a, b := learned(t, 0)
	if err := s.SetImpairment(b.ID(), Impairment{Delay: delay, Jitter: jitter}); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		lats []time.Duration
	)
	wg.Go(func() {
		for range n {
			f := read(t, b)
			sent := int64(binary.BigEndian.Uint64(f[headerLen+4:]))
			lats = append(lats, time.Duration(s.clock()-sent))
		}
	})
	for i := range n {
		write(t, a, stamped(s, uint32(i)))
		time.Sleep(500 * time.Microsecond)
	}
	wg.Wait()
	slices.Sort(lats)
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	mean := sum / n
	t.Logf("latency min %v p50 %v mean %v p99 %v max %v", lats[0], lats[n/2], mean, lats[n*99/100], lats[n-1])
	if lats[0] < delay-jitter {
		t.Errorf("min latency %v, want at least %v", lats[0], delay-jitter)
	}
	// The scheduler only ever adds: allow it 3 ms on the mean, and 15 ms
	// on the slowest but one percent of frames on a loaded machine.
	if mean < delay-time.Millisecond || mean > delay+3*time.Millisecond {
		t.Errorf("mean latency %v, want %v (+3 ms for the scheduler)", mean, delay)
	}
	if p99 := lats[n*99/100]; p99 > delay+jitter+15*time.Millisecond {
		t.Errorf("p99 latency %v, want under %v", p99, delay+jitter+15*time.Millisecond)
	}
	if spread := lats[n*9/10] - lats[n/10]; spread < jitter {
		t.Errorf("p10 to p90 spread %v, want at least %v with %v of jitter", spread, jitter, jitter)
	}
}

func TestRateLimit(t *testing.T) {
	const (
		rate    = 8_000_000 // bit/s
		size    = 1000      // bytes: 1 ms a frame at rate
		period  = 5 * time.Millisecond
		burst   = 10 // frames a period: twice the rate
		sendFor = 600 * time.Millisecond
	)
	s, a, b := learned(t, 0)
	if err := s.SetImpairment(b.ID(), Impairment{RateBitsPerSec: rate}); err != nil {
		t.Fatal(err)
	}
	type arrival struct {
		at    time.Time
		bytes int
	}
	var (
		wg   sync.WaitGroup
		arrs []arrival
	)
	wg.Go(func() {
		for {
			f := tryRead(b, 200*time.Millisecond)
			if f == nil {
				return
			}
			arrs = append(arrs, arrival{time.Now(), len(f)})
		}
	})
	seq := uint32(0)
	for start := time.Now(); time.Since(start) < sendFor; {
		for range burst {
			write(t, a, mkFrame(macOf(2), macOf(1), seq, size))
			seq++
		}
		time.Sleep(period)
	}
	wg.Wait()
	if len(arrs) < 100 {
		t.Fatalf("got %d frames, want hundreds", len(arrs))
	}
	bits := 0
	for _, r := range arrs[1:] {
		bits += 8 * r.bytes
	}
	span := arrs[len(arrs)-1].at.Sub(arrs[0].at)
	within(t, "throughput bit/s", float64(bits)/span.Seconds(), rate, rate/10)
	if d := b.Counters().Drops.RateLimit; d == 0 {
		t.Errorf("rate-limit drops: got none sending at twice the rate")
	}
	t.Logf("sent %d, received %d, rate-limit drops %d", seq, len(arrs), b.Counters().Drops.RateLimit)
}

func TestImpairmentValidation(t *testing.T) {
	s := newSwitch(t, Config{})
	h := hostPorts(t, s, "a")[0]
	for _, imp := range []Impairment{
		{LossPercent: 101},
		{LossPercent: -1},
		{DuplicatePercent: math.NaN()},
		{CorruptPercent: 200},
		{ReorderPercent: -5},
		{Delay: -time.Second},
		{Jitter: -1},
		{RateBitsPerSec: -1},
		{RateBurstBytes: -1},
		{RateQueue: -1},
		{ReorderHold: -1},
	} {
		if err := s.SetImpairment(h.ID(), imp); err == nil {
			t.Errorf("SetImpairment(%+v): got no error", imp)
		}
	}
	if err := s.SetImpairment(77, Impairment{LossPercent: 1}); err == nil {
		t.Error("SetImpairment on no port: got no error")
	}
}

// TestImpairmentStacking checks that a frame between two impaired ports
// meets both impairments, and a pair's on top.
func TestImpairmentStacking(t *testing.T) {
	const n = 4000
	s, a, b := learned(t, 7)
	for _, id := range []PortID{a.ID(), b.ID()} {
		if err := s.SetImpairment(id, Impairment{LossPercent: 20}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetPairImpairment(a.ID(), b.ID(), Impairment{LossPercent: 20}); err != nil {
		t.Fatal(err)
	}
	within(t, "delivered through three 20% stages", float64(len(sendAll(t, a, b, n, 60)))/n, 0.8*0.8*0.8, 0.04)
}

// TestCorruptSparesHeaders checks that a flip never lands in the Ethernet
// header or a VLAN tag, which would send the frame elsewhere.
func TestCorruptSparesHeaders(t *testing.T) {
	st := newStage(Impairment{CorruptPercent: 100}, 0, stageOut, 0, 1, 1522)
	for _, hdr := range []int{headerLen, headerLen + tagLen, headerLen + 2*tagLen} {
		for range 10000 {
			v := st.judge(64, hdr, 0)
			if v.flip < hdr*8 || v.flip >= 64*8 {
				t.Fatalf("headers of %d bytes: flip at bit %d", hdr, v.flip)
			}
		}
	}
}

func TestImpairmentString(t *testing.T) {
	for _, tc := range []struct {
		imp  Impairment
		want string
	}{
		{Impairment{}, "none"},
		{Impairment{LossPercent: 12.5}, "loss 12.5%"},
		{Impairment{Delay: 50 * time.Millisecond, Jitter: 5 * time.Millisecond}, "delay 50ms±5ms"},
		{Impairment{Jitter: time.Millisecond}, "delay 0s±1ms"},
		{Impairment{RateBitsPerSec: 1e6, DuplicatePercent: 1, ReorderPercent: 2, CorruptPercent: 3, Seed: 9},
			"rate 1000000 bit/s, duplicate 1%, reorder 2%, corrupt 3%"},
	} {
		if got := tc.imp.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.imp, got, tc.want)
		}
	}
}
