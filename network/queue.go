package network

import "sync"

// DefaultQueueLen is the egress queue of a port in frames: at 1500 bytes,
// 750 KiB, a few milliseconds of a fast guest's bursts, so that a machine
// busy for a moment loses nothing while a stopped one costs its senders
// nothing but the frames meant for it.
const DefaultQueueLen = 512

// qitem is one queued frame.
type qitem struct {
	data []byte
	// release is when the frame may leave, in nanoseconds of the switch's
	// clock: its arrival, or later when an impairment delays it.
	release int64
	seq     uint64
}

func (a *qitem) before(b *qitem) bool {
	return a.release < b.release || a.release == b.release && a.seq < b.seq
}

// egressQueue is a port's bounded queue of frames on their way out. Frames
// that may leave at once wait in a ring in arrival order; delayed ones in a
// heap by release time. A push never blocks: when the queue is full the
// frame is refused (tail drop), which keeps one stopped port from stalling
// the goroutines that forward to every other.
type egressQueue struct {
	limit int
	// wake has room for one token, sent on every push, so that the one
	// goroutine that drains the queue notices new frames without a lock.
	wake chan struct{}

	mu         sync.Mutex
	ring       []qitem
	head, n    int
	delayed    []qitem // a min-heap by (release, seq)
	seq        uint64
	lastArrive int64
	closed     bool
}

func newEgressQueue(limit int) *egressQueue {
	return &egressQueue{limit: limit, ring: make([]qitem, limit), wake: make(chan struct{}, 1)}
}

// push results.
type pushResult int

const (
	pushed pushResult = iota
	pushFull
	pushClosed
)

// push queues it, arriving at time now, without ever blocking.
func (q *egressQueue) push(it qitem, now int64) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.n+len(q.delayed) >= q.limit {
		q.mu.Unlock()
		return pushFull
	}
	it.seq = q.seq
	q.seq++
	if it.release <= now {
		// Arrival order is release order in the ring, even when two
		// forwarding goroutines read the clock in one order and take
		// the lock in the other.
		it.release = max(now, q.lastArrive)
		q.lastArrive = it.release
		q.ring[(q.head+q.n)%len(q.ring)] = it
		q.n++
	} else {
		q.heapPush(it)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return pushed
}

// pop appends to out the frames whose release time has come, oldest
// release first, up to maxFrames of them or maxBytes of frame (but at least
// one). next is the release time of the first frame left, or -1 if none is.
func (q *egressQueue) pop(now int64, out []qitem, maxFrames, maxBytes int) (items []qitem, next int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	bytes := 0
	for len(out) < maxFrames {
		it, ok := q.popLocked(now, maxBytes-bytes, len(out) == 0)
		if !ok {
			break
		}
		bytes += len(it.data)
		out = append(out, it)
	}
	return out, q.nextLocked()
}

// popOne returns the first frame whose release time has come, if any, and
// the release time of the first frame left (-1 if none is).
func (q *egressQueue) popOne(now int64) (it qitem, ok bool, next int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it, ok = q.popLocked(now, 0, true)
	return it, ok, q.nextLocked()
}

func (q *egressQueue) popLocked(now int64, room int, first bool) (qitem, bool) {
	var it *qitem
	fromRing := false
	if q.n > 0 {
		it, fromRing = &q.ring[q.head], true
	}
	if len(q.delayed) > 0 && (it == nil || q.delayed[0].before(it)) {
		it, fromRing = &q.delayed[0], false
	}
	if it == nil || it.release > now || !first && len(it.data) > room {
		return qitem{}, false
	}
	out := *it
	if fromRing {
		q.ring[q.head] = qitem{}
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	} else {
		q.heapPop()
	}
	return out, true
}

func (q *egressQueue) nextLocked() int64 {
	next := int64(-1)
	if q.n > 0 {
		next = q.ring[q.head].release
	}
	if len(q.delayed) > 0 && (next < 0 || q.delayed[0].release < next) {
		next = q.delayed[0].release
	}
	return next
}

// flush empties the queue and returns how many frames it held.
func (q *egressQueue) flush() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.n + len(q.delayed)
	clear(q.ring)
	q.head, q.n = 0, 0
	q.delayed = q.delayed[:0]
	return n
}

// close refuses further pushes, empties the queue and returns how many
// frames it held.
func (q *egressQueue) close() int {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	return q.flush()
}

// len returns the number of queued frames.
func (q *egressQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n + len(q.delayed)
}

func (q *egressQueue) heapPush(it qitem) {
	h := append(q.delayed, it)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].before(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	q.delayed = h
}

func (q *egressQueue) heapPop() {
	h := q.delayed
	last := len(h) - 1
	h[0] = h[last]
	h[last] = qitem{}
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h[l].before(&h[m]) {
			m = l
		}
		if r < len(h) && h[r].before(&h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	q.delayed = h
}
