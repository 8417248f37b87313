package dnsstub_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// TestBadInput checks that each mistake gets its sentinel and a message
// naming the problem and the fix, and changes nothing.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(s *dnsstub.Server) error
		want error
		text []string // in the message
	}{
		{"record outside every zone", func(s *dnsstub.Server) error {
			return s.Add("www.other.org. A 192.0.2.1")
		}, dnsstub.ErrOutsideZones, []string{"www.other.org.", "[2.0.192.in-addr.arpa. example.test.]", `AddZone("other.org."`}},
		{"typed record outside every zone", func(s *dnsstub.Server) error {
			return s.AddRR(dnsstub.CNAME("x.other.org", "y.other.org"))
		}, dnsstub.ErrOutsideZones, []string{"x.other.org."}},
		{"CNAME beside other records", func(s *dnsstub.Server) error {
			return s.Add("www.example.test. CNAME mail.example.test.")
		}, dnsstub.ErrCNAMEClash, []string{"www.example.test. has A records already", "a CNAME can have no other records beside it"}},
		{"record beside a CNAME", func(s *dnsstub.Server) error {
			return s.Add("alias.example.test. TXT hi")
		}, dnsstub.ErrCNAMEClash, []string{"alias.example.test. is a CNAME", "add the TXT record at the CNAME's target"}},
		{"second CNAME", func(s *dnsstub.Server) error {
			return s.Add("alias.example.test. CNAME mail.example.test.")
		}, dnsstub.ErrCNAMEClash, []string{"a name holds one CNAME"}},
		{"CNAME at the apex", func(s *dnsstub.Server) error {
			return s.Add("example.test. CNAME www.other.org.")
		}, dnsstub.ErrCNAMEClash, []string{"example.test. has", "records already"}},
		{"CNAME clash within one batch", func(s *dnsstub.Server) error {
			return s.Add("new.example.test. A 192.0.2.1", "new.example.test. CNAME www.example.test.")
		}, dnsstub.ErrCNAMEClash, nil},
		{"zone declared twice", func(s *dnsstub.Server) error {
			return s.AddZone("Example.Test")
		}, dnsstub.ErrZoneExists, []string{"add zone example.test.", "RemoveZone"}},
		{"malformed record", func(s *dnsstub.Server) error {
			return s.Add("www.example.test. A 300.1.1.1")
		}, dnsstub.ErrBadRecord, []string{`"www.example.test. A 300.1.1.1"`, "300.1.1.1", "want zone-file text such as"}},
		{"unknown type", func(s *dnsstub.Server) error {
			return s.Add("www.example.test. BOGUS 1")
		}, dnsstub.ErrBadRecord, []string{"BOGUS"}},
		{"malformed record in a zone", func(s *dnsstub.Server) error {
			return s.AddZone("new.test.", "www A 192.0.2.1", "mx MX ten mail")
		}, dnsstub.ErrBadRecord, []string{`"mx MX ten mail"`, `"www 60 IN A 192.0.2.1"`}},
		{"zone named twice over", func(s *dnsstub.Server) error {
			return s.AddZone("new.test.", "www.new.test A 192.0.2.1")
		}, dnsstub.ErrBadRecord, []string{"www.new.test.new.test.", "the zone twice over", "www.new.test. with the final dot", `or "www"`}},
		{"SOA away from the apex", func(s *dnsstub.Server) error {
			return s.Add("sub2.example.test. SOA ns hostmaster 1 2 3 4 5")
		}, dnsstub.ErrBadRecord, []string{"apex", `AddZone("sub2.example.test."`}},
		{"class other than IN", func(s *dnsstub.Server) error {
			return s.Add("www.example.test. CH A 192.0.2.1")
		}, dnsstub.ErrBadRecord, []string{"class CH"}},
		{"bad zone name", func(s *dnsstub.Server) error {
			return s.AddZone("bad..zone")
		}, dnsstub.ErrBadRecord, []string{"not a domain name"}},
		{"record below a delegation", func(s *dnsstub.Server) error {
			return s.Add("host.sub.example.test. TXT hi")
		}, dnsstub.ErrOccluded, []string{"sub.example.test. NS ns.sub.example.test.", "serve the record from the delegated zone's server"}},
		{"delegation over records", func(s *dnsstub.Server) error {
			return s.Add("_tcp.example.test. NS ns.other.org.")
		}, dnsstub.ErrOccluded, []string{"_http._tcp.example.test.", "SRV"}},
		{"removing what is not there", func(s *dnsstub.Server) error {
			return s.Remove("www.example.test. A 192.0.2.99")
		}, dnsstub.ErrNoRecord, []string{"www.example.test. holds", "192.0.2.1"}},
		{"removing a name with nothing", func(s *dnsstub.Server) error {
			return s.RemoveName("nope.example.test.")
		}, dnsstub.ErrNoRecord, []string{"no records"}},
		{"removing a type a name lacks", func(s *dnsstub.Server) error {
			return s.RemoveName("www.example.test.", dns.TypeMX)
		}, dnsstub.ErrNoRecord, []string{"[MX]"}},
		{"removing the SOA", func(s *dnsstub.Server) error {
			return s.Remove("example.test. SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 5")
		}, dnsstub.ErrBadRecord, []string{"RemoveZone"}},
		{"removing a zone not declared", func(s *dnsstub.Server) error {
			return s.RemoveZone("nope.test.")
		}, dnsstub.ErrNoZone, []string{"[2.0.192.in-addr.arpa. example.test.]"}},
		{"a nil record", func(s *dnsstub.Server) error {
			return s.AddRR(nil)
		}, dnsstub.ErrBadRecord, []string{"nil"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := dnsstub.New(dnsstub.Config{})
			if err := s.AddZone("example.test.", fixture...); err != nil {
				t.Fatal(err)
			}
			if err := s.AddZone("2.0.192.in-addr.arpa."); err != nil {
				t.Fatal(err)
			}
			before, _ := s.Records("example.test.")
			err := tc.call(s)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, text := range tc.text {
				if !strings.Contains(err.Error(), text) {
					t.Errorf("error %q\nlacks %q", err, text)
				}
			}
			after, _ := s.Records("example.test.")
			if got, want := shorts(after), shorts(before); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("a failed call changed the zone:\ngot  %q\nwant %q", got, want)
			}
			if got := s.Zones(); len(got) != 2 {
				t.Errorf("a failed call changed the zones: %v", got)
			}
		})
	}
}

// TestAddReplacesTTL adds a record held already with another TTL: one
// record, the new TTL.
func TestAddReplacesTTL(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("r.test.", "www 60 A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("www.r.test. 120 A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	rrs, _ := s.Records("r.test.")
	var as []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeA {
			as = append(as, rr)
		}
	}
	if len(as) != 1 || as[0].Header().Ttl != 120 {
		t.Errorf("got %v, want one A record with TTL 120", as)
	}
}

// TestAddRRKeepsCopies changes a record after adding it: the server
// serves what was added.
func TestAddRRKeepsCopies(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("c.test."); err != nil {
		t.Fatal(err)
	}
	rr := dnsstub.TXT("www.c.test", "before")
	if err := s.AddRR(rr); err != nil {
		t.Fatal(err)
	}
	rr.(*dns.TXT).Txt[0] = "after"
	rrs, _ := s.Records("c.test.")
	if got := short(rrs[len(rrs)-1]); got != `www.c.test. TXT "before"` {
		t.Errorf("got %q, want the record as added", got)
	}
}

// TestNestedZones declares a zone inside another: names under the inner
// zone are its own.
func TestNestedZones(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("outer.test.", "www A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddZone("inner.outer.test.", "www A 192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("new.inner.outer.test. A 192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	r := ask(t, s.Addr(), "nope.inner.outer.test.", dns.TypeA)
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Name != "inner.outer.test." {
		t.Errorf("got %v, want NXDOMAIN with the inner zone's SOA", r)
	}
	if r := ask(t, s.Addr(), "new.inner.outer.test.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("got %v, want the record added to the inner zone", r)
	}
}
