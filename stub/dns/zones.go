package dnsstub

import (
	"fmt"
	"slices"

	"github.com/miekg/dns"
)

// AddZone declares origin (e.g. "example.test.", the final dot optional)
// as a zone the server answers for with authority, with records in
// zone-file syntax: one record a string (or several, a line each), names
// relative to the zone unless they end in a dot, "@" for the apex, the TTL
// DefaultTTL unless given. The zone gets an SOA unless its records hold
// one. A zone may sit inside another of the server's zones; names under it
// are then its own, not the outer zone's.
//
// Nothing changes unless all of it succeeds. Declaring a zone twice wraps
// ErrZoneExists; the records' errors are Add's.
func (s *Server) AddZone(origin string, records ...string) error {
	o, err := zoneName(origin)
	if err != nil {
		return fmt.Errorf("add zone %q: %w", origin, err)
	}
	rrs, err := parse(o, records)
	if err != nil {
		return fmt.Errorf("add zone %s: %w", o, err)
	}
	return s.update(func(st *state) error {
		if st.zones[o] != nil {
			return fmt.Errorf("add zone %s: %w: remove it first (RemoveZone), or add records to it (Add)", o, ErrZoneExists)
		}
		st.zones[o] = &zone{origin: o, names: map[string][]dns.RR{o: {defaultSOA(o)}}}
		for _, rr := range rrs {
			if err := st.add(rr); err != nil {
				return fmt.Errorf("add zone %s: record %q: %w", o, text(rr), err)
			}
		}
		return nil
	})
}

// zoneName checks a zone's name and makes it canonical.
func zoneName(origin string) (string, error) {
	if _, ok := dns.IsDomainName(origin); !ok || origin == "" {
		return "", fmt.Errorf("%w: not a domain name; want one such as \"example.test.\"", ErrBadRecord)
	}
	return dns.CanonicalName(origin), nil
}

// RemoveZone removes a zone and its records: its names get REFUSED from
// then on, unless another of the server's zones holds them. A zone not
// declared wraps ErrNoZone.
func (s *Server) RemoveZone(origin string) error {
	o := dns.CanonicalName(origin)
	return s.update(func(st *state) error {
		if st.zones[o] == nil {
			return fmt.Errorf("remove zone %s: %w: the zones are %v", o, ErrNoZone, st.origins())
		}
		delete(st.zones, o)
		return nil
	})
}

// Add adds records in zone-file syntax, one a string (or several, a line
// each), while the server serves: names are absolute (the final dot
// optional), the TTL DefaultTTL unless given. Each record goes into the
// zone its name is in. A record identical to one held but for its TTL
// replaces it. Nothing changes unless every record is added.
//
// Errors wrap ErrBadRecord (text that does not parse), ErrOutsideZones (a
// name in no zone: declare the zone first), ErrCNAMEClash (a CNAME beside
// other records at one name) or ErrOccluded (data below a delegation).
func (s *Server) Add(records ...string) error {
	rrs, err := parse(".", records)
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	return s.AddRR(rrs...)
}

// AddRR is Add for records built in Go (see the typed helpers, Address,
// CNAME, ...). The server keeps copies: changing rrs afterwards changes
// nothing it serves.
func (s *Server) AddRR(rrs ...dns.RR) error {
	return s.update(func(st *state) error {
		for _, rr := range rrs {
			if rr == nil {
				return fmt.Errorf("add: %w: a nil record", ErrBadRecord)
			}
			if err := st.add(canonical(rr)); err != nil {
				return fmt.Errorf("add %q: %w", text(rr), err)
			}
		}
		return nil
	})
}

// Remove removes records, given in Add's syntax, while the server serves;
// a record matches whatever its TTL. One the server does not hold wraps
// ErrNoRecord, with what its name does hold. Nothing changes unless every
// record is removed.
func (s *Server) Remove(records ...string) error {
	rrs, err := parse(".", records)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return s.RemoveRR(rrs...)
}

// RemoveRR is Remove for records built in Go.
func (s *Server) RemoveRR(rrs ...dns.RR) error {
	return s.update(func(st *state) error {
		for _, rr := range rrs {
			if rr == nil {
				return fmt.Errorf("remove: %w: a nil record", ErrBadRecord)
			}
			if err := st.remove(canonical(rr)); err != nil {
				return fmt.Errorf("remove %q: %w", text(rr), err)
			}
		}
		return nil
	})
}

// RemoveName removes the records at name of the given types (dns.TypeA,
// ...), or all of them when no type is given, but for a zone's SOA. A name
// left with no records gets NXDOMAIN (or NODATA, if names below it have
// records). Removing nothing wraps ErrNoRecord.
func (s *Server) RemoveName(name string, types ...uint16) error {
	n := dns.CanonicalName(name)
	return s.update(func(st *state) error {
		z := st.zoneOf(n)
		if z == nil {
			return fmt.Errorf("remove %s: %w: it is in none of the zones %v", n, ErrNoRecord, st.origins())
		}
		held := z.names[n]
		keep := slices.DeleteFunc(slices.Clone(held), func(rr dns.RR) bool {
			t := rr.Header().Rrtype
			return t != dns.TypeSOA && (len(types) == 0 || slices.Contains(types, t))
		})
		if len(keep) == len(held) {
			return fmt.Errorf("remove %s %v: %w: it holds %s", n, typeNames(types), ErrNoRecord, describe(held))
		}
		z.set(n, keep)
		return nil
	})
}

// typeNames names DNS types for messages.
func typeNames(types []uint16) []string {
	s := make([]string, len(types))
	for i, t := range types {
		s[i] = dns.Type(t).String()
	}
	return s
}

// Zones returns the origins of the server's zones, sorted.
func (s *Server) Zones() []string {
	return s.load().origins()
}

// Records returns the records of a zone, by name and then type, for a
// test to print or check; they are copies. A zone not declared wraps
// ErrNoZone.
func (s *Server) Records(origin string) ([]dns.RR, error) {
	st := s.load()
	z := st.zones[dns.CanonicalName(origin)]
	if z == nil {
		return nil, fmt.Errorf("records of %s: %w: the zones are %v", dns.CanonicalName(origin), ErrNoZone, st.origins())
	}
	var out []dns.RR
	for _, n := range sortedNames(z.names) {
		rrs := slices.Clone(z.names[n])
		slices.SortStableFunc(rrs, func(a, b dns.RR) int { return int(a.Header().Rrtype) - int(b.Header().Rrtype) })
		for _, rr := range rrs {
			out = append(out, dns.Copy(rr))
		}
	}
	return out, nil
}

// sortedNames orders names as DNSSEC does (RFC 4034 6.1): a zone's apex
// first, each name before the names below it.
func sortedNames(names map[string][]dns.RR) []string {
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	slices.SortFunc(keys, func(a, b string) int {
		la, lb := dns.SplitDomainName(a), dns.SplitDomainName(b)
		for i := 1; i <= len(la) && i <= len(lb); i++ {
			if x, y := la[len(la)-i], lb[len(lb)-i]; x != y {
				if x < y {
					return -1
				}
				return 1
			}
		}
		return len(la) - len(lb)
	})
	return keys
}

// update applies change to a copy of the state and publishes the copy if
// change succeeds; every zone whose records changed gets its SOA serial
// bumped, as a real primary's would, unless the change gave it a new SOA.
// Updates are serialised; queries go on reading the state they loaded.
func (s *Server) update(change func(*state) error) error {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	old := s.load()
	st := old.clone()
	if err := change(st); err != nil {
		return err
	}
	for o, z := range st.zones {
		before := old.zones[o]
		if before == nil || !changed(before, z) || before.soa() != z.soa() {
			continue
		}
		soa := dns.Copy(z.soa()).(*dns.SOA)
		soa.Serial++
		z.names[o] = append(slices.DeleteFunc(slices.Clone(z.names[o]), func(rr dns.RR) bool {
			return rr.Header().Rrtype == dns.TypeSOA
		}), soa)
	}
	s.state.Store(st)
	return nil
}

// changed reports whether an update changed a zone's records: whether a
// name's slice was replaced (updates never change slices in place).
func changed(before, after *zone) bool {
	if len(before.names) != len(after.names) {
		return true
	}
	for n, rrs := range after.names {
		b, ok := before.names[n]
		if !ok || len(b) != len(rrs) || len(b) > 0 && &b[0] != &rrs[0] {
			return true
		}
	}
	return false
}

// load returns the state queries answer from.
func (s *Server) load() *state {
	if st := s.state.Load(); st != nil {
		return st
	}
	return &state{}
}

// RRset is the records of one name and type, for ReplaceRRsets.
type RRset struct {
	// Name is the owner name, absolute (the final dot optional).
	Name string
	// Type is the records' type (dns.TypeA, ...).
	Type uint16
	// Records replace those the name holds of Type; none deletes them.
	// Their names and types must be Name and Type.
	Records []dns.RR
}

// ReplaceRRsets replaces whole RRsets at once, as a cloud provider's DNS
// API changes a zone (package pdnsapi serves PowerDNS's on it): each set's
// records of its type at its name give way to its Records. Nothing changes
// unless every set is replaced. Errors are AddRR's, and ErrBadRecord for a
// record whose name or type is not its set's; a zone keeps its SOA (a set
// of type SOA with no records is refused).
func (s *Server) ReplaceRRsets(sets ...RRset) error {
	return s.update(func(st *state) error {
		for _, set := range sets {
			name := dns.CanonicalName(set.Name)
			what := fmt.Sprintf("replace %s %s", name, dns.Type(set.Type))
			z := st.zoneOf(name)
			if z == nil {
				return fmt.Errorf("%s: %w: it is in none of the zones %v: declare its zone first (AddZone(%q, ...))",
					what, ErrOutsideZones, st.origins(), suggestZone(name))
			}
			if set.Type == dns.TypeSOA && len(set.Records) == 0 {
				return fmt.Errorf("%s: %w: a zone keeps its SOA (RemoveZone removes the zone)", what, ErrBadRecord)
			}
			z.set(name, slices.DeleteFunc(slices.Clone(z.names[name]), func(rr dns.RR) bool {
				return rr.Header().Rrtype == set.Type
			}))
			for _, rr := range set.Records {
				if rr == nil || dns.CanonicalName(rr.Header().Name) != name || rr.Header().Rrtype != set.Type {
					return fmt.Errorf("%s: %w: record %v is not of the set's name and type", what, ErrBadRecord, rr)
				}
				if err := st.add(canonical(rr)); err != nil {
					return fmt.Errorf("%s: record %q: %w", what, text(rr), err)
				}
			}
		}
		return nil
	})
}
