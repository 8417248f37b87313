package dnsnet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
	"github.com/shakedown-dev/shakedown/stub/dns/dnsnet"
)

// TestGuestResolves has real resolvers in a guest ask the stub through the
// switch: busybox's nslookup and glibc (getent), both from the
// resolv.conf that ResolvConf writes, and Debian's dig for what they do
// not show (rcodes, truncation, referrals). It changes records and faults
// while the guest asks, and checks the stub's log saw the guest.
func TestGuestResolves(t *testing.T) {
	testenv.NeedPackages(t)
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})

	const key = "c2hha2Vkb3duIHRlc3Qga2V5IGZvciB1cGRhdGVzIQ=="
	s := dnsstub.New(dnsstub.Config{Logf: t.Logf, Updates: dnsstub.UpdatePolicy{Keys: map[string]string{"update-key.": key}}})
	t.Cleanup(func() { s.Close() })
	if err := s.AddZone("example.test.",
		"www     A    192.0.2.1",
		"www     AAAA 2001:db8::1",
		"api     CNAME www",
		"sub     NS   ns2.example.test.",
		"ns2     A    192.168.1.252",
		"big     TXT  "+strings.Repeat(`"`+strings.Repeat("x", 200)+`" `, 8),
	); err != nil {
		t.Fatal(err)
	}
	ns, err := dnsnet.Attach(lan, "ns", s)
	if err != nil {
		t.Fatal(err)
	}
	// A second stub, serving the delegated zone at the address the glue
	// names: 252 is the next host number down.
	s2 := dnsstub.New(dnsstub.Config{Logf: t.Logf})
	t.Cleanup(func() { s2.Close() })
	if err := s2.AddZone("sub.example.test.", "www A 192.0.2.99"); err != nil {
		t.Fatal(err)
	}
	ns2, err := dnsnet.Attach(lan, "ns2", s2)
	if err != nil {
		t.Fatal(err)
	}
	if got := ns2.Addr().String(); got != "192.168.1.252" {
		t.Fatalf("ns2 at %s, want 192.168.1.252 as the glue says", got)
	}

	m := tb.Machine("client", shakedown.MachineConfig{
		Networks: []string{"lan"},
		Packages: []string{"bind9-dnsutils", "libc-bin"},
		Files:    []shakedown.File{{Guest: "/etc/resolv.conf", Data: dnsnet.ResolvConf("test.", ns)}},
	})
	if err := dnsnet.AddTestbedRecords(s, tb, "test."); err != nil {
		t.Fatal(err)
	}
	tb.StartAll()

	dig := func(args string) string { return strings.TrimSpace(m.Succeed("dig +time=2 +tries=1 " + args)) }
	status := func(args string) string {
		out := m.Succeed("dig +time=2 +tries=1 " + args)
		for _, line := range strings.Split(out, "\n") {
			if i := strings.Index(line, "status: "); i >= 0 {
				return strings.TrimSuffix(strings.Fields(line[i+len("status: "):])[0], ",")
			}
		}
		t.Fatalf("dig %s: no status line in\n%s", args, out)
		return ""
	}

	// The resolvers of busybox and glibc, from resolv.conf and its search
	// domain: the guest finds its own name and the stub's under test.
	if out := m.Succeed("busybox nslookup www.example.test"); !strings.Contains(out, "192.0.2.1") {
		t.Errorf("busybox nslookup www.example.test: got\n%s\nwant 192.0.2.1", out)
	}
	if out := m.Succeed("getent ahostsv4 www.example.test"); !strings.Contains(out, "192.0.2.1") {
		t.Errorf("getent ahostsv4 www.example.test: got %q, want 192.0.2.1", out)
	}
	if got := dig("+short +search client"); got != "192.168.1.1" {
		t.Errorf("dig +search client (through the search domain test): got %q, want 192.168.1.1", got)
	}
	if got := dig("+short api.example.test AAAA"); got != "www.example.test.\n2001:db8::1" {
		t.Errorf("dig api.example.test AAAA: got %q, want the CNAME then 2001:db8::1", got)
	}
	if got := dig("+short -x 192.168.1.253"); got != "ns.test." {
		t.Errorf("dig -x 192.168.1.253: got %q, want ns.test.", got)
	}
	if _, err := s.WaitForQuery(ctxFor(t), dnsstub.Match{Name: "api.example.test.", Type: dns.TypeAAAA,
		Func: func(q dnsstub.Query) bool { return q.Client.Addr() == m.Addr() }, Desc: "from the guest"}); err != nil {
		t.Error(err)
	}

	// A record added while the guest runs answers at once (the guest
	// caches nothing: no nscd).
	if got := status("new.example.test"); got != "NXDOMAIN" {
		t.Errorf("new.example.test before it is added: status %s, want NXDOMAIN", got)
	}
	if err := s.Add("new.example.test. 60 A 192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if got := dig("+short new.example.test"); got != "192.0.2.7" {
		t.Errorf("new.example.test after Add: got %q, want 192.0.2.7", got)
	}

	// SERVFAIL, then recovery.
	if err := s.SetFault("www.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure}); err != nil {
		t.Fatal(err)
	}
	if got := status("www.example.test"); got != "SERVFAIL" {
		t.Errorf("www.example.test under a SERVFAIL fault: status %s", got)
	}
	m.Fail("getent ahostsv4 www.example.test")
	s.ClearFault("www.example.test.")
	if got := dig("+short www.example.test"); got != "192.0.2.1" {
		t.Errorf("www.example.test after ClearFault: got %q", got)
	}

	// A dropped query: dig, asking ns's IPv4 address alone, times out and
	// says so.
	if err := s.SetFault("www.example.test.", dnsstub.Fault{Drop: true, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if out := m.Fail("dig +time=1 +tries=1 @" + ns.Addr().String() + " www.example.test"); !strings.Contains(out, "timed out") {
		t.Errorf("dig under a Drop fault: got\n%s\nwant a timeout", out)
	}

	// An answer too big for UDP (1.6 KB, over the 1232 bytes dig offers in
	// EDNS): dig gets TC and asks again over TCP.
	since := time.Now()
	if got := dig("+short big.example.test TXT"); strings.Count(got, strings.Repeat("x", 200)) != 8 {
		t.Errorf("dig big.example.test TXT: got %q, want eight 200-byte strings", got)
	}
	log := s.Log()
	var udpTC, tcp bool
	for _, q := range log {
		if q.Time.Before(since) || q.Name != "big.example.test." {
			continue
		}
		udpTC = udpTC || (q.Transport == "udp" && q.Truncated)
		tcp = tcp || q.Transport == "tcp"
	}
	if !udpTC || !tcp {
		t.Errorf("big.example.test: want a truncated UDP answer then a TCP query in the log, got %v", log)
	}

	// Dynamic updates from nsupdate, signed with TSIG: a record added and
	// one deleted in one update, seen by the next query; unsigned, refused.
	m.Succeed("cat > /tmp/update <<EOF\nserver ns.test\nzone example.test\nupdate add _acme-challenge.www.example.test 60 TXT token\nupdate delete www.example.test AAAA\nsend\nEOF")
	m.Succeed("nsupdate -y hmac-sha256:update-key.:" + key + " /tmp/update")
	if got := dig("+short _acme-challenge.www.example.test TXT"); got != `"token"` {
		t.Errorf("after nsupdate: TXT %q, want \"token\"", got)
	}
	if got := dig("+short www.example.test AAAA"); got != "" {
		t.Errorf("after nsupdate deleted it: AAAA %q, want none", got)
	}
	if out := m.Fail("nsupdate /tmp/update 2>&1"); !strings.Contains(out, "REFUSED") {
		t.Errorf("unsigned nsupdate: got %q, want REFUSED", out)
	}
	if _, err := s.WaitForQuery(ctxFor(t), dnsstub.Match{Update: true, Name: "example.test.",
		Func: func(q dnsstub.Query) bool { return q.Key == "update-key." && q.Changes == 2 }, Desc: "signed, with 2 changes"}); err != nil {
		t.Error(err)
	}

	// Delegation: ns refers the guest to ns2, which answers.
	out := m.Succeed("dig +time=2 +tries=1 +norecurse www.sub.example.test")
	if !strings.Contains(out, "status: NOERROR") || !strings.Contains(out, "AUTHORITY: 1") ||
		!strings.Contains(out, "ns2.example.test.") || strings.Contains(out, " aa") {
		t.Errorf("dig www.sub.example.test at ns: want a referral to ns2 (NS and glue, no aa flag), got\n%s", out)
	}
	if got := dig("+short @ns2.example.test www.sub.example.test"); got != "192.0.2.99" {
		t.Errorf("dig @ns2 www.sub.example.test: got %q, want 192.0.2.99", got)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
