package dnsnet_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown"
	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
	"github.com/shakedown-dev/shakedown/stub/dns/dnsnet"
)

// hostIOTimeout bounds one exchange between host endpoints through the
// in-process switch: ARP or neighbour discovery and a round trip, on a
// loaded runner under -race.
const hostIOTimeout = 20 * time.Second

// TestAttach attaches a server to a testbed's network (no VM: a testbed of
// networks and hosts needs no QEMU) and queries it from another host
// through the switch, over UDP and TCP, IPv4 and IPv6, for the records
// AddTestbedRecords made of the testbed.
func TestAttach(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	tb.Network("dmz", shakedown.NetworkOptions{})
	tb.Machine("web", shakedown.MachineConfig{Networks: []string{"lan"}})
	tb.Machine("db", shakedown.MachineConfig{Networks: []string{"dmz", "lan"}})
	tb.Machine("router", shakedown.MachineConfig{Networks: []string{"lan"}, ManualAddresses: true})
	tb.Machine("offline", shakedown.MachineConfig{})

	s := dnsstub.New(dnsstub.Config{Logf: t.Logf})
	t.Cleanup(func() { s.Close() })
	ns, err := dnsnet.Attach(lan, "ns", s)
	if err != nil {
		t.Fatal(err)
	}
	client := lan.Host("client", shakedown.HostOptions{})
	if err := dnsnet.AddTestbedRecords(s, tb, "test."); err != nil {
		t.Fatal(err)
	}

	// Machines in name order: db 1, offline 2, router 3, web 4; lan is
	// network 2, dmz 1; hosts from 253 down.
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"web.test.", dns.TypeA, []string{"web.test. A 192.168.2.4"}},
		{"web.test.", dns.TypeAAAA, []string{"web.test. AAAA 2001:db8:2::4"}},
		{"db.test.", dns.TypeA, []string{"db.test. A 192.168.1.1"}}, // its first network, as /etc/hosts
		{"ns.test.", dns.TypeA, []string{"ns.test. A 192.168.2.253"}},
		{"client.test.", dns.TypeAAAA, []string{"client.test. AAAA 2001:db8:2::252"}},
		{"4.2.168.192.in-addr.arpa.", dns.TypePTR, []string{"4.2.168.192.in-addr.arpa. PTR web.test."}},
		{"253.2.168.192.in-addr.arpa.", dns.TypePTR, []string{"253.2.168.192.in-addr.arpa. PTR ns.test."}},
		{"4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.TypePTR,
			[]string{"4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR web.test."}},
		{"router.test.", dns.TypeA, nil}, // ManualAddresses: not in /etc/hosts either
		{"offline.test.", dns.TypeA, nil},
	} {
		for _, transport := range []string{"udp", "tcp", "udp6", "tcp6"} {
			t.Run(tc.name+dns.Type(tc.qtype).String()+"/"+transport, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(tb.Context(), hostIOTimeout)
				defer cancel()
				c, err := client.Dial(ctx, transport, "ns:53")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				m := new(dns.Msg)
				m.SetQuestion(tc.name, tc.qtype)
				dc := &dns.Client{Net: strings.TrimSuffix(transport, "6")}
				r, _, err := dc.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: c})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, rr := range r.Answer {
					got = append(got, fmt.Sprintf("%s %s %s", rr.Header().Name, dns.Type(rr.Header().Rrtype),
						strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))))
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("got %q, want %q", got, tc.want)
				}
				wantRcode := dns.RcodeSuccess
				if tc.want == nil {
					wantRcode = dns.RcodeNameError
				}
				if r.Rcode != wantRcode {
					t.Errorf("rcode: got %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[wantRcode])
				}
			})
		}
	}

	// The log names the client host's addresses.
	q, err := s.WaitForQuery(context.Background(), dnsstub.Match{Name: "web.test.", Transport: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.Client.Addr(), client.Addr(); got != want {
		t.Errorf("client in the log: got %s, want %s", got, want)
	}

	if got, want := string(dnsnet.ResolvConf("test.", ns)), "nameserver 192.168.2.253\nnameserver 2001:db8:2::253\nsearch test\n"; got != want {
		t.Errorf("ResolvConf: got %q, want %q", got, want)
	}
}

// TestAddTestbedRecordsKeepsZones adds testbed records to zones declared
// already, and again after a host is added.
func TestAddTestbedRecordsKeepsZones(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	lan.Host("a", shakedown.HostOptions{})
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("corp.test.", "www A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddZone("1.168.192.in-addr.arpa."); err != nil {
		t.Fatal(err)
	}
	if err := dnsnet.AddTestbedRecords(s, tb, "lab.corp.test"); err != nil {
		t.Fatal(err)
	}
	lan.Host("b", shakedown.HostOptions{})
	if err := dnsnet.AddTestbedRecords(s, tb, "lab.corp.test."); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Zones(), []string{"1.168.192.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa.", "corp.test."}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("zones: got %v, want %v", got, want)
	}
	rrs, err := s.Records("corp.test.")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rr := range rrs {
		names = append(names, rr.Header().Name+" "+dns.Type(rr.Header().Rrtype).String())
	}
	if got := fmt.Sprint(names); !strings.Contains(got, "a.lab.corp.test. A") || !strings.Contains(got, "b.lab.corp.test. AAAA") {
		t.Errorf("got %v, want a and b under lab.corp.test.", names)
	}
	ptrs, _ := s.Records("1.168.192.in-addr.arpa.")
	if len(ptrs) != 3 { // SOA and two PTRs
		t.Errorf("reverse zone: got %v, want the SOA and a PTR for a and for b", ptrs)
	}
}

// TestBadDomain refuses a domain that is not one.
func TestBadDomain(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	s := dnsstub.New(dnsstub.Config{})
	for _, d := range []string{"", ".", "bad..domain"} {
		if err := dnsnet.AddTestbedRecords(s, tb, d); err == nil || !strings.Contains(err.Error(), "want a domain") {
			t.Errorf("AddTestbedRecords(%q): got %v, want an error asking for a domain", d, err)
		}
	}
}

// TestResolver asks a stub on a testbed network from another host there,
// as Go code standing in for a guest does.
func TestResolver(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	s := dnsstub.New(dnsstub.Config{Logf: t.Logf})
	t.Cleanup(func() { s.Close() })
	if err := s.AddZone("example.test.", "www A 192.0.2.1", "www AAAA 2001:db8::1", "alias CNAME www",
		`_acme-challenge.www TXT "part one " "part two"`, "broken A 192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	ns, err := dnsnet.Attach(lan, "ns", s)
	if err != nil {
		t.Fatal(err)
	}
	r := dnsnet.Resolver{From: lan.Host("ca", shakedown.HostOptions{}), Server: ns.Addr()}
	ctx := context.Background()
	if got, err := r.LookupHost(ctx, "alias.example.test"); err != nil || !slices.Equal(got, []string{"192.0.2.1", "2001:db8::1"}) {
		t.Errorf("LookupHost(alias): %v %v, want the CNAME's target's addresses", got, err)
	}
	if got, err := r.LookupTXT(ctx, "_acme-challenge.www.example.test."); err != nil || !slices.Equal(got, []string{"part one part two"}) {
		t.Errorf("LookupTXT: %q %v", got, err)
	}
	var dnsErr *net.DNSError
	if _, err := r.LookupHost(ctx, "nothere.example.test"); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("LookupHost(nothere): %v, want a not-found DNSError", err)
	}
	if err := s.SetFault("broken.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LookupHost(ctx, "broken.example.test"); !errors.As(err, &dnsErr) || !dnsErr.IsTemporary ||
		!strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("LookupHost(broken): %v, want a temporary DNSError naming SERVFAIL", err)
	}
}
