// Package dnsstub is a stand-in authoritative DNS server for tests, usable
// on its own as net/http/httptest is: zones declared by the test, changed
// while it serves, faults set per name at run time, and a query log to
// assert on.
//
// It owns the DNS stand-in of shakedown's stub services: zones and their
// records, answers, faults and the query log. It serves any
// net.PacketConn and net.Listener: loopback sockets (Start), or a
// shakedown host's (package dnsnet attaches a Server to a testbed's
// network); it is also a dns.Handler. It imports the standard library,
// github.com/miekg/dns and internal/eventlog (the stand-ins' one log),
// nothing of shakedown's API, so that it stays usable in any Go test.
//
// A zone is declared with its records in zone-file syntax, names relative
// to the zone:
//
//	s := dnsstub.New(dnsstub.Config{Logf: t.Logf})
//	t.Cleanup(func() { s.Close() })
//	err := s.AddZone("example.test.",
//		"www    A     192.0.2.1",
//		"www    AAAA  2001:db8::1",
//		"api    CNAME www",
//		"_http._tcp SRV 0 0 80 www",
//		"sub    NS    ns.sub", // a delegation: queries under sub get a referral
//		"ns.sub A     192.0.2.53",
//	)
//	err = s.Start("") // UDP and TCP on one port of 127.0.0.1: s.Addr()
//	err = s.SetFault("www.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure, Times: 1})
//	q, err := s.WaitForQuery(ctx, dnsstub.Match{Name: "www.example.test.", Type: dns.TypeAAAA})
//
// It answers as an authoritative server that does not recurse (RFC 1034
// 4.3.2): REFUSED for names outside its zones, so that a resolver asks
// elsewhere; NXDOMAIN for names that do not exist and NODATA (NOERROR, no
// records) for names that exist without the type asked, empty
// non-terminals included, both with the zone's SOA in the authority
// section; referrals, without the AA bit, for names at or below a
// delegation (NS records below a zone's apex), with the addresses of the
// name servers it holds as glue; CNAMEs chased within its zones; wildcards
// (RFC 4592); ANY as one RRset (RFC 8482); and the addresses of NS, MX and
// SRV targets as additional records. An answer larger than UDP allows
// (512 bytes, or the client's EDNS size) loses its additional records,
// and if that is not enough goes out with the TC bit and no records, so
// that the client asks again over TCP.
//
// Zones also change through DNS UPDATE (RFC 2136), as a cloud provider's
// or a primary server's would for cert-manager, lego, external-dns and
// nsupdate, when Config.Updates lets them: signed with a TSIG key it
// names (RFC 8945; answers to signed messages are signed), or unsigned if
// it says so. Prerequisites are checked and the changes applied all
// together or not at all; each update bumps its zone's SOA serial and is
// in the log (Query.Opcode, Key, Changes and Note, which says why one was
// refused). Faults apply to updates too, as queries for the zone's SOA:
//
//	s := dnsstub.New(dnsstub.Config{Updates: dnsstub.UpdatePolicy{
//		Keys: map[string]string{"update-key.": "c2VjcmV0IG9mIDMyIGJ5dGVzLCBmb3IgaG1hYy1zaGEyNTY="}}})
//	q, err := s.WaitForQuery(ctx, dnsstub.Match{Update: true, Name: "example.test."})
package dnsstub
