package dhcpstub

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Lease is a client's address as the server holds it.
type Lease struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
	// Hostname is the name the client sent (option 12), "" if none.
	Hostname string
	// Expires is when the lease ends unless the client renews it.
	Expires time.Time
	// Static reports a static lease (Config.Static, AddStatic,
	// Config.StaticFunc).
	Static bool
}

// lease is a client's entry in the table: an offer not yet taken, a lease
// bound, or one lapsed, kept so that the client gets its address again.
type lease struct {
	Lease
	bound bool
}

// live reports whether l holds its address from other clients at now.
func (l *lease) live(now time.Time) bool { return now.Before(l.Expires) }

// Leases returns the leases bound and not expired, by address.
func (s *Server) Leases() []Lease {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	now := time.Now()
	var out []Lease
	for _, l := range s.leases {
		if l.bound && l.live(now) {
			out = append(out, l.Lease)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return out
}

// AddStatic gives mac the address addr whenever it asks: a static lease.
// addr must be a host address of the subnet (ErrOutsideSubnet), held by no
// other static lease nor the server (ErrAddressTaken), and mac must have
// none yet (ErrDuplicateMAC). A client that holds addr from the pool keeps
// it until its lease ends; its renewal is refused (NAK) then, and it gets
// another address.
func (s *Server) AddStatic(mac net.HardwareAddr, addr netip.Addr) error {
	fail := func(err error) error { return fmt.Errorf("static lease %s -> %v: %w", mac, addr, err) }
	if s.cfgErr != nil {
		return fail(s.cfgErr)
	}
	if err := s.cfg.checkStatic(Static{MAC: mac, Addr: addr}); err != nil {
		return fail(err)
	}
	addr = addr.Unmap()
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if had, ok := s.statics[mac.String()]; ok {
		return fail(fmt.Errorf("%w (%s): RemoveStatic it first to change it", ErrDuplicateMAC, had))
	}
	for other, a := range s.statics {
		if a == addr {
			return fail(fmt.Errorf("%w: it is %s's static lease: give another address, or RemoveStatic(%s) first", ErrAddressTaken, other, other))
		}
	}
	s.statics[mac.String()] = addr
	return nil
}

// RemoveStatic ends mac's static lease: its next renewal is refused, and
// it gets an address from the pool.
func (s *Server) RemoveStatic(mac net.HardwareAddr) error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if _, ok := s.statics[mac.String()]; !ok {
		return fmt.Errorf("remove static lease of %s: %w", mac, ErrNoStatic)
	}
	delete(s.statics, mac.String())
	if l := s.leases[mac.String()]; l != nil && l.Static {
		delete(s.leases, mac.String())
	}
	return nil
}

// staticAddr is mac's static address, if it has one. stateMu is held.
func (s *Server) staticAddr(mac net.HardwareAddr) (netip.Addr, bool) {
	if a, ok := s.statics[mac.String()]; ok {
		return a, true
	}
	if s.cfg.StaticFunc != nil {
		if a := s.cfg.StaticFunc(mac); a.IsValid() {
			if err := s.cfg.checkStatic(Static{MAC: mac, Addr: a}); err != nil {
				s.logf("dhcp stub: Config.StaticFunc: %v; the client gets a pool address", err)
				return netip.Addr{}, false
			}
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// holder is the MAC holding addr at now other than mac's, or "". stateMu
// is held.
func (s *Server) holder(addr netip.Addr, mac net.HardwareAddr, now time.Time) string {
	for m, a := range s.statics {
		if a == addr && m != mac.String() {
			return m
		}
	}
	for m, l := range s.leases {
		if l.Addr == addr && m != mac.String() && l.live(now) {
			return m
		}
	}
	return ""
}

// free reports whether mac may take pool address addr at now. stateMu is
// held.
func (s *Server) free(addr netip.Addr, mac net.HardwareAddr, now time.Time) bool {
	if addr == s.cfg.ServerID || s.holder(addr, mac, now) != "" {
		return false
	}
	if until, ok := s.declined[addr]; ok && now.Before(until) {
		return false
	}
	return u32(addr) >= u32(s.cfg.PoolStart) && u32(addr) <= u32(s.cfg.PoolEnd)
}

// allocate picks mac's address for an offer: its static one, the one it
// had, the one it asks for, or the pool's first free one; false when the
// pool is exhausted. stateMu is held.
func (s *Server) allocate(mac net.HardwareAddr, requested netip.Addr, now time.Time) (netip.Addr, bool, bool) {
	if a, ok := s.staticAddr(mac); ok {
		return a, true, true
	}
	if l := s.leases[mac.String()]; l != nil && !l.Static && s.free(l.Addr, mac, now) {
		return l.Addr, false, true
	}
	if requested.IsValid() && s.free(requested, mac, now) {
		return requested, false, true
	}
	for x := u32(s.cfg.PoolStart); x <= u32(s.cfg.PoolEnd); x++ {
		if a := addrOf(x); s.free(a, mac, now) {
			return a, false, true
		}
	}
	return netip.Addr{}, false, false
}

// owns reports whether addr is mac's to have: its static address, or the
// one its entry holds and nobody else took since. known is false when
// the server has no record of mac. stateMu is held.
func (s *Server) owns(mac net.HardwareAddr, addr netip.Addr, now time.Time) (ok, known bool) {
	if a, static := s.staticAddr(mac); static {
		return a == addr, true
	}
	l := s.leases[mac.String()]
	if l == nil {
		return false, false
	}
	return l.Addr == addr && s.free(addr, mac, now), true
}

// poolSize is the number of addresses in the pool.
func (s *Server) poolSize() int { return int(u32(s.cfg.PoolEnd)-u32(s.cfg.PoolStart)) + 1 }
