package dnsstub

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// DefaultTTL is the TTL, in seconds, of records given without one, of the
// typed helpers' records and of the SOA the server makes for a zone, whose
// minimum (the TTL of negative answers) it is too. It is short so that a
// caching resolver in a guest sees a change made at run time, or a record
// added after a failed lookup, within seconds; and not 0, which some
// clients mishandle and which would hide caching bugs a test may be after.
const DefaultTTL = 5

// zone is an authoritative zone: its records by owner name, lowercase and
// fully qualified. A published zone is never changed: updates copy it
// (state.clone), and the slices in names are replaced, never appended to
// in place.
type zone struct {
	origin string
	names  map[string][]dns.RR
}

// state is what the server answers from, swapped whole by each update so
// that queries read it without a lock.
type state struct {
	zones map[string]*zone
}

// clone copies st for an update: the maps, not the records.
func (st *state) clone() *state {
	c := &state{zones: make(map[string]*zone, len(st.zones))}
	for o, z := range st.zones {
		c.zones[o] = &zone{origin: o, names: maps.Clone(z.names)}
	}
	return c
}

// zoneOf returns the zone that name is in: the one with the longest origin
// that is name or an ancestor of it; nil if none.
func (st *state) zoneOf(name string) *zone {
	var best *zone
	for o, z := range st.zones {
		if dns.IsSubDomain(o, name) && (best == nil || dns.CountLabel(o) > dns.CountLabel(best.origin)) {
			best = z
		}
	}
	return best
}

// origins lists the zones' origins, sorted.
func (st *state) origins() []string {
	return slices.Sorted(maps.Keys(st.zones))
}

// soa returns the zone's SOA record, which every zone has at its apex.
func (z *zone) soa() *dns.SOA {
	for _, rr := range z.names[z.origin] {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa
		}
	}
	return nil
}

// defaultSOA is the SOA a zone gets when its records give none: its
// negative TTL is DefaultTTL (see there for why).
func defaultSOA(origin string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: DefaultTTL},
		Ns:      child("ns", origin),
		Mbox:    child("hostmaster", origin),
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  DefaultTTL,
	}
}

// child is label under name.
func child(label, name string) string {
	if name == "." {
		return label + "."
	}
	return label + "." + name
}

// parent is name less its first label; the root's parent is the root.
func parent(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}

// exists reports whether name has records or is an empty non-terminal:
// an ancestor of a name that has. Such a name gets NODATA, not NXDOMAIN.
func (z *zone) exists(name string) bool {
	if len(z.names[name]) > 0 {
		return true
	}
	for n := range z.names {
		if n != name && dns.IsSubDomain(name, n) {
			return true
		}
	}
	return false
}

// cut returns the NS records of the delegation that name is at or below,
// closest to the apex first, with the name they are at; nil if name is not
// delegated. A name at a cut is the parent's for DS queries (RFC 4035
// 3.1.4.1), so forDS makes the cut at name itself not count.
func (z *zone) cut(name string, forDS bool) (string, []dns.RR) {
	var path []string // from name up to, not including, the apex
	for n := name; n != z.origin && dns.IsSubDomain(z.origin, n); n = parent(n) {
		path = append(path, n)
		if n == "." {
			break
		}
	}
	for i := len(path) - 1; i >= 0; i-- {
		if i == 0 && forDS {
			break
		}
		if ns := ofType(z.names[path[i]], dns.TypeNS); len(ns) > 0 {
			return path[i], ns
		}
	}
	return "", nil
}

// ofType returns the records of rrs of type t.
func ofType(rrs []dns.RR, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			out = append(out, rr)
		}
	}
	return out
}

// isAddress reports whether t is A or AAAA: the records allowed below a
// delegation, as glue.
func isAddress(t uint16) bool { return t == dns.TypeA || t == dns.TypeAAAA }

// add adds rr (canonical already) to st, checking it against the records
// there. A record identical but for its TTL replaces the one held.
func (st *state) add(rr dns.RR) error {
	h := rr.Header()
	name, t := h.Name, h.Rrtype
	if h.Class != dns.ClassINET {
		return fmt.Errorf("%w: class %s: the server holds class IN only", ErrBadRecord, dns.ClassToString[h.Class])
	}
	if t == dns.TypeOPT || t == dns.TypeTSIG || t == dns.TypeANY || t == dns.TypeAXFR || t == dns.TypeIXFR {
		return fmt.Errorf("%w: %s is a meta type, not data a zone holds", ErrBadRecord, dns.TypeToString[t])
	}
	z := st.zoneOf(name)
	if z == nil {
		return fmt.Errorf("%w: %s is in none of the zones %v: declare its zone first (AddZone(%q, ...))",
			ErrOutsideZones, name, st.origins(), suggestZone(name))
	}
	if t == dns.TypeSOA && name != z.origin {
		return fmt.Errorf("%w: an SOA belongs at its zone's apex, %s; to declare %s as a zone of its own, use AddZone(%q, ...)",
			ErrBadRecord, z.origin, name, name)
	}
	held := z.names[name]
	for _, o := range held {
		ot := o.Header().Rrtype
		switch {
		case t == dns.TypeCNAME && ot == dns.TypeCNAME && !dns.IsDuplicate(o, rr):
			return fmt.Errorf("%w: %s has the CNAME %q already; a name holds one CNAME (Remove that one first)",
				ErrCNAMEClash, name, text(o))
		case t == dns.TypeCNAME && ot != dns.TypeCNAME:
			return fmt.Errorf("%w: %s has %s records already (%q); a CNAME can have no other records beside it: remove them, or point the CNAME's name elsewhere",
				ErrCNAMEClash, name, dns.TypeToString[ot], text(o))
		case t != dns.TypeCNAME && ot == dns.TypeCNAME:
			return fmt.Errorf("%w: %s is a CNAME (%q), which can have no other records beside it: add the %s record at the CNAME's target, or remove the CNAME",
				ErrCNAMEClash, name, text(o), dns.TypeToString[t])
		}
	}
	if !isAddress(t) {
		if cut, ns := z.cut(name, t == dns.TypeDS || t == dns.TypeNS); ns != nil {
			return fmt.Errorf("%w: %s is delegated (%s NS %s), so queries there get a referral and never this record: only glue (A and AAAA) belongs below a delegation; serve the record from the delegated zone's server",
				ErrOccluded, name, cut, ns[0].(*dns.NS).Ns)
		}
	}
	if t == dns.TypeNS && name != z.origin {
		// A new delegation: what it would hide must not be there.
		for n, rrs := range z.names {
			if !dns.IsSubDomain(name, n) {
				continue
			}
			for _, o := range rrs {
				ot := o.Header().Rrtype
				if isAddress(ot) || n == name && (ot == dns.TypeNS || ot == dns.TypeDS) {
					continue
				}
				return fmt.Errorf("%w: NS at %s would delegate %s, whose record %q would then never be served: remove it first, or serve it from the delegated zone's server",
					ErrOccluded, name, n, text(o))
			}
		}
	}
	next := make([]dns.RR, 0, len(held)+1)
	for _, o := range held {
		if t == dns.TypeSOA && o.Header().Rrtype == dns.TypeSOA || dns.IsDuplicate(o, rr) {
			continue // replaced
		}
		next = append(next, o)
	}
	z.names[name] = append(next, rr)
	return nil
}

// suggestZone proposes a zone for a name outside every zone: its last two
// labels, or the name itself if it has fewer.
func suggestZone(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) <= 2 {
		return name
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
}

// remove removes the record identical to rr but for its TTL.
func (st *state) remove(rr dns.RR) error {
	name := rr.Header().Name
	z := st.zoneOf(name)
	if z == nil {
		return fmt.Errorf("%w: %s is in none of the zones %v", ErrNoRecord, name, st.origins())
	}
	if rr.Header().Rrtype == dns.TypeSOA {
		return fmt.Errorf("%w: a zone keeps its SOA (Add another to replace it; RemoveZone removes the zone)", ErrBadRecord)
	}
	held := z.names[name]
	for i, o := range held {
		if dns.IsDuplicate(o, rr) {
			z.set(name, slices.Delete(slices.Clone(held), i, i+1))
			return nil
		}
	}
	return fmt.Errorf("%w: %s holds %s", ErrNoRecord, name, describe(held))
}

// set replaces the records at name, deleting the name when none are left.
func (z *zone) set(name string, rrs []dns.RR) {
	if len(rrs) == 0 {
		delete(z.names, name)
		return
	}
	z.names[name] = rrs
}

// describe lists rrs for an error message.
func describe(rrs []dns.RR) string {
	if len(rrs) == 0 {
		return "no records"
	}
	s := make([]string, len(rrs))
	for i, rr := range rrs {
		s[i] = fmt.Sprintf("%q", text(rr))
	}
	return strings.Join(s, ", ")
}

// text writes rr for an error message: zone-file text with spaces for
// tabs, which %q would spell \t.
func text(rr dns.RR) string { return strings.ReplaceAll(rr.String(), "\t", " ") }

// canonical returns a copy of rr with its owner name lowercase and fully
// qualified, as the zones key it. The copy also keeps the caller's later
// changes to rr out of the published state.
func canonical(rr dns.RR) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = dns.CanonicalName(c.Header().Name)
	return c
}

// parse reads records in zone-file syntax from each of texts (a line, or
// several), relative names completed with origin, TTLs defaulting to
// DefaultTTL. An error names the text and says what is wrong.
func parse(origin string, texts []string) ([]dns.RR, error) {
	var rrs []dns.RR
	for _, text := range texts {
		zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
		zp.SetDefaultTTL(DefaultTTL)
		n := 0
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			if name := doubledOrigin(rr, origin); name != "" {
				meant := strings.TrimSuffix(name, origin)
				return nil, fmt.Errorf("record %q: %w: it names %s, the zone twice over: a name without a final dot is relative to the zone, so write %s with the final dot, or %q",
					text, ErrBadRecord, name, meant, strings.TrimSuffix(meant, "."+origin))
			}
			rrs = append(rrs, canonical(rr))
			n++
		}
		if err := zp.Err(); err != nil {
			return nil, fmt.Errorf("record %q: %w: %v; want zone-file text such as %q", text, ErrBadRecord, err, example(origin))
		}
		if n == 0 && strings.TrimSpace(text) != "" && !strings.HasPrefix(strings.TrimSpace(text), ";") && !strings.HasPrefix(strings.TrimSpace(text), "$") {
			return nil, fmt.Errorf("record %q: %w: no record in it; want zone-file text such as %q", text, ErrBadRecord, example(origin))
		}
	}
	return rrs, nil
}

// doubledOrigin returns a name in rr that ends in origin twice over
// ("www.example.test.example.test."): the zone-file slip of a name
// written absolute without its final dot. "" if none does.
func doubledOrigin(rr dns.RR, origin string) string {
	if origin == "." {
		return ""
	}
	doubled := strings.TrimSuffix(origin, ".") + "." + origin
	for _, field := range strings.Fields(rr.String()) {
		if strings.HasSuffix(dns.CanonicalName(field), doubled) {
			return field
		}
	}
	return ""
}

// example is a record in the syntax parse takes, for error messages.
func example(origin string) string {
	if origin == "." {
		return "www.example.test. 60 IN A 192.0.2.1"
	}
	return "www 60 IN A 192.0.2.1"
}
