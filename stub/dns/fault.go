package dnsstub

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Fault is a failure the server plays for queries of one name (or of a
// whole subtree, a zone say), set and cleared at run time: what a test
// makes DNS do to see how its client copes. The zero value does nothing,
// and SetFault refuses it; set one of Rcode, Drop, Truncate and Delay.
type Fault struct {
	// Rcode, if not 0, answers with this rcode and no records:
	// dns.RcodeServerFailure (SERVFAIL) for a broken upstream,
	// dns.RcodeRefused, dns.RcodeNameError (NXDOMAIN, without the SOA a
	// real one carries). 1 to 15: larger ones need EDNS.
	Rcode int
	// Drop sends no answer at all, over UDP or TCP: the client times out.
	Drop bool
	// Truncate answers over UDP with the TC bit and no records, so that
	// the client retries over TCP, where the answer is whole. It plays a
	// large answer without making one.
	Truncate bool
	// Delay holds the answer back this long (before Rcode's or Truncate's,
	// or the normal one): a slow server, or a timeout shorter than Delay.
	// Close cuts it short, sending nothing.
	Delay time.Duration
	// Types limits the fault to queries of these types (dns.TypeAAAA,
	// say, for a server that loses AAAA queries); nil means every type.
	Types []uint16
	// Subtree extends the fault to every name below the one it is set on:
	// SetFault("example.test.", Fault{Subtree: true, ...}) fails the zone.
	Subtree bool
	// Times, if not 0, limits the fault to the next Times queries it
	// matches, then clears it: a failure that a retry gets past.
	Times int
}

// check rejects a fault that does nothing or contradicts itself.
func (f Fault) check() error {
	switch {
	case f.Rcode < 0 || f.Rcode > 15:
		return fmt.Errorf("%w: Rcode %d: want 1 to 15 (dns.RcodeServerFailure, ...), or 0 for none", ErrBadFault, f.Rcode)
	case f.Delay < 0:
		return fmt.Errorf("%w: Delay %v is negative", ErrBadFault, f.Delay)
	case f.Times < 0:
		return fmt.Errorf("%w: Times %d is negative: want 0 for until cleared, or a count", ErrBadFault, f.Times)
	case f.Drop && (f.Rcode != 0 || f.Truncate || f.Delay != 0):
		return fmt.Errorf("%w: Drop sends no answer, so Rcode, Truncate and Delay would do nothing beside it: set Drop alone", ErrBadFault)
	case f.Rcode != 0 && f.Truncate:
		return fmt.Errorf("%w: Rcode and Truncate both: a truncated answer's retry over TCP would get the rcode; set one", ErrBadFault)
	case f.Rcode == 0 && !f.Drop && !f.Truncate && f.Delay == 0:
		return fmt.Errorf("%w: it does nothing: set Rcode, Drop, Truncate or Delay (ClearFault removes a fault)", ErrBadFault)
	}
	return nil
}

// String describes the fault for the query log and messages: "SERVFAIL",
// "drop AAAA below", "delay 200ms x2", ...
func (f Fault) String() string {
	var parts []string
	switch {
	case f.Drop:
		parts = append(parts, "drop")
	case f.Rcode != 0:
		parts = append(parts, rcodeName(f.Rcode))
	case f.Truncate:
		parts = append(parts, "truncate")
	}
	if f.Delay != 0 {
		parts = append(parts, "delay "+f.Delay.String())
	}
	if len(f.Types) > 0 {
		parts = append(parts, strings.Join(typeNames(f.Types), ","))
	}
	if f.Subtree {
		parts = append(parts, "subtree")
	}
	if f.Times != 0 {
		parts = append(parts, fmt.Sprintf("x%d", f.Times))
	}
	return strings.Join(parts, " ")
}

// SetFault sets the fault of queries for name (and the names below it if
// f.Subtree), replacing the one set on name before. Faults apply to any
// name, in the server's zones or not. A query gets the fault set on its
// own name if it matches the query's type, else that of its nearest
// ancestor set with Subtree that does. A fault that does nothing or
// contradicts itself wraps ErrBadFault.
func (s *Server) SetFault(name string, f Fault) error {
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return fmt.Errorf("set fault %q: %w: not a domain name", name, ErrBadFault)
	}
	if err := f.check(); err != nil {
		return fmt.Errorf("set fault %s: %w", dns.CanonicalName(name), err)
	}
	f.Types = slices.Clone(f.Types) // the log's copies share it: never changed
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.faults == nil {
		s.faults = map[string]*Fault{}
	}
	s.faults[dns.CanonicalName(name)] = &f
	return nil
}

// ClearFault removes the fault set on name, if any.
func (s *Server) ClearFault(name string) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	delete(s.faults, dns.CanonicalName(name))
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	clear(s.faults)
}

// takeFault returns a copy of the fault that applies to a query for name
// (canonical) and type t, counting it against its Times; nil if none.
func (s *Server) takeFault(name string, t uint16) *Fault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if len(s.faults) == 0 {
		return nil
	}
	for n := name; ; n = parent(n) {
		if f := s.faults[n]; f != nil && (n == name || f.Subtree) && (len(f.Types) == 0 || slices.Contains(f.Types, t)) {
			applied := *f
			if f.Times > 0 {
				if f.Times--; f.Times == 0 {
					delete(s.faults, n)
				}
			}
			return &applied
		}
		if n == "." {
			return nil
		}
	}
}
