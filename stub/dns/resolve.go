package dnsstub

import (
	"github.com/miekg/dns"
)

// maxChain bounds the CNAMEs chased for one answer; a longer chain (or a
// loop) ends the answer with the CNAMEs so far, as BIND does, and the
// client's resolver gives up on it.
const maxChain = 16

// answer fills resp, a reply to a query for name (canonical) and type t,
// from st: RFC 1034 4.3.2's algorithm for a server that is authoritative
// and does not recurse.
func (st *state) answer(resp *dns.Msg, name string, t uint16) {
	z := st.zoneOf(name)
	if z == nil {
		// Not ours: an authoritative-only server refuses, rather than
		// NXDOMAIN, so that a resolver asks elsewhere instead of caching
		// the name as absent.
		resp.Rcode = dns.RcodeRefused
		return
	}
	resp.Authoritative = true
	seen := map[string]bool{}
	for hop := 0; ; hop++ {
		if _, ns := z.cut(name, t == dns.TypeDS); ns != nil {
			// A referral: not our data, so not authoritative, unless a
			// CNAME of ours led here (the answer's first name is ours).
			if hop == 0 {
				resp.Authoritative = false
			}
			resp.Ns = append(resp.Ns, ns...)
			st.glue(resp, ns)
			return
		}
		rrs := z.names[name]
		if len(rrs) == 0 && !z.exists(name) {
			rrs = z.wildcard(name)
		}
		if len(rrs) == 0 {
			if !z.exists(name) {
				resp.Rcode = dns.RcodeNameError
			}
			resp.Ns = append(resp.Ns, z.negativeSOA())
			return
		}
		if c := ofType(rrs, dns.TypeCNAME); len(c) > 0 && t != dns.TypeCNAME && t != dns.TypeANY {
			resp.Answer = append(resp.Answer, c[0])
			seen[name] = true
			target := dns.CanonicalName(c[0].(*dns.CNAME).Target)
			next := st.zoneOf(target)
			if next == nil || seen[target] || hop+1 >= maxChain {
				// Outside our zones the client's resolver goes on.
				return
			}
			z, name = next, target
			continue
		}
		var match []dns.RR
		if t == dns.TypeANY {
			match = minimalANY(rrs)
		} else {
			match = ofType(rrs, t)
		}
		if len(match) == 0 {
			resp.Ns = append(resp.Ns, z.negativeSOA())
			return
		}
		resp.Answer = append(resp.Answer, match...)
		st.glue(resp, match)
		return
	}
}

// minimalANY answers ANY with one RRset, that of the lowest type, as RFC
// 8482 allows: ANY is not "all", and resolvers that want a type ask for it.
func minimalANY(rrs []dns.RR) []dns.RR {
	lowest := rrs[0].Header().Rrtype
	for _, rr := range rrs {
		lowest = min(lowest, rr.Header().Rrtype)
	}
	return ofType(rrs, lowest)
}

// wildcard returns the records a wildcard synthesises for name, which does
// not exist (RFC 4592): those at "*." under name's closest encloser, with
// name as their owner; nil if there are none.
func (z *zone) wildcard(name string) []dns.RR {
	for n := parent(name); ; n = parent(n) {
		if z.exists(n) {
			var out []dns.RR
			for _, rr := range z.names[child("*", n)] {
				c := dns.Copy(rr)
				c.Header().Name = name
				out = append(out, c)
			}
			return out
		}
		if n == z.origin || n == "." {
			return nil
		}
	}
}

// negativeSOA is the zone's SOA for the authority section of NXDOMAIN and
// NODATA answers, with the TTL a resolver may cache the negative answer
// for (RFC 2308 3): the lesser of the SOA's TTL and its minimum.
func (z *zone) negativeSOA() dns.RR {
	soa := dns.Copy(z.soa()).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// glue adds to the additional section the addresses the server holds for
// the names that rrs point at (NS, MX and SRV targets), in any of its
// zones and below delegations too (glue), so that a client need not ask.
func (st *state) glue(resp *dns.Msg, rrs []dns.RR) {
	done := map[string]bool{}
	for _, rr := range rrs {
		var target string
		switch r := rr.(type) {
		case *dns.NS:
			target = r.Ns
		case *dns.MX:
			target = r.Mx
		case *dns.SRV:
			target = r.Target
		default:
			continue
		}
		target = dns.CanonicalName(target)
		if done[target] {
			continue
		}
		done[target] = true
		if z := st.zoneOf(target); z != nil {
			for _, a := range z.names[target] {
				if isAddress(a.Header().Rrtype) {
					resp.Extra = append(resp.Extra, a)
				}
			}
		}
	}
}
