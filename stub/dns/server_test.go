package dnsstub_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// TestAnswers asks the fixture for each kind of answer over UDP and TCP
// and checks rcode, authority flag and the three sections.
func TestAnswers(t *testing.T) {
	s := startFixture(t)
	soa := "example.test. SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 5"
	referral := []string{"sub.example.test. NS ns.sub.example.test."}
	glue := []string{"ns.sub.example.test. A 192.0.2.54", "ns.sub.example.test. AAAA 2001:db8::54"}
	for _, tc := range []struct {
		name        string
		qname       string
		qtype       uint16
		rcode       int
		aa          bool
		answer      []string
		ns, extra   []string
		anyOrderAns bool
	}{
		{name: "A", qname: "www.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"www.example.test. A 192.0.2.1"}},
		{name: "AAAA", qname: "www.example.test.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"www.example.test. AAAA 2001:db8::1"}},
		{name: "case-insensitive", qname: "WWW.Example.TEST.", qtype: dns.TypeA, aa: true,
			answer: []string{"www.example.test. A 192.0.2.1"}},
		{name: "CNAME chased", qname: "alias2.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"alias2.example.test. CNAME alias.example.test.", "alias.example.test. CNAME www.example.test.", "www.example.test. A 192.0.2.1"}},
		{name: "CNAME asked for", qname: "alias.example.test.", qtype: dns.TypeCNAME, aa: true,
			answer: []string{"alias.example.test. CNAME www.example.test."}},
		{name: "CNAME out of the zones", qname: "out.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"out.example.test. CNAME www.elsewhere.org."}},
		{name: "CNAME to nothing", qname: "dangling.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true,
			answer: []string{"dangling.example.test. CNAME nothere.example.test."}, ns: []string{soa}},
		{name: "TXT", qname: "txt.example.test.", qtype: dns.TypeTXT, aa: true,
			answer: []string{`txt.example.test. TXT "hello world" "two"`}},
		{name: "SRV with target addresses", qname: "_http._tcp.example.test.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"_http._tcp.example.test. SRV 10 5 80 www.example.test."},
			extra:  []string{"www.example.test. A 192.0.2.1", "www.example.test. AAAA 2001:db8::1"}},
		{name: "MX with host address", qname: "example.test.", qtype: dns.TypeMX, aa: true,
			answer: []string{"example.test. MX 10 mail.example.test."},
			extra:  []string{"mail.example.test. A 192.0.2.25"}},
		{name: "NS at the apex", qname: "example.test.", qtype: dns.TypeNS, aa: true,
			answer: []string{"example.test. NS ns1.example.test."},
			extra:  []string{"ns1.example.test. A 192.0.2.53"}},
		{name: "SOA", qname: "example.test.", qtype: dns.TypeSOA, aa: true, answer: []string{soa}},
		{name: "PTR", qname: "1.2.0.192.in-addr.arpa.", qtype: dns.TypePTR, aa: true,
			answer: []string{"1.2.0.192.in-addr.arpa. PTR www.example.test."}},
		{name: "NXDOMAIN", qname: "nope.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soa}},
		{name: "NODATA", qname: "www.example.test.", qtype: dns.TypeMX, aa: true, ns: []string{soa}},
		{name: "NODATA at an empty non-terminal", qname: "b.deep.example.test.", qtype: dns.TypeA, aa: true, ns: []string{soa}},
		{name: "below an empty non-terminal", qname: "a.b.deep.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"a.b.deep.example.test. A 192.0.2.7"}},
		{name: "wildcard", qname: "anything.wild.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"anything.wild.example.test. A 192.0.2.99"}},
		{name: "wildcard NODATA", qname: "anything.wild.example.test.", qtype: dns.TypeTXT, aa: true, ns: []string{soa}},
		{name: "REFUSED outside the zones", qname: "www.elsewhere.org.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "referral", qname: "host.sub.example.test.", qtype: dns.TypeA, ns: referral, extra: glue},
		{name: "referral at the cut", qname: "sub.example.test.", qtype: dns.TypeNS, ns: referral, extra: glue},
		{name: "referral for glue's name", qname: "ns.sub.example.test.", qtype: dns.TypeA, ns: referral, extra: glue},
		{name: "DS at the cut is the parent's", qname: "sub.example.test.", qtype: dns.TypeDS, aa: true, ns: []string{soa}},
		{name: "ANY is one RRset", qname: "www.example.test.", qtype: dns.TypeANY, aa: true,
			answer: []string{"www.example.test. A 192.0.2.1"}},
	} {
		for _, transport := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+transport, func(t *testing.T) {
				r, _, err := exchange(s.Addr(), transport, question(tc.qname, tc.qtype), exchangeTimeout)
				if err != nil {
					t.Fatal(err)
				}
				if r.Rcode != tc.rcode {
					t.Errorf("rcode: got %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if r.Authoritative != tc.aa {
					t.Errorf("AA: got %v, want %v", r.Authoritative, tc.aa)
				}
				if r.Truncated || r.RecursionAvailable {
					t.Errorf("TC %v RA %v: want neither", r.Truncated, r.RecursionAvailable)
				}
				if got := shorts(r.Answer); fmt.Sprint(got) != fmt.Sprint(nonNil(tc.answer)) {
					t.Errorf("answer: got %q, want %q", got, tc.answer)
				}
				if got := shorts(r.Ns); !sameSet(got, nonNil(tc.ns)) {
					t.Errorf("authority: got %q, want %q", got, tc.ns)
				}
				if got := shorts(r.Extra); !sameSet(got, nonNil(tc.extra)) {
					t.Errorf("additional: got %q, want %q", got, tc.extra)
				}
			})
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestNegativeTTL checks RFC 2308's negative TTL: the lesser of the SOA's
// TTL and its minimum, in NXDOMAIN and NODATA answers alike.
func TestNegativeTTL(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("neg.test.", "@ 300 SOA ns hostmaster 7 3600 600 86400 30", "www A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	for _, qtype := range []uint16{dns.TypeA, dns.TypeTXT} {
		name := map[uint16]string{dns.TypeA: "nope.neg.test.", dns.TypeTXT: "www.neg.test."}[qtype]
		r := ask(t, s.Addr(), name, qtype)
		if len(r.Ns) != 1 {
			t.Fatalf("%s %s: authority %v, want the SOA", name, dns.Type(qtype), r.Ns)
		}
		soa := r.Ns[0].(*dns.SOA)
		if soa.Hdr.Ttl != 30 || soa.Serial != 7 {
			t.Errorf("%s %s: got SOA TTL %d serial %d, want TTL 30 (the minimum) serial 7", name, dns.Type(qtype), soa.Hdr.Ttl, soa.Serial)
		}
	}
}

// TestDelegationToAnotherServer follows a referral from a parent stub to
// the child zone's stub by its glue, as an iterative resolver does.
func TestDelegationToAnotherServer(t *testing.T) {
	child := dnsstub.New(dnsstub.Config{})
	if err := child.AddZone("team.corp.test.", "@ NS ns", "ns A 127.0.0.1", "app A 192.0.2.80"); err != nil {
		t.Fatal(err)
	}
	start(t, child)
	parent := dnsstub.New(dnsstub.Config{})
	if err := parent.AddZone("corp.test.", "team NS ns.team", "ns.team A 127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	start(t, parent)

	r := ask(t, parent.Addr(), "app.team.corp.test.", dns.TypeA)
	if r.Authoritative || len(r.Answer) != 0 || len(r.Ns) != 1 || len(r.Extra) != 1 {
		t.Fatalf("from the parent: got %v, want a referral with glue", r)
	}
	glue := r.Extra[0].(*dns.A).A
	// The glue's address, at the child's port (both serve on loopback).
	_, port, _ := net.SplitHostPort(child.Addr())
	r2, _, err := exchange(net.JoinHostPort(glue.String(), port), "udp", question("app.team.corp.test.", dns.TypeA), exchangeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := shorts(r2.Answer), []string{"app.team.corp.test. A 192.0.2.80"}; !r2.Authoritative || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("from the child: got AA %v %q, want AA %q", r2.Authoritative, got, want)
	}
}

// TestRuntimeChanges changes records and zones while the server serves.
func TestRuntimeChanges(t *testing.T) {
	s := startFixture(t)
	addr := s.Addr()
	rcode := func(name string, qtype uint16) (string, []string) {
		r := ask(t, addr, name, qtype)
		return dns.RcodeToString[r.Rcode], shorts(r.Answer)
	}
	check := func(step, name string, qtype uint16, wantRcode string, wantAnswer ...string) {
		t.Helper()
		gotRcode, got := rcode(name, qtype)
		if gotRcode != wantRcode || fmt.Sprint(got) != fmt.Sprint(nonNil(wantAnswer)) {
			t.Errorf("%s: %s %s: got %s %q, want %s %q", step, name, dns.Type(qtype), gotRcode, got, wantRcode, wantAnswer)
		}
	}
	check("before", "new.example.test.", dns.TypeA, "NXDOMAIN")
	if err := s.Add("new.example.test. A 192.0.2.100"); err != nil {
		t.Fatal(err)
	}
	check("added", "new.example.test.", dns.TypeA, "NOERROR", "new.example.test. A 192.0.2.100")
	if err := s.AddRR(dnsstub.Address("new.example.test", mustAddr("192.0.2.101"))); err != nil {
		t.Fatal(err)
	}
	check("added a second", "new.example.test.", dns.TypeA, "NOERROR", "new.example.test. A 192.0.2.100", "new.example.test. A 192.0.2.101")
	if err := s.Remove("new.example.test. 999 A 192.0.2.100"); err != nil {
		t.Fatal(err)
	}
	check("removed one (any TTL)", "new.example.test.", dns.TypeA, "NOERROR", "new.example.test. A 192.0.2.101")
	if err := s.RemoveName("new.example.test."); err != nil {
		t.Fatal(err)
	}
	check("removed the name", "new.example.test.", dns.TypeA, "NXDOMAIN")
	if err := s.RemoveName("www.example.test.", dns.TypeAAAA); err != nil {
		t.Fatal(err)
	}
	check("removed a type", "www.example.test.", dns.TypeAAAA, "NOERROR")
	check("kept the other type", "www.example.test.", dns.TypeA, "NOERROR", "www.example.test. A 192.0.2.1")
	if err := s.RemoveZone("example.test."); err != nil {
		t.Fatal(err)
	}
	check("removed the zone", "www.example.test.", dns.TypeA, "REFUSED")
	if err := s.AddZone("example.test.", "www A 192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	check("declared it again", "www.example.test.", dns.TypeA, "NOERROR", "www.example.test. A 192.0.2.2")
	if got, want := s.Zones(), []string{"2.0.192.in-addr.arpa.", "example.test."}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("zones: got %v, want %v", got, want)
	}
}

// TestSerial checks that each change bumps the zone's SOA serial, as a
// secondary or a cache watching it would expect, and no other zone's.
func TestSerial(t *testing.T) {
	s := startFixture(t)
	serial := func(zone string) uint32 {
		return ask(t, s.Addr(), zone, dns.TypeSOA).Answer[0].(*dns.SOA).Serial
	}
	if got := serial("example.test."); got != 1 {
		t.Fatalf("at first: got serial %d, want 1", got)
	}
	if err := s.Add("x.example.test. A 192.0.2.9", "y.example.test. A 192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	if got := serial("example.test."); got != 2 {
		t.Errorf("after one Add: got serial %d, want 2", got)
	}
	if got := serial("2.0.192.in-addr.arpa."); got != 1 {
		t.Errorf("the other zone: got serial %d, want 1", got)
	}
	if err := s.Add("example.test. SOA ns.example.test. hostmaster.example.test. 42 3600 600 86400 5"); err != nil {
		t.Fatal(err)
	}
	if got := serial("example.test."); got != 42 {
		t.Errorf("after an SOA of the test's: got serial %d, want its 42", got)
	}
	if err := s.RemoveName("x.example.test."); err != nil {
		t.Fatal(err)
	}
	if got := serial("example.test."); got != 43 {
		t.Errorf("after a change: got serial %d, want 43", got)
	}
}

// TestTypedHelpers serves records built with the typed helpers.
func TestTypedHelpers(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("h.test."); err != nil {
		t.Fatal(err)
	}
	if err := s.AddZone("in-addr.arpa."); err != nil {
		t.Fatal(err)
	}
	if err := s.AddZone("ip6.arpa."); err != nil {
		t.Fatal(err)
	}
	v4, v6 := mustAddr("192.0.2.5"), mustAddr("2001:db8::5")
	err := s.AddRR(
		dnsstub.Address("host.h.test", v4), dnsstub.Address("host.h.test", v6),
		dnsstub.PTR(v4, "host.h.test"), dnsstub.PTR(v6, "host.h.test"),
		dnsstub.CNAME("alias.h.test", "host.h.test"),
		dnsstub.TXT("host.h.test", "v=1", "two"),
		dnsstub.SRV("_ldap._tcp.h.test", 1, 2, 389, "host.h.test"),
		dnsstub.MX("h.test", 5, "host.h.test"),
		dnsstub.NS("h.test", "host.h.test"),
	)
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"host.h.test.", dns.TypeA, "host.h.test. A 192.0.2.5"},
		{"host.h.test.", dns.TypeAAAA, "host.h.test. AAAA 2001:db8::5"},
		{"5.2.0.192.in-addr.arpa.", dns.TypePTR, "5.2.0.192.in-addr.arpa. PTR host.h.test."},
		{"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.TypePTR,
			"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR host.h.test."},
		{"alias.h.test.", dns.TypeCNAME, "alias.h.test. CNAME host.h.test."},
		{"host.h.test.", dns.TypeTXT, `host.h.test. TXT "v=1" "two"`},
		{"_ldap._tcp.h.test.", dns.TypeSRV, "_ldap._tcp.h.test. SRV 1 2 389 host.h.test."},
		{"h.test.", dns.TypeMX, "h.test. MX 5 host.h.test."},
		{"h.test.", dns.TypeNS, "h.test. NS host.h.test."},
	} {
		r := ask(t, s.Addr(), tc.name, tc.qtype)
		if got := shorts(r.Answer); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.name, dns.Type(tc.qtype), got, tc.want)
		}
		if r.Answer[0].Header().Ttl != dnsstub.DefaultTTL {
			t.Errorf("%s %s: got TTL %d, want DefaultTTL %d", tc.name, dns.Type(tc.qtype), r.Answer[0].Header().Ttl, dnsstub.DefaultTTL)
		}
	}
}

// TestRecords lists a zone in order.
func TestRecords(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("r.test.", "b A 192.0.2.2", "a TXT x", "a A 192.0.2.1", "c.a A 192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	rrs, err := s.Records("r.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"r.test. SOA ns.r.test. hostmaster.r.test. 1 3600 600 86400 5",
		"a.r.test. A 192.0.2.1", "a.r.test. TXT \"x\"", "c.a.r.test. A 192.0.2.3", "b.r.test. A 192.0.2.2",
	}
	if got := shorts(rrs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := s.Records("nope.test."); !errors.Is(err, dnsstub.ErrNoZone) {
		t.Errorf("records of an undeclared zone: got %v, want ErrNoZone", err)
	}
}

// TestMalformedQueries sends what is not a plain query: each gets the
// rcode RFC 1035 and RFC 6891 give it, with the query's ID.
func TestMalformedQueries(t *testing.T) {
	s := startFixture(t)
	notQuery := question("www.example.test.", dns.TypeA)
	notQuery.Opcode = dns.OpcodeStatus
	twoQuestions := question("www.example.test.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	ednsV1 := question("www.example.test.", dns.TypeA)
	ednsV1.SetEdns0(1232, false)
	ednsV1.IsEdns0().SetVersion(1)
	chaos := question("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	for _, tc := range []struct {
		name  string
		m     *dns.Msg
		rcode int
	}{
		{"opcode STATUS", notQuery, dns.RcodeNotImplemented},
		{"two questions", twoQuestions, dns.RcodeFormatError},
		{"EDNS version 1", ednsV1, dns.RcodeBadVers},
		{"class CHAOS", chaos, dns.RcodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, err := exchange(s.Addr(), "udp", tc.m, exchangeTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode || r.Id != tc.m.Id {
				t.Errorf("got %s id %d, want %s id %d", dns.RcodeToString[r.Rcode], r.Id, dns.RcodeToString[tc.rcode], tc.m.Id)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		c, err := net.Dial("udp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A header claiming one question, and no question.
		c.Write([]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff})
		c.SetReadDeadline(time.Now().Add(exchangeTimeout))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if r.Id != 0x1234 || r.Rcode != dns.RcodeFormatError {
			t.Errorf("got id %#x %s, want id 0x1234 FORMERR", r.Id, dns.RcodeToString[r.Rcode])
		}
	})
}

// TestServeDNS uses the server as the dns.Handler of a dns.Server of the
// test's own.
func TestServeDNS(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("h.test.", "www A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	defer srv.Shutdown()
	r := ask(t, pc.LocalAddr().String(), "www.h.test.", dns.TypeA)
	if got := shorts(r.Answer); fmt.Sprint(got) != "[www.h.test. A 192.0.2.1]" {
		t.Errorf("got %q", got)
	}
	if log := s.Log(); len(log) != 1 || log[0].Transport != "udp" {
		t.Errorf("log: got %v, want one query over udp", log)
	}
}

// TestZeroValue serves from a Server that New did not make.
func TestZeroValue(t *testing.T) {
	var s dnsstub.Server
	if err := s.AddZone("z.test.", "www A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	start(t, &s)
	if r := ask(t, s.Addr(), "www.z.test.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("got %v, want the A record", r)
	}
	if n := len(s.Log()); n != 1 {
		t.Errorf("log: got %d queries, want 1", n)
	}
}

// TestClose checks that Close stops Serve, with ErrServerClosed, cuts a
// delayed answer short, and refuses to start again.
func TestClose(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("c.test.", "www A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(pc, ln) }()
	if err := s.SetFault("www.c.test.", dnsstub.Fault{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	go exchange(pc.LocalAddr().String(), "udp", question("www.c.test.", dns.TypeA), exchangeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	if _, err := s.WaitForQuery(ctx, dnsstub.Match{Name: "www.c.test."}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(exchangeTimeout):
		t.Fatal("Close waits for the delayed answer: want it cut short")
	}
	if err := <-served; !errors.Is(err, dnsstub.ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	if err := s.Start(""); !errors.Is(err, dnsstub.ErrServerClosed) {
		t.Errorf("Start after Close: got %v, want ErrServerClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestServeEndsWithItsListener checks that closing what Serve serves ends
// that Serve only: the attach helper relies on it when a testbed ends.
func TestServeEndsWithItsListener(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	t.Cleanup(func() { s.Close() })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(pc, nil) }()
	pc.Close()
	select {
	case err := <-served:
		if err == nil || errors.Is(err, dnsstub.ErrServerClosed) {
			t.Errorf("got %v, want the read error", err)
		}
	case <-time.After(exchangeTimeout):
		t.Fatal("Serve goes on after its PacketConn closed")
	}
	if err := s.Serve(nil, nil); err == nil {
		t.Error("Serve(nil, nil): got no error")
	}
}

// TestConcurrent queries over UDP and TCP while records, zones and faults
// change and the log is read: run it with -race.
func TestConcurrent(t *testing.T) {
	s := startFixture(t)
	const workers, rounds = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			transport := []string{"udp", "tcp"}[w%2]
			for i := range rounds {
				name := []string{"www.example.test.", "churn.example.test.", "alias2.example.test."}[i%3]
				r, _, err := exchange(s.Addr(), transport, question(name, dns.TypeA), exchangeTimeout)
				if err != nil {
					errs <- fmt.Errorf("%s %s: %w", transport, name, err)
					continue
				}
				ok := r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError || r.Rcode == dns.RcodeServerFailure
				if !ok || r.Rcode == dns.RcodeSuccess && name == "www.example.test." && len(r.Answer) != 1 {
					errs <- fmt.Errorf("%s %s: unexpected answer %v", transport, name, r)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds {
			s.Add(fmt.Sprintf("churn.example.test. A 192.0.2.%d", i%250+1))
			s.SetFault("churn.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure, Times: 1})
			s.RemoveName("churn.example.test.")
			s.AddZone("extra.test.", "x A 192.0.2.1")
			s.RemoveZone("extra.test.")
			_ = s.Log()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := len(s.Log()), workers*rounds; got != want {
		t.Errorf("log: got %d queries, want %d", got, want)
	}
}
