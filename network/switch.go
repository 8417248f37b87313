package network

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MTU bounds.
const (
	// DefaultMTU is Ethernet's payload size.
	DefaultMTU = 1500
	// MinMTU is the least IPv4 requires of a link.
	MinMTU = 68
	// MaxMTU is the largest IP packet; the frame around it still fits
	// QEMU's buffer.
	MaxMTU = 65535
)

// Errors callers branch on.
var (
	// ErrClosed says the switch or the port is closed.
	ErrClosed = errors.New("closed")
	// ErrNoPort says a port ID names no port of the switch (never added,
	// or removed since).
	ErrNoPort = errors.New("no such port")
)

// PortID names a port within its switch. IDs start at 1 and are never
// reused, so a stale ID cannot reach a newer port.
type PortID int

// Config configures a Switch. The zero value is a switch with a 1500-byte
// MTU, DefaultQueueLen frames per egress queue, DefaultAgeing, no capture
// and no log.
type Config struct {
	// Name names the switch (the network) in errors and log lines.
	Name string
	// MTU is the largest payload of a frame, without the Ethernet header
	// and up to two VLAN tags; 0 means DefaultMTU. Larger frames are
	// dropped and counted (Drops.Oversize).
	MTU int
	// QueueLen is the length of each port's egress queue in frames; 0
	// means DefaultQueueLen.
	QueueLen int
	// Ageing is how long a learned address stays without traffic from it;
	// 0 means DefaultAgeing.
	Ageing time.Duration
	// Now is the clock of address ageing; nil means time.Now. Tests set it
	// to age addresses without sleeping. Delays and rate limits always run
	// on the real clock, since they must really wait.
	Now func() time.Time
	// Seed seeds every impairment's random choices, together with the
	// impairment's own Seed.
	Seed uint64
	// Capture, if not nil, receives a pcap file of every frame that enters
	// the switch, as it entered: before any drop or impairment, so it shows
	// what the machines sent, malformed frames included. The switch buffers
	// it, flushes it every 200 ms and on Close, and never closes it: the
	// caller does, after Close.
	Capture io.Writer
	// CapturePath, if set and Capture is not, is a file the switch
	// creates for the capture, and closes on Close.
	CapturePath string
	// Logf, if not nil, receives a line for each port that goes away other
	// than by Close, and for a capture that fails.
	Logf func(format string, args ...any)
}

// Switch is an in-process learning Ethernet switch: one per network. It
// forwards each frame in the goroutine that received it (a QEMU port's
// reader, or the caller of HostPort.WriteFrame): straight to a destination
// QEMU's socket when nothing waits before it and the socket has room (the
// frames of one read together, in one write per destination), else into
// the destination's bounded egress queue, so a slow port only ever loses
// its own frames. Its methods may be called from any goroutine. The creator must
// call Close, which stops every goroutine the switch started.
type Switch struct {
	name        string
	mtu         int
	queueLen    int
	seed        uint64
	nowFn       func() time.Time
	logf        func(format string, args ...any)
	epoch       time.Time
	mac         *macTable
	capture     *capture
	captureFile *os.File // made from Config.CapturePath; closed by Close

	// state is what forwarding reads on every frame; control operations
	// replace it whole (under mu) rather than lock it.
	state atomic.Pointer[state]

	mu     sync.Mutex
	nextID PortID
	gone   []*portCore // removed ports, whose counters still count
	closed bool

	done chan struct{}
	wg   sync.WaitGroup
}

// state is an immutable snapshot of the switch's ports and rules.
type state struct {
	ports map[PortID]*portCore
	// list holds the ports in ID order, the order frames are flooded in.
	list []*portCore
	// group is each partitioned port's group; a port absent from it
	// talks to every port.
	group map[PortID]int
	pairs map[pairKey]*stage
}

type pairKey struct{ src, dst PortID }

// New returns a running switch.
func New(cfg Config) (*Switch, error) {
	s := &Switch{
		name: cfg.Name, mtu: cfg.MTU, queueLen: cfg.QueueLen, seed: cfg.Seed,
		nowFn: cfg.Now, logf: cfg.Logf, epoch: time.Now(), done: make(chan struct{}),
	}
	if s.mtu == 0 {
		s.mtu = DefaultMTU
	}
	if s.mtu < MinMTU || s.mtu > MaxMTU {
		return nil, fmt.Errorf("new switch %s: mtu %d not in %d..%d", s.name, s.mtu, MinMTU, MaxMTU)
	}
	if s.queueLen == 0 {
		s.queueLen = DefaultQueueLen
	}
	if s.queueLen < 0 {
		return nil, fmt.Errorf("new switch %s: negative queue length %d", s.name, s.queueLen)
	}
	ageing := cfg.Ageing
	if ageing == 0 {
		ageing = DefaultAgeing
	}
	if ageing < 0 {
		return nil, fmt.Errorf("new switch %s: negative ageing %v", s.name, ageing)
	}
	s.mac = newMACTable(ageing)
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if cfg.Capture == nil && cfg.CapturePath != "" {
		f, err := os.Create(cfg.CapturePath)
		if err != nil {
			return nil, fmt.Errorf("new switch %s: capture: %w", s.name, err)
		}
		cfg.Capture, s.captureFile = f, f
	}
	if cfg.Capture != nil {
		c, err := newCapture(cfg.Capture)
		if err != nil {
			if s.captureFile != nil {
				s.captureFile.Close()
			}
			return nil, fmt.Errorf("new switch %s: capture: %w", s.name, err)
		}
		s.capture = c
		s.wg.Add(1)
		go s.flushCapture()
	}
	s.state.Store(&state{ports: map[PortID]*portCore{}})
	return s, nil
}

// MTU returns the switch's MTU.
func (s *Switch) MTU() int { return s.mtu }

// Close removes every port (QEMU sees its connection end), waits for the
// switch's goroutines to return and flushes the capture. It returns the
// capture's first error, if any. Closing twice is harmless.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ports := s.state.Load().list
	s.mu.Unlock()
	for _, p := range ports {
		s.remove(p, fmt.Errorf("port %s: switch closed: %w", p.name, ErrClosed), false)
	}
	close(s.done)
	s.wg.Wait()
	var err error
	if s.capture != nil {
		err = s.capture.flush()
	}
	if s.captureFile != nil {
		err = errors.Join(err, s.captureFile.Close())
	}
	if err != nil {
		return fmt.Errorf("close switch %s: %w", s.name, err)
	}
	return nil
}

func (s *Switch) flushCapture() {
	defer s.wg.Done()
	t := time.NewTicker(captureFlushEvery)
	defer t.Stop()
	logged := false
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if err := s.capture.flush(); err != nil && !logged {
				s.logf("switch %s: capture stopped: %v", s.name, err)
				logged = true
			}
		}
	}
}

// Counters returns the sum of every port's counters, removed ports'
// included.
func (s *Switch) Counters() Counters {
	s.mu.Lock()
	ports := append(slices.Clone(s.gone), s.state.Load().list...)
	s.mu.Unlock()
	var c Counters
	for _, p := range ports {
		c.add(p.c.snapshot())
	}
	return c
}

// clock returns the time in nanoseconds since the switch started: the
// clock of delays and rate limits.
func (s *Switch) clock() int64 { return int64(time.Since(s.epoch)) }

// addPort creates a port and plugs it in. onClose runs when it is removed;
// the caller then starts the port's goroutines, which addPort has already
// counted in s.wg: counted under s.mu, they cannot be missed by a Close
// that runs meanwhile.
func (s *Switch) addPort(name string, onClose func(), direct func(stream []byte, frames int, bytes uint64) bool, goroutines int) (*portCore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("add port %s to switch %s: %w", name, s.name, ErrClosed)
	}
	s.nextID++
	p := &portCore{id: s.nextID, name: name, q: newEgressQueue(s.queueLen), done: make(chan struct{}), onClose: onClose, direct: direct}
	s.wg.Add(goroutines)
	if p.name == "" {
		p.name = fmt.Sprintf("%d", p.id)
	}
	p.up.Store(true)
	old := s.state.Load()
	st := *old
	st.ports = make(map[PortID]*portCore, len(old.ports)+1)
	for id, q := range old.ports {
		st.ports[id] = q
	}
	st.ports[p.id] = p
	st.list = append(slices.Clip(old.list), p)
	s.state.Store(&st)
	return p, nil
}

// remove unplugs p for the reason err; peer says its peer went away.
// Frames still queued for it are dropped and counted (Drops.Closed).
func (s *Switch) remove(p *portCore, err error, peer bool) {
	p.closeOnce.Do(func() {
		s.mu.Lock()
		old := s.state.Load()
		if old.ports[p.id] == p {
			st := *old
			st.ports = make(map[PortID]*portCore, len(old.ports))
			for id, q := range old.ports {
				if id != p.id {
					st.ports[id] = q
				}
			}
			st.list = slices.DeleteFunc(slices.Clone(old.list), func(q *portCore) bool { return q == p })
			if _, ok := old.group[p.id]; ok {
				st.group = filterPorts(old.group, func(id PortID) bool { return id != p.id })
			}
			if len(old.pairs) > 0 {
				st.pairs = make(map[pairKey]*stage, len(old.pairs))
				for k, v := range old.pairs {
					if k.src != p.id && k.dst != p.id {
						st.pairs[k] = v
					}
				}
			}
			s.state.Store(&st)
			s.gone = append(s.gone, p)
		}
		s.mu.Unlock()
		s.mac.forget(p.id)
		if peer {
			p.c.disconnects.Add(1)
			s.logf("switch %s: %v", s.name, err)
		}
		p.err = err
		close(p.done)
		p.c.drops[dropClosed].Add(uint64(p.q.close()))
		if p.onClose != nil {
			p.onClose()
		}
	})
}

// filterPorts copies the entries of m whose key keep accepts.
func filterPorts[V any](m map[PortID]V, keep func(PortID) bool) map[PortID]V {
	c := make(map[PortID]V, len(m))
	for k, v := range m {
		if keep(k) {
			c[k] = v
		}
	}
	return c
}

// lookup returns the live port id, or an error naming op.
func (s *Switch) lookup(op string, id PortID) (*portCore, error) {
	p := s.state.Load().ports[id]
	if p == nil {
		return nil, fmt.Errorf("%s: switch %s port %d: %w", op, s.name, id, ErrNoPort)
	}
	return p, nil
}

// SetLink sets the link of port id up or down. A down link drops every
// frame from and to the port (Drops.LinkDown), the frames queued for it
// included, and forgets the addresses learned on it, as a switch does when
// a cable is pulled. The guest does not see carrier loss from this alone;
// the machine layer tells QEMU (QMP set_link) as well.
func (s *Switch) SetLink(id PortID, up bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.lookup("set link", id)
	if err != nil {
		return err
	}
	p.up.Store(up)
	if !up {
		p.c.drops[dropLinkDown].Add(uint64(p.q.flush()))
		s.mac.forget(id)
	}
	return nil
}

// SetImpairment impairs the link of port id, as a faulty cable would: each
// direction, to and from the port, is impaired on its own, with its own
// random choices and its own rate limit. A frame between two impaired ports
// is impaired by both. The zero Impairment clears it. Setting an impairment
// starts its random sequence and token bucket afresh.
func (s *Switch) SetImpairment(id PortID, imp Impairment) error {
	if err := imp.validate(); err != nil {
		return fmt.Errorf("set impairment: switch %s port %d: %w", s.name, id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.lookup("set impairment", id)
	if err != nil {
		return err
	}
	if imp.IsZero() {
		p.in.Store(nil)
		p.out.Store(nil)
		return nil
	}
	maxFrame := headerLen + s.mtu + maxTags*tagLen
	p.in.Store(newStage(imp, s.seed, stageIn, id, 0, maxFrame))
	p.out.Store(newStage(imp, s.seed, stageOut, 0, id, maxFrame))
	return nil
}

// SetPairImpairment impairs the frames from port src to port dst, in that
// direction only (set the reverse pair too for both). It comes on top of
// the two ports' own impairments; the zero Impairment clears it.
func (s *Switch) SetPairImpairment(src, dst PortID, imp Impairment) error {
	if err := imp.validate(); err != nil {
		return fmt.Errorf("set pair impairment: switch %s ports %d to %d: %w", s.name, src, dst, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range []PortID{src, dst} {
		if _, err := s.lookup("set pair impairment", id); err != nil {
			return err
		}
	}
	if src == dst {
		return fmt.Errorf("set pair impairment: switch %s: port %d to itself", s.name, src)
	}
	old := s.state.Load()
	st := *old
	st.pairs = make(map[pairKey]*stage, len(old.pairs)+1)
	for k, v := range old.pairs {
		st.pairs[k] = v
	}
	k := pairKey{src, dst}
	if imp.IsZero() {
		delete(st.pairs, k)
	} else {
		st.pairs[k] = newStage(imp, s.seed, stagePair, src, dst, headerLen+s.mtu+maxTags*tagLen)
	}
	s.state.Store(&st)
	return nil
}

// ClearImpairments clears every port's and every pair's impairment.
func (s *Switch) ClearImpairments() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	for _, p := range old.list {
		p.in.Store(nil)
		p.out.Store(nil)
	}
	st := *old
	st.pairs = nil
	s.state.Store(&st)
}

// Partition splits the switch's ports into groups that cannot reach each
// other: frames between ports of different groups are dropped
// (Drops.Partition). A port in no group, or added later, still reaches
// every port, so that services every machine needs (a DNS or DHCP host
// port) stay reachable across a partition of the machines; list it in a
// group to cut it off too. Partition replaces any earlier partition; a
// port may be in one group only.
func (s *Switch) Partition(groups ...[]PortID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	group := make(map[PortID]int)
	for g, ids := range groups {
		for _, id := range ids {
			if _, err := s.lookup("partition", id); err != nil {
				return err
			}
			if h, ok := group[id]; ok {
				return fmt.Errorf("partition: switch %s: port %d in groups %d and %d", s.name, id, h, g)
			}
			group[id] = g
		}
	}
	st := *old
	st.group = group
	s.state.Store(&st)
	return nil
}

// Heal undoes Partition: every port reaches every other again.
func (s *Switch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := *s.state.Load()
	st.group = nil
	s.state.Store(&st)
}

// partitioned reports whether a partition separates ports a and b.
func (st *state) partitioned(a, b PortID) bool {
	if st.group == nil {
		return false
	}
	ga, oka := st.group[a]
	gb, okb := st.group[b]
	return oka && okb && ga != gb
}

// pending is a frame on its way through impairment stages to one queue.
type pending struct {
	// data is borrowed from the port that sent it: it is copied before
	// it is queued anywhere.
	data   []byte
	hdr    int   // bytes of Ethernet header and VLAN tags
	arrive int64 // when it entered the switch
	at     int64 // when it may leave
	flips  [3]int32
	nflips int
}

// ingress forwards a frame received from port p. frame is only borrowed:
// it is copied before it is queued anywhere. Frames for QEMU ports that may
// leave at once gather in b, which the caller flushes.
func (s *Switch) ingress(p *portCore, frame []byte, b *burst) {
	p.c.rxFrames.Add(1)
	p.c.rxBytes.Add(uint64(len(frame)))
	wall := time.Now()
	if s.capture != nil {
		s.capture.write(frame, wall)
	}
	if len(frame) < headerLen {
		p.c.drop(dropMalformed)
		return
	}
	tags := vlanTags(frame)
	if len(frame) > headerLen+s.mtu+tagLen*min(tags, maxTags) {
		p.c.drop(dropOversize)
		return
	}
	if !p.up.Load() {
		p.c.drop(dropLinkDown)
		return
	}
	st := s.state.Load()
	if st.ports[p.id] != p {
		// Removed while this frame was on its way in.
		p.c.drop(dropClosed)
		return
	}
	macNow := wall
	if s.nowFn != nil {
		macNow = s.nowFn()
	}
	out, known := s.mac.forward(mac(frame[6:12]), mac(frame[0:6]), p.id, macNow)
	var dst *portCore
	if known {
		dst = st.ports[out]
		if dst == p {
			// Both ends sit behind this port: a switch filters it.
			return
		}
	}
	now := int64(wall.Sub(s.epoch))
	f := pending{data: frame, hdr: headerLen + tagLen*tags, arrive: now, at: now}
	copies := 1
	if in := p.in.Load(); in != nil {
		v := in.judge(len(frame), f.hdr, now)
		if v.drop {
			p.c.drop(v.reason)
			return
		}
		f.apply(v, &p.c)
		if v.dup {
			copies = 2
		}
	}
	for range copies {
		if dst != nil {
			s.deliver(st, p, dst, f, b)
			continue
		}
		for _, d := range st.list {
			if d != p {
				s.deliver(st, p, d, f, b)
			}
		}
	}
}

// apply records a stage's verdict in f and in the counters c of the port
// it is charged to.
func (f *pending) apply(v verdict, c *portCounters) {
	f.at = v.at
	if v.flip >= 0 && f.nflips < len(f.flips) {
		f.flips[f.nflips] = int32(v.flip)
		f.nflips++
		c.corrupted.Add(1)
	}
	if v.dup {
		c.duplicated.Add(1)
	}
	if v.reordered {
		c.reordered.Add(1)
	}
}

// deliver takes f from src to dst's queue, through the partition, dst's
// link and the pair's and dst's impairments.
func (s *Switch) deliver(st *state, src, dst *portCore, f pending, b *burst) {
	if !dst.up.Load() {
		dst.c.drop(dropLinkDown)
		return
	}
	if st.partitioned(src.id, dst.id) {
		dst.c.drop(dropPartition)
		return
	}
	var stages [2]*stage
	if st.pairs != nil {
		stages[0] = st.pairs[pairKey{src.id, dst.id}]
	}
	stages[1] = dst.out.Load()
	s.pass(dst, f, stages[:], b)
}

// pass runs f through the stages left, then queues it.
func (s *Switch) pass(dst *portCore, f pending, stages []*stage, b *burst) {
	for len(stages) > 0 && stages[0] == nil {
		stages = stages[1:]
	}
	if len(stages) == 0 {
		s.enqueue(dst, f, b)
		return
	}
	v := stages[0].judge(len(f.data), f.hdr, f.at)
	if v.drop {
		dst.c.drop(v.reason)
		return
	}
	f.apply(v, &dst.c)
	if v.dup {
		s.pass(dst, f, stages[1:], b)
	}
	s.pass(dst, f, stages[1:], b)
}

// enqueue hands f to dst: a frame that may leave now and is bound for a
// QEMU port joins the burst b, to be written with the others that b holds
// for it; any other goes into dst's queue, as a copy.
func (s *Switch) enqueue(dst *portCore, f pending, b *burst) {
	data, owned := f.data, false
	if f.nflips > 0 {
		data, owned = slices.Clone(data), true
		for _, bit := range f.flips[:f.nflips] {
			data[bit/8] ^= 1 << (bit % 8)
		}
	}
	if f.at <= f.arrive && dst.direct != nil {
		s.addToBurst(b, dst, data)
		return
	}
	if !owned {
		data = slices.Clone(data)
	}
	s.push(dst, data, f.at, f.arrive)
}

// push queues data, which dst's queue then owns, to leave at release.
func (s *Switch) push(dst *portCore, data []byte, release, arrive int64) {
	switch dst.q.push(qitem{data: data, release: release}, arrive) {
	case pushFull:
		dst.c.drop(dropQueueFull)
	case pushClosed:
		dst.c.drop(dropClosed)
	}
}
