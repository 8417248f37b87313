package dnsstub

import (
	"net/netip"

	"github.com/miekg/dns"
)

// Typed helpers: records built in Go for AddRR and RemoveRR, for names and
// addresses a test computes. Names are made fully qualified; the TTL is
// DefaultTTL (set rr.Header().Ttl for another).

// hdr is the header of a record of type t at name.
func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: DefaultTTL}
}

// Address is an A record for an IPv4 address (an IPv4-mapped IPv6 one
// included) or an AAAA record for an IPv6 address.
func Address(name string, ip netip.Addr) dns.RR {
	if ip.Unmap().Is4() {
		return &dns.A{Hdr: hdr(name, dns.TypeA), A: ip.Unmap().AsSlice()}
	}
	return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()}
}

// PTR is the PTR record that maps ip back to name, at ip's reverse name
// (in in-addr.arpa. or ip6.arpa.).
func PTR(ip netip.Addr, name string) dns.RR {
	rev, _ := dns.ReverseAddr(ip.Unmap().String()) // a valid netip.Addr always reverses
	return &dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: dns.Fqdn(name)}
}

// CNAME is a CNAME record: name is an alias of target.
func CNAME(name, target string) dns.RR {
	return &dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: dns.Fqdn(target)}
}

// TXT is a TXT record of one or more strings (each up to 255 bytes).
func TXT(name string, texts ...string) dns.RR {
	return &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: texts}
}

// SRV is an SRV record, name being "_service._proto.domain".
func SRV(name string, priority, weight, port uint16, target string) dns.RR {
	return &dns.SRV{Hdr: hdr(name, dns.TypeSRV), Priority: priority, Weight: weight, Port: port, Target: dns.Fqdn(target)}
}

// MX is an MX record.
func MX(name string, preference uint16, host string) dns.RR {
	return &dns.MX{Hdr: hdr(name, dns.TypeMX), Preference: preference, Mx: dns.Fqdn(host)}
}

// NS is an NS record: at a zone's apex it names a server of the zone; below
// it, a delegation (queries at or under name get a referral to host, with
// host's addresses as glue when the server holds them).
func NS(name, host string) dns.RR {
	return &dns.NS{Hdr: hdr(name, dns.TypeNS), Ns: dns.Fqdn(host)}
}
