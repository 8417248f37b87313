package dnsstub_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// exchangeTimeout bounds one exchange on loopback: far above its
// milliseconds, for a loaded runner under -race.
const exchangeTimeout = 5 * time.Second

// fixture is the zone most tests ask: one of each kind of answer.
var fixture = []string{
	"@        NS    ns1",
	"ns1      A     192.0.2.53",
	"www      A     192.0.2.1",
	"www      AAAA  2001:db8::1",
	"alias    CNAME www",
	"alias2   CNAME alias",
	"out      CNAME www.elsewhere.org.",
	"dangling CNAME nothere",
	"txt      TXT   \"hello world\" two",
	"_http._tcp SRV 10 5 80 www",
	"@        MX    10 mail",
	"mail     A     192.0.2.25",
	"a.b.deep A     192.0.2.7",
	"*.wild   A     192.0.2.99",
	"sub      NS    ns.sub",
	"ns.sub   A     192.0.2.54",
	"ns.sub   AAAA  2001:db8::54",
}

// startFixture starts a server on loopback with the fixture zone and a
// reverse zone, closed when the test ends.
func startFixture(t *testing.T) *dnsstub.Server {
	t.Helper()
	s := dnsstub.New(dnsstub.Config{Logf: t.Logf})
	if err := s.AddZone("example.test.", fixture...); err != nil {
		t.Fatal(err)
	}
	if err := s.AddZone("2.0.192.in-addr.arpa.", "1 PTR www.example.test."); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	return s
}

// start starts s on loopback, closed when the test ends.
func start(t *testing.T, s *dnsstub.Server) {
	t.Helper()
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
}

// question is a query for name and type, without recursion desired (the
// server is authoritative only).
func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	return m
}

// exchange sends m to addr over transport ("udp" or "tcp") with
// miekg/dns's client.
func exchange(addr, transport string, m *dns.Msg, timeout time.Duration) (*dns.Msg, time.Duration, error) {
	c := &dns.Client{Net: transport, Timeout: timeout}
	return c.Exchange(m, addr)
}

// ask queries addr over UDP and fails the test if no answer comes.
func ask(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, _, err := exchange(addr, "udp", question(name, qtype), exchangeTimeout)
	if err != nil {
		t.Fatalf("ask %s %s: %v", name, dns.Type(qtype), err)
	}
	return r
}

// short writes a record as "NAME TYPE RDATA", without TTL and class, for
// comparisons that do not depend on them.
func short(rr dns.RR) string {
	return fmt.Sprintf("%s %s %s", rr.Header().Name, dns.Type(rr.Header().Rrtype),
		strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String())))
}

// shorts is short for each of rrs, leaving out OPT records.
func shorts(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, short(rr))
		}
	}
	return out
}

// sameSet reports whether a and b hold the same strings in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
