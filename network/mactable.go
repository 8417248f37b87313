package network

import (
	"sync"
	"time"
)

// DefaultAgeing is how long a learned address stays without traffic from
// it: IEEE 802.1D's default, as Linux bridges use.
const DefaultAgeing = 300 * time.Second

// maxMACs bounds the table, as a real switch's CAM does, so that a guest
// sending from random source addresses cannot grow it without end; frames
// to addresses that found no room are flooded.
const maxMACs = 8192

type mac [6]byte

type macEntry struct {
	port PortID
	seen time.Time
}

// macTable maps learned source addresses to ports. It takes the time as an
// argument so that ageing is tested without sleeping.
type macTable struct {
	ageing time.Duration

	mu sync.Mutex
	m  map[mac]macEntry
}

func newMACTable(ageing time.Duration) *macTable {
	return &macTable{ageing: ageing, m: make(map[mac]macEntry)}
}

// forward learns that src sits on port in and returns the port dst sits on,
// or false when dst is a group address or not (or no longer) known: the
// frame is then flooded.
func (t *macTable) forward(src, dst mac, in PortID, now time.Time) (PortID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A group address is never a valid source; learning it would send
	// that group's frames to one port.
	if !isGroup(src[:]) {
		if _, ok := t.m[src]; !ok && len(t.m) >= maxMACs {
			t.expireLocked(now)
		}
		if _, ok := t.m[src]; ok || len(t.m) < maxMACs {
			t.m[src] = macEntry{port: in, seen: now}
		}
	}
	if isGroup(dst[:]) {
		return 0, false
	}
	e, ok := t.m[dst]
	if !ok {
		return 0, false
	}
	if now.Sub(e.seen) >= t.ageing {
		delete(t.m, dst)
		return 0, false
	}
	return e.port, true
}

// forget drops every address learned on port, when the port goes away or
// its link goes down, so that frames to them are flooded (and find the
// machine wherever it comes back) instead of sent into a dead port.
func (t *macTable) forget(port PortID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.m {
		if e.port == port {
			delete(t.m, k)
		}
	}
}

func (t *macTable) expireLocked(now time.Time) {
	for k, e := range t.m {
		if now.Sub(e.seen) >= t.ageing {
			delete(t.m, k)
		}
	}
}

// lookup returns where dst was learned, for tests and debugging.
func (t *macTable) lookup(dst mac, now time.Time) (PortID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[dst]
	if !ok || now.Sub(e.seen) >= t.ageing {
		return 0, false
	}
	return e.port, true
}
