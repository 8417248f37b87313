package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// portCore is what the switch knows of a port, whichever its kind.
type portCore struct {
	id   PortID
	name string
	q    *egressQueue
	up   atomic.Bool
	// in and out impair frames from and to the port; nil when not.
	in, out atomic.Pointer[stage]
	c       portCounters
	// direct, when set, tries to write frames that may leave now, in
	// stream framing, straight to the port's peer, and reports whether it
	// did (see Port.writeDirect).
	direct func(stream []byte, frames int, bytes uint64) bool

	closeOnce sync.Once
	// done is closed when the port is removed; err says why.
	done    chan struct{}
	err     error
	onClose func()
}

// Port is a switch port for a QEMU NIC. QEMU holds one end of a Unix
// socketpair (File) and speaks -netdev stream on it; the switch holds the
// other, with a goroutine that reads frames in and one that writes them
// out. When QEMU exits or closes its end the port removes itself
// (Counters.Disconnects); Done and Err tell when and why.
type Port struct {
	core  *portCore
	sw    *Switch
	f     *os.File // our end
	raw   syscall.RawConn
	qemuF *os.File // QEMU's end, until closed

	// wmu is held by whoever writes to f: the writer goroutine, or a
	// forwarding goroutine that writes a frame straight through.
	wmu sync.Mutex
	// tail is what a direct write left unwritten; the writer sends it
	// before anything else.
	tail []byte
}

// AddPort adds a port for a QEMU NIC and starts serving it. The caller
// passes File to QEMU with the argument Netdev returns, and must close the
// port (or the switch) in the end.
func (s *Switch) AddPort(name string) (*Port, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("add port %s to switch %s: socketpair: %w", name, s.name, err)
	}
	// Ours is non-blocking, so that the runtime's poller serves it and
	// Close interrupts its reader and writer; QEMU sets its own end
	// non-blocking itself.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("add port %s to switch %s: %w", name, s.name, err)
	}
	ours := os.NewFile(uintptr(fds[0]), "switch "+s.name+" port "+name)
	qemus := os.NewFile(uintptr(fds[1]), "qemu end of switch "+s.name+" port "+name)
	raw, err := ours.SyscallConn()
	if err != nil {
		ours.Close()
		qemus.Close()
		return nil, fmt.Errorf("add port %s to switch %s: %w", name, s.name, err)
	}
	p := &Port{sw: s, f: ours, raw: raw, qemuF: qemus}
	core, err := s.addPort(name, func() {
		ours.Close()
		qemus.Close()
	}, p.writeDirect, 2)
	if err != nil {
		ours.Close()
		qemus.Close()
		return nil, err
	}
	p.core = core
	go p.readLoop()
	go p.writeLoop()
	return p, nil
}

// ID returns the port's ID.
func (p *Port) ID() PortID { return p.core.id }

// Name returns the port's name.
func (p *Port) Name() string { return p.core.name }

// File returns QEMU's end of the port's socket, to pass in
// qemu.Config.ExtraFiles. The caller closes it once QEMU has started: QEMU
// has its own copy then, and only when every copy is closed does QEMU's
// exit reach the switch as a disconnect. Closing the port closes it too.
func (p *Port) File() *os.File { return p.qemuF }

// Netdev returns the -netdev argument that attaches QEMU to the port: id
// is the netdev's id (a -device's netdev= refers to it) and fd the number
// QEMU has File under (qemu.FirstExtraFD plus its index in ExtraFiles).
func (p *Port) Netdev(id string, fd int) string {
	return fmt.Sprintf("stream,id=%s,addr.type=fd,addr.str=%d", id, fd)
}

// Counters returns the port's counters; they stay readable after the port
// is removed.
func (p *Port) Counters() Counters { return p.core.c.snapshot() }

// Done is closed when the port has been removed, by Close or because its
// peer went away.
func (p *Port) Done() <-chan struct{} { return p.core.done }

// Err says why the port was removed; nil while it is plugged in.
func (p *Port) Err() error {
	select {
	case <-p.core.done:
		return p.core.err
	default:
		return nil
	}
}

// Close unplugs the port and closes both ends of its socket; QEMU sees its
// connection end.
func (p *Port) Close() error {
	p.sw.remove(p.core, fmt.Errorf("port %s: %w", p.core.name, ErrClosed), false)
	return nil
}

// readLoop forwards what QEMU sends until the socket ends. The frames of
// one read go out as a burst, flushed before the next read, which may
// block: batching costs them no more than the time to forward the others.
func (p *Port) readLoop() {
	defer p.sw.wg.Done()
	fr := newFrameReader(p.f)
	var b burst
	for {
		if !fr.ready() {
			p.sw.flush(&b)
		}
		frame, err := fr.next()
		if err != nil {
			p.readFailed(err)
			return
		}
		p.sw.ingress(p.core, frame, &b)
	}
}

func (p *Port) readFailed(err error) {
	name := p.core.name
	switch {
	case errors.Is(err, os.ErrClosed):
		// We closed it: Close, or the writer's failure, said why.
		p.sw.remove(p.core, fmt.Errorf("port %s: %w", name, ErrClosed), false)
	case err == io.EOF:
		p.sw.remove(p.core, fmt.Errorf("port %s: peer disconnected", name), true)
	case errors.Is(err, io.ErrUnexpectedEOF):
		p.core.c.drop(dropTruncated)
		p.sw.remove(p.core, fmt.Errorf("port %s: peer disconnected mid-frame", name), true)
	case errors.Is(err, errBadLength):
		// The stream is out of step: no later prefix can be trusted.
		p.core.c.drop(dropBadLength)
		p.sw.remove(p.core, fmt.Errorf("port %s: %w; closed", name, err), true)
	default:
		p.sw.remove(p.core, fmt.Errorf("port %s: read: %w", name, err), true)
	}
}

// writeDirect writes frames (frames of them, bytes long without their
// prefixes, in stream framing) to QEMU from the forwarding goroutine when
// nothing is queued or being written before them and the socket has room,
// so that the writer goroutine need not be woken for them: at the rate of
// a guest's TCP stream those wake-ups would be most of the switch's CPU
// time. It never blocks. It reports false, leaving the frames to the
// queue, when it wrote nothing; when the socket took only part of them the
// rest is left in p.tail for the writer, which is woken to send it.
func (p *Port) writeDirect(stream []byte, frames int, bytes uint64) bool {
	if !p.wmu.TryLock() {
		return false
	}
	defer p.wmu.Unlock()
	c := p.core
	if p.tail != nil || c.q.len() > 0 {
		return false
	}
	n := 0
	var werr error
	if err := p.raw.Write(func(fd uintptr) bool {
		// The socket is non-blocking: a full one says EAGAIN.
		n, werr = unix.Write(int(fd), stream)
		return true
	}); err != nil || werr != nil || n <= 0 {
		// A real error is the writer's to report, on its next write.
		return false
	}
	if n < len(stream) {
		p.tail = slices.Clone(stream[n:])
		select {
		case c.q.wake <- struct{}{}:
		default:
		}
	}
	c.c.txFrames.Add(uint64(frames))
	c.c.txBytes.Add(bytes)
	return true
}

// writeLoop writes queued frames to QEMU, as many as are ready in one write,
// until the port is removed. A QEMU that stops reading blocks this
// goroutine only; its queue fills and the switch drops what does not fit.
func (p *Port) writeLoop() {
	defer p.sw.wg.Done()
	q := p.core.q
	items := make([]qitem, 0, 64)
	buf := make([]byte, 0, writeBatch+prefixLen+maxStreamFrame)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		p.wmu.Lock()
		if p.tail != nil {
			_, err := p.f.Write(p.tail)
			p.tail = nil
			if err != nil {
				p.wmu.Unlock()
				p.writeFailed(err, 0)
				return
			}
		}
		now := p.sw.clock()
		var next int64
		items, next = q.pop(now, items[:0], cap(items), writeBatch)
		if len(items) > 0 {
			buf = buf[:0]
			var frames, bytes uint64
			up := p.core.up.Load()
			for _, it := range items {
				if !up {
					p.core.c.drop(dropLinkDown)
					continue
				}
				buf = appendFrame(buf, it.data)
				frames++
				bytes += uint64(len(it.data))
			}
			clear(items) // let the frames go
			if len(buf) > 0 {
				if _, err := p.f.Write(buf); err != nil {
					p.wmu.Unlock()
					p.writeFailed(err, frames)
					return
				}
				p.core.c.txFrames.Add(frames)
				p.core.c.txBytes.Add(bytes)
			}
			p.wmu.Unlock()
			continue
		}
		p.wmu.Unlock()
		var fire <-chan time.Time
		if next >= 0 {
			timer.Reset(time.Duration(next - now))
			fire = timer.C
		}
		select {
		case <-q.wake:
		case <-fire:
		case <-p.core.done:
			timer.Stop()
			return
		}
		timer.Stop()
	}
}

// writeFailed removes the port after a failed write of frames frames.
func (p *Port) writeFailed(err error, frames uint64) {
	if errors.Is(err, os.ErrClosed) {
		return // Close, or the reader's failure, said why.
	}
	p.core.c.drops[dropClosed].Add(frames)
	p.sw.remove(p.core, fmt.Errorf("port %s: write: %w", p.core.name, err), true)
}

// HostPort is a switch port for Go code in the test process: a gVisor
// netstack endpoint, a fake service, or a test that sends frames by hand.
// Frames go in by WriteFrame, in the caller's goroutine, and come out by
// ReadFrame.
type HostPort struct {
	core *portCore
	sw   *Switch
	// reading admits one ReadFrame at a time, so that the queue's single
	// wake-up token always reaches the one waiter.
	reading chan struct{}
}

// AddHostPort adds an in-process port. The caller must close it (or the
// switch) in the end.
func (s *Switch) AddHostPort(name string) (*HostPort, error) {
	core, err := s.addPort(name, nil, nil, 0)
	if err != nil {
		return nil, err
	}
	return &HostPort{core: core, sw: s, reading: make(chan struct{}, 1)}, nil
}

// ID returns the port's ID.
func (h *HostPort) ID() PortID { return h.core.id }

// Name returns the port's name.
func (h *HostPort) Name() string { return h.core.name }

// Counters returns the port's counters; they stay readable after the port
// is removed.
func (h *HostPort) Counters() Counters { return h.core.c.snapshot() }

// WriteFrame sends an Ethernet frame (header, payload, no FCS) into the
// switch; the switch copies it, so the caller may reuse frame at once. Like
// a NIC, it does not report what happens to the frame next: a malformed,
// oversized or impaired frame is dropped and counted, and WriteFrame
// returns nil. It fails only once the port or switch is closed.
func (h *HostPort) WriteFrame(frame []byte) error {
	select {
	case <-h.core.done:
		return fmt.Errorf("write frame to port %s: %w", h.core.name, ErrClosed)
	default:
	}
	b := burstPool.Get().(*burst)
	h.sw.ingress(h.core, frame, b)
	h.sw.flush(b)
	burstPool.Put(b)
	return nil
}

// ReadFrame returns the next frame for this port, waiting for one until
// ctx ends or the port is closed. The frame is the caller's to keep and
// change. Calls may come from several goroutines; they take turns.
func (h *HostPort) ReadFrame(ctx context.Context) ([]byte, error) {
	select {
	case h.reading <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("read frame from port %s: %w", h.core.name, ctx.Err())
	}
	defer func() { <-h.reading }()
	q := h.core.q
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := h.sw.clock()
		it, ok, next := q.popOne(now)
		if ok {
			if !h.core.up.Load() {
				h.core.c.drop(dropLinkDown)
				continue
			}
			data := it.data
			h.core.c.txFrames.Add(1)
			h.core.c.txBytes.Add(uint64(len(data)))
			return data, nil
		}
		var fire <-chan time.Time
		if next >= 0 {
			if timer == nil {
				timer = time.NewTimer(time.Duration(next - now))
			} else {
				timer.Reset(time.Duration(next - now))
			}
			fire = timer.C
		}
		select {
		case <-q.wake:
		case <-fire:
		case <-h.core.done:
			return nil, fmt.Errorf("read frame from port %s: %w", h.core.name, ErrClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("read frame from port %s: %w", h.core.name, ctx.Err())
		}
	}
}

// Close unplugs the port; a ReadFrame waiting returns ErrClosed.
func (h *HostPort) Close() error {
	h.sw.remove(h.core, fmt.Errorf("port %s: %w", h.core.name, ErrClosed), false)
	return nil
}
