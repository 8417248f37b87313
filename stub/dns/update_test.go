package dnsstub_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// The key of the update tests, as `tsig-keygen -a hmac-sha256 update-key.`
// would write it.
const (
	keyName   = "update-key."
	keySecret = "c2hha2Vkb3duIHRlc3Qga2V5IGZvciB1cGRhdGVzIQ=="
)

// startUpdatable starts a server taking updates signed with the test key.
func startUpdatable(t *testing.T, policy dnsstub.UpdatePolicy) *dnsstub.Server {
	t.Helper()
	s := dnsstub.New(dnsstub.Config{Logf: t.Logf, Updates: policy})
	if err := s.AddZone("example.test.",
		"@    NS   ns1",
		"ns1  A    192.0.2.53",
		"www  A    192.0.2.1",
		"www  A    192.0.2.2",
		"txt  TXT  old",
		"alias CNAME www",
	); err != nil {
		t.Fatal(err)
	}
	if err := s.AddZone("inner.example.test."); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	return s
}

// send sends an update over transport, signed with secret under keyName
// unless secret is "", and returns the answer.
func send(t *testing.T, addr, transport string, m *dns.Msg, secret string) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: transport, Timeout: exchangeTimeout}
	if secret != "" {
		m.SetTsig(keyName, dns.HmacSHA256, dnsstub.TSIGFudge, time.Now().Unix())
		c.TsigSecret = map[string]string{keyName: secret}
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil && !(errors.Is(err, dns.ErrAuth) || strings.Contains(err.Error(), "bad")) {
		t.Fatalf("update: %v", err)
	}
	if r == nil {
		t.Fatalf("update: no answer (%v)", err)
	}
	return r
}

func rrs(t *testing.T, texts ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, s := range texts {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rr)
	}
	return out
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name    string
		build   func(m *dns.Msg)
		rcode   int
		want    map[string][]string // name → records after, as short writes them; nil: unchanged
		note    string              // in the log entry's Note
		changes int
	}{
		{"add", func(m *dns.Msg) {
			m.Insert(rrs(t, "new.example.test. 60 IN A 192.0.2.9", "new.example.test. 60 IN TXT hello"))
		}, dns.RcodeSuccess, map[string][]string{"new.example.test.": {"new.example.test. A 192.0.2.9", `new.example.test. TXT "hello"`}}, "", 2},
		{"add an acme challenge", func(m *dns.Msg) {
			m.Insert(rrs(t, `_acme-challenge.www.example.test. 60 IN TXT "token-digest"`))
		}, dns.RcodeSuccess, map[string][]string{"_acme-challenge.www.example.test.": {`_acme-challenge.www.example.test. TXT "token-digest"`}}, "", 1},
		{"delete one record", func(m *dns.Msg) {
			m.Remove(rrs(t, "www.example.test. 0 IN A 192.0.2.1"))
		}, dns.RcodeSuccess, map[string][]string{"www.example.test.": {"www.example.test. A 192.0.2.2"}}, "", 1},
		{"delete an RRset", func(m *dns.Msg) {
			m.RemoveRRset(rrs(t, "www.example.test. 0 IN A 0.0.0.0"))
		}, dns.RcodeSuccess, map[string][]string{"www.example.test.": nil}, "", 1},
		{"delete a name", func(m *dns.Msg) {
			m.RemoveName(rrs(t, "txt.example.test. 0 IN A 0.0.0.0"))
		}, dns.RcodeSuccess, map[string][]string{"txt.example.test.": nil}, "", 1},
		{"apex keeps SOA and NS", func(m *dns.Msg) {
			m.RemoveName(rrs(t, "example.test. 0 IN A 0.0.0.0"))
			m.Remove(rrs(t, "example.test. 0 IN NS ns1.example.test."))
		}, dns.RcodeSuccess, nil, "a zone keeps its last NS record", 0},
		{"replace in one update", func(m *dns.Msg) {
			m.RemoveRRset(rrs(t, "txt.example.test. 0 IN TXT x"))
			m.Insert(rrs(t, "txt.example.test. 60 IN TXT new"))
		}, dns.RcodeSuccess, map[string][]string{"txt.example.test.": {`txt.example.test. TXT "new"`}}, "", 2},
		{"add what is held", func(m *dns.Msg) {
			m.Insert(rrs(t, "www.example.test. 5 IN A 192.0.2.1")) // DefaultTTL
		}, dns.RcodeSuccess, nil, "", 0},
		{"CNAME clash ignored", func(m *dns.Msg) {
			m.Insert(rrs(t, "alias.example.test. 60 IN A 192.0.2.3"))
		}, dns.RcodeSuccess, nil, "CNAME and other records at one name", 0},
		{"name in use", func(m *dns.Msg) {
			m.NameUsed(rrs(t, "www.example.test. 0 IN A 0.0.0.0"))
			m.Insert(rrs(t, "www2.example.test. 60 IN A 192.0.2.3"))
		}, dns.RcodeSuccess, map[string][]string{"www2.example.test.": {"www2.example.test. A 192.0.2.3"}}, "", 1},
		{"name in use fails", func(m *dns.Msg) {
			m.NameUsed(rrs(t, "nothere.example.test. 0 IN A 0.0.0.0"))
			m.Insert(rrs(t, "www2.example.test. 60 IN A 192.0.2.3"))
		}, dns.RcodeNameError, nil, "is in use, but it has no records", 0},
		{"name not in use fails", func(m *dns.Msg) {
			m.NameNotUsed(rrs(t, "www.example.test. 0 IN A 0.0.0.0"))
		}, dns.RcodeYXDomain, nil, "is not in use", 0},
		{"RRset exists fails", func(m *dns.Msg) {
			m.RRsetUsed(rrs(t, "www.example.test. 0 IN AAAA ::"))
		}, dns.RcodeNXRrset, nil, "has AAAA records, but", 0},
		{"RRset does not exist fails", func(m *dns.Msg) {
			m.RRsetNotUsed(rrs(t, "www.example.test. 0 IN A 0.0.0.0"))
		}, dns.RcodeYXRrset, nil, "has no A records", 0},
		{"RRset exactly so", func(m *dns.Msg) {
			m.Used(rrs(t, "www.example.test. 0 IN A 192.0.2.2", "www.example.test. 0 IN A 192.0.2.1"))
			m.Remove(rrs(t, "www.example.test. 0 IN A 192.0.2.1"))
		}, dns.RcodeSuccess, map[string][]string{"www.example.test.": {"www.example.test. A 192.0.2.2"}}, "", 1},
		{"RRset not exactly so", func(m *dns.Msg) {
			m.Used(rrs(t, "www.example.test. 0 IN A 192.0.2.1"))
			m.Remove(rrs(t, "www.example.test. 0 IN A 192.0.2.1"))
		}, dns.RcodeNXRrset, nil, "not \"www.example.test. 0 IN A 192.0.2.1\"", 0},
		{"outside the zone", func(m *dns.Msg) {
			m.Insert(rrs(t, "www.elsewhere.test. 60 IN A 192.0.2.3"))
		}, dns.RcodeNotZone, nil, "outside the zone example.test.", 0},
		{"in a nested zone", func(m *dns.Msg) {
			m.Insert(rrs(t, "www.inner.example.test. 60 IN A 192.0.2.3"))
		}, dns.RcodeNotZone, nil, "outside the zone example.test.", 0},
		{"a bad record changes nothing", func(m *dns.Msg) {
			m.Insert(rrs(t, "ok.example.test. 60 IN A 192.0.2.3"))
			m.Insert(rrs(t, "bad.example.test. 60 IN A 192.0.2.3"))
			m.Ns[1].Header().Class = dns.ClassCHAOS
		}, dns.RcodeFormatError, nil, "class CH is none of IN, ANY and NONE", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startUpdatable(t, dnsstub.UpdatePolicy{Keys: map[string]string{keyName: keySecret}})
			before, _ := s.Records("example.test.")
			m := new(dns.Msg)
			m.SetUpdate("example.test.")
			tt.build(m)
			r := send(t, s.Addr(), "udp", m, keySecret)
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s; log: %v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode], s.Log())
			}
			if r.IsTsig() == nil {
				t.Error("the answer to a signed update is not signed")
			}
			after, _ := s.Records("example.test.")
			if tt.want == nil {
				if !slices.Equal(shorts(withoutSOA(before)), shorts(withoutSOA(after))) {
					t.Errorf("records changed:\nbefore %v\nafter  %v", shorts(before), shorts(after))
				}
			}
			for name, want := range tt.want {
				var got []string
				for _, rr := range after {
					if rr.Header().Name == name {
						got = append(got, short(rr))
					}
				}
				if !sameSet(got, want) {
					t.Errorf("%s after the update: %q, want %q", name, got, want)
				}
			}
			soaBefore, soaAfter := serial(before), serial(after)
			if changed := tt.changes > 0; changed != (soaAfter > soaBefore) {
				t.Errorf("SOA serial %d → %d, want it bumped only when records changed", soaBefore, soaAfter)
			}
			q, err := s.WaitForQuery(context.Background(), dnsstub.Match{Update: true, Name: "example.test."})
			if err != nil {
				t.Fatal(err)
			}
			if q.Key != keyName || q.Changes != tt.changes || q.Rcode != tt.rcode || !strings.Contains(q.Note, tt.note) {
				t.Errorf("log entry %q: want key %s, %d changes, rcode %s, a note with %q", q, keyName, tt.changes, dns.RcodeToString[tt.rcode], tt.note)
			}
		})
	}
}

// TestUpdateAuth: who may update, and what a failed signature gets.
func TestUpdateAuth(t *testing.T) {
	keys := map[string]string{keyName: keySecret}
	tests := []struct {
		name   string
		policy dnsstub.UpdatePolicy
		secret string // "" sends unsigned
		zone   string
		rcode  int
		note   string
	}{
		{"updates off", dnsstub.UpdatePolicy{}, "", "example.test.", dns.RcodeRefused, "updates are off: set Config.Updates"},
		{"unsigned refused", dnsstub.UpdatePolicy{Keys: keys}, "", "example.test.", dns.RcodeRefused, "unsigned: sign with a key"},
		{"unsigned allowed", dnsstub.UpdatePolicy{Unsigned: true}, "", "example.test.", dns.RcodeSuccess, ""},
		{"unknown key", dnsstub.UpdatePolicy{Unsigned: true}, keySecret, "example.test.", dns.RcodeNotAuth, "BADKEY"},
		{"wrong secret", dnsstub.UpdatePolicy{Keys: map[string]string{keyName: "b3RoZXIgc2VjcmV0"}}, keySecret, "example.test.", dns.RcodeNotAuth, "BADSIG"},
		{"not our zone", dnsstub.UpdatePolicy{Keys: keys}, keySecret, "other.test.", dns.RcodeNotAuth, "other.test. is not a zone of this server; its zones are [example.test. inner.example.test.]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startUpdatable(t, tt.policy)
			m := new(dns.Msg)
			m.SetUpdate(tt.zone)
			m.Insert(rrs(t, "new."+tt.zone+" 60 IN A 192.0.2.9"))
			r := send(t, s.Addr(), "tcp", m, tt.secret)
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			log := s.Log()
			if len(log) != 1 || !strings.Contains(log[0].Note, tt.note) || log[0].Opcode != dns.OpcodeUpdate {
				t.Errorf("log %q, want one update with a note holding %q", log, tt.note)
			}
			held := ask(t, s.Addr(), "new.example.test.", dns.TypeA)
			if applied := len(held.Answer) == 1; applied != (tt.rcode == dns.RcodeSuccess) {
				t.Errorf("after rcode %s the record is there: %v", dns.RcodeToString[r.Rcode], applied)
			}
		})
	}
}

// TestSignedQuery: a TSIG-signed query gets a signed answer the client
// verifies, as zone transfers' and update clients' SOA lookups are.
func TestSignedQuery(t *testing.T) {
	s := startUpdatable(t, dnsstub.UpdatePolicy{Keys: map[string]string{keyName: keySecret}})
	m := question("www.example.test.", dns.TypeA)
	c := &dns.Client{Timeout: exchangeTimeout, TsigSecret: map[string]string{keyName: keySecret}}
	m.SetTsig(keyName, dns.HmacSHA256, dnsstub.TSIGFudge, time.Now().Unix())
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("signed query: %v (the client verifies the answer's signature)", err)
	}
	if len(r.Answer) != 2 || r.IsTsig() == nil {
		t.Errorf("signed query: got %v, want two records and a TSIG", r)
	}
	if q := s.Log()[0]; q.Key != keyName || !strings.Contains(q.String(), "(key update-key.)") {
		t.Errorf("log entry %q, want the key", q)
	}
}

// serial is the serial of the SOA among rrs.
func serial(rrs []dns.RR) uint32 {
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial
		}
	}
	return 0
}

// withoutSOA is rrs less the SOA, whose serial updates bump.
func withoutSOA(rrs []dns.RR) []dns.RR {
	return slices.DeleteFunc(slices.Clone(rrs), func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeSOA })
}
