package network

import (
	"encoding/binary"
	"slices"
	"sync"
)

// A burst gathers the frames that one batch of input forwards to QEMU
// ports, each destination's frames back to back in stream framing, so
// that they leave in one write per destination instead of one per frame.
// A port's reader fills one from each read of its socket, which under a
// guest's TCP stream holds about ten frames: a tenth of the writes for the
// switch, and a tenth of the wake-ups for the receiving QEMU, which then
// hands the guest its frames together. A burst is used by one goroutine
// at a time.
type burst struct {
	// outs[:n] are in use, one per destination, in the order first sent
	// to; the rest keep their buffers for reuse.
	outs []burstOut
	n    int
}

// burstOut is what a burst holds for one destination.
type burstOut struct {
	dst *portCore
	// stream is the frames with their length prefixes, as they are
	// written to the destination's socket.
	stream []byte
	frames int
	bytes  uint64
}

// burstPool serves the bursts of host ports, whose frames come one per
// WriteFrame from any goroutine.
var burstPool = sync.Pool{New: func() any { return new(burst) }}

// addToBurst appends frame, which may leave now, to what b holds for dst.
// When dst already holds a write's worth, that goes first.
func (s *Switch) addToBurst(b *burst, dst *portCore, frame []byte) {
	var o *burstOut
	for i := range b.n {
		if b.outs[i].dst == dst {
			o = &b.outs[i]
			break
		}
	}
	if o == nil {
		if b.n == len(b.outs) {
			b.outs = append(b.outs, burstOut{})
		}
		o = &b.outs[b.n]
		b.n++
		o.dst = dst
	}
	if o.frames > 0 && len(o.stream)+prefixLen+len(frame) > writeBatch {
		s.send(o)
	}
	o.stream = appendFrame(o.stream, frame)
	o.frames++
	o.bytes += uint64(len(frame))
}

// flush sends everything b holds and empties it.
func (s *Switch) flush(b *burst) {
	for i := range b.n {
		o := &b.outs[i]
		s.send(o)
		o.dst = nil
	}
	b.n = 0
}

// send hands o's frames to its destination: in one write, straight to its
// socket, when nothing is queued before them and the socket takes them at
// once; otherwise into its queue, a copy per frame, for its writer.
func (s *Switch) send(o *burstOut) {
	if o.frames > 0 && !o.dst.direct(o.stream, o.frames, o.bytes) {
		now := s.clock()
		for rest := o.stream; len(rest) > 0; {
			n := prefixLen + int(binary.BigEndian.Uint32(rest))
			s.push(o.dst, slices.Clone(rest[prefixLen:n]), now, now)
			rest = rest[n:]
		}
	}
	o.stream = o.stream[:0]
	o.frames, o.bytes = 0, 0
}
