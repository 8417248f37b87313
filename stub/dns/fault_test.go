package dnsstub_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// TestRcodeFaults sets rcode faults on names, subtrees and types, and
// clears them.
func TestRcodeFaults(t *testing.T) {
	servfail := dnsstub.Fault{Rcode: dns.RcodeServerFailure}
	type probe struct {
		name  string
		qtype uint16
		want  int
	}
	for _, tc := range []struct {
		desc   string
		name   string
		fault  dnsstub.Fault
		probes []probe
	}{
		{"one name", "www.example.test.", servfail, []probe{
			{"www.example.test.", dns.TypeA, dns.RcodeServerFailure},
			{"www.example.test.", dns.TypeAAAA, dns.RcodeServerFailure},
			{"mail.example.test.", dns.TypeA, dns.RcodeSuccess},
			{"x.www.example.test.", dns.TypeA, dns.RcodeNameError},
		}},
		{"one type", "www.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure, Types: []uint16{dns.TypeAAAA}}, []probe{
			{"www.example.test.", dns.TypeA, dns.RcodeSuccess},
			{"www.example.test.", dns.TypeAAAA, dns.RcodeServerFailure},
		}},
		{"zone-wide", "example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure, Subtree: true}, []probe{
			{"example.test.", dns.TypeSOA, dns.RcodeServerFailure},
			{"www.example.test.", dns.TypeA, dns.RcodeServerFailure},
			{"nope.example.test.", dns.TypeA, dns.RcodeServerFailure},
			{"1.2.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess},
		}},
		{"the apex alone", "example.test.", servfail, []probe{
			{"example.test.", dns.TypeSOA, dns.RcodeServerFailure},
			{"www.example.test.", dns.TypeA, dns.RcodeSuccess},
		}},
		{"outside the zones", "www.elsewhere.org.", servfail, []probe{
			{"www.elsewhere.org.", dns.TypeA, dns.RcodeServerFailure},
			{"other.elsewhere.org.", dns.TypeA, dns.RcodeRefused},
		}},
		{"NXDOMAIN for a name that exists", "www.example.test.", dnsstub.Fault{Rcode: dns.RcodeNameError}, []probe{
			{"www.example.test.", dns.TypeA, dns.RcodeNameError},
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := startFixture(t)
			if err := s.SetFault(tc.name, tc.fault); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.probes {
				r := ask(t, s.Addr(), p.name, p.qtype)
				if r.Rcode != p.want {
					t.Errorf("%s %s: got %s, want %s", p.name, dns.Type(p.qtype), dns.RcodeToString[r.Rcode], dns.RcodeToString[p.want])
				}
				if p.want == dns.RcodeServerFailure && len(r.Answer)+len(r.Ns) != 0 {
					t.Errorf("%s %s: got records %v with the fault's rcode, want none", p.name, dns.Type(p.qtype), r)
				}
			}
			s.ClearFault(tc.name)
			for _, p := range tc.probes {
				if r := ask(t, s.Addr(), p.name, p.qtype); r.Rcode == dns.RcodeServerFailure {
					t.Errorf("after ClearFault: %s %s: got SERVFAIL", p.name, dns.Type(p.qtype))
				}
			}
		})
	}
}

// TestFaultTimes fails the next two queries, then answers: a failure a
// retry gets past.
func TestFaultTimes(t *testing.T) {
	s := startFixture(t)
	if err := s.SetFault("www.example.test", dnsstub.Fault{Rcode: dns.RcodeServerFailure, Times: 2}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		got = append(got, dns.RcodeToString[ask(t, s.Addr(), "www.example.test.", dns.TypeA).Rcode])
	}
	if want := []string{"SERVFAIL", "SERVFAIL", "NOERROR", "NOERROR"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestClearFaults clears every fault at once.
func TestClearFaults(t *testing.T) {
	s := startFixture(t)
	for _, n := range []string{"www.example.test.", "mail.example.test."} {
		if err := s.SetFault(n, dnsstub.Fault{Rcode: dns.RcodeRefused}); err != nil {
			t.Fatal(err)
		}
	}
	s.ClearFaults()
	for _, n := range []string{"www.example.test.", "mail.example.test."} {
		if r := ask(t, s.Addr(), n, dns.TypeA); r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: got %s, want NOERROR", n, dns.RcodeToString[r.Rcode])
		}
	}
}

// TestDropFault drops queries over UDP and TCP: the client times out, and
// the log says no answer went out.
func TestDropFault(t *testing.T) {
	const clientTimeout = 300 * time.Millisecond
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			s := startFixture(t)
			if err := s.SetFault("www.example.test.", dnsstub.Fault{Drop: true}); err != nil {
				t.Fatal(err)
			}
			_, _, err := exchange(s.Addr(), transport, question("www.example.test.", dns.TypeA), clientTimeout)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("got %v, want the client's timeout", err)
			}
			log := s.Log()
			if len(log) != 1 || log[0].Rcode != -1 || log[0].Fault == nil || !log[0].Fault.Drop {
				t.Errorf("log: got %v, want one query with no answer and the drop fault", log)
			}
			// The rest of the zone still answers, on TCP the same way.
			if _, _, err := exchange(s.Addr(), transport, question("mail.example.test.", dns.TypeA), exchangeTimeout); err != nil {
				t.Errorf("another name: %v", err)
			}
		})
	}
}

// TestDelayFault delays one name's answers; another name's, asked
// meanwhile, are not held back.
func TestDelayFault(t *testing.T) {
	const delay = time.Second // far above an undelayed answer, even under -race on a loaded runner
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			s := startFixture(t)
			if err := s.SetFault("www.example.test.", dnsstub.Fault{Delay: delay}); err != nil {
				t.Fatal(err)
			}
			slow := make(chan time.Duration, 1)
			go func() {
				start := time.Now()
				r, _, err := exchange(s.Addr(), transport, question("www.example.test.", dns.TypeA), exchangeTimeout)
				if err != nil || len(r.Answer) != 1 {
					t.Errorf("delayed query: got %v, %v, want the answer", r, err)
				}
				slow <- time.Since(start)
			}()
			start := time.Now()
			if _, _, err := exchange(s.Addr(), transport, question("mail.example.test.", dns.TypeA), exchangeTimeout); err != nil {
				t.Fatal(err)
			}
			if fast := time.Since(start); fast >= delay {
				t.Errorf("undelayed name took %v, want under the delay %v", fast, delay)
			}
			if got := <-slow; got < delay {
				t.Errorf("delayed answer came after %v, want at least %v", got, delay)
			}
		})
	}
}

// TestTruncateFault truncates over UDP; the client's retry over TCP gets
// the whole answer, as a resolver's does.
func TestTruncateFault(t *testing.T) {
	s := startFixture(t)
	if err := s.SetFault("www.example.test.", dnsstub.Fault{Truncate: true}); err != nil {
		t.Fatal(err)
	}
	r := ask(t, s.Addr(), "www.example.test.", dns.TypeA)
	if !r.Truncated || len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("over UDP: got %v, want TC, NOERROR and no records", r)
	}
	r, _, err := exchange(s.Addr(), "tcp", question("www.example.test.", dns.TypeA), exchangeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 1 {
		t.Errorf("over TCP: got %v, want the whole answer", r)
	}
	var transports []string
	for _, q := range s.Log() {
		transports = append(transports, fmt.Sprintf("%s TC=%v", q.Transport, q.Truncated))
	}
	if want := []string{"udp TC=true", "tcp TC=false"}; fmt.Sprint(transports) != fmt.Sprint(want) {
		t.Errorf("log: got %v, want %v", transports, want)
	}
}

// TestTruncation: an answer too large for UDP (512 bytes without EDNS)
// goes out with TC and no records; with a large enough EDNS size, or over
// TCP, whole. Additional records that do not fit are left out without TC.
func TestTruncation(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	var big, many []string
	for i := range 20 {
		big = append(big, fmt.Sprintf("big TXT %q", strings.Repeat(string(rune('a'+i)), 40)))
	}
	for i := range 40 { // 16 bytes each: 640 in all
		many = append(many, fmt.Sprintf("target A 192.0.2.%d", i+1))
	}
	if err := s.AddZone("t.test.", append(append(big, many...), "srv SRV 0 0 80 target")...); err != nil {
		t.Fatal(err)
	}
	start(t, s)

	r := ask(t, s.Addr(), "big.t.test.", dns.TypeTXT)
	if !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("over UDP: got TC %v and %d answers, want TC and none", r.Truncated, len(r.Answer))
	}
	edns := question("big.t.test.", dns.TypeTXT)
	edns.SetEdns0(4096, false)
	if r, _, err := exchange(s.Addr(), "udp", edns, exchangeTimeout); err != nil || r.Truncated || len(r.Answer) != 20 {
		t.Errorf("over UDP with EDNS 4096: got %v, %v, want 20 answers", r, err)
	}
	if r, _, err := exchange(s.Addr(), "tcp", question("big.t.test.", dns.TypeTXT), exchangeTimeout); err != nil || r.Truncated || len(r.Answer) != 20 {
		t.Errorf("over TCP: got %v, %v, want 20 answers", r, err)
	}
	r = ask(t, s.Addr(), "srv.t.test.", dns.TypeSRV)
	if r.Truncated || len(r.Answer) != 1 || len(r.Extra) != 0 {
		t.Errorf("SRV with too many target addresses: got TC %v, %d answers, %d additional; want no TC, the answer, no additional",
			r.Truncated, len(r.Answer), len(r.Extra))
	}
	if r, _, err := exchange(s.Addr(), "tcp", question("srv.t.test.", dns.TypeSRV), exchangeTimeout); err != nil || len(r.Extra) != 40 {
		t.Errorf("SRV over TCP: got %v, %v, want 40 additional", r, err)
	}
}

// TestBadFaults checks that faults that do nothing or contradict
// themselves are refused with a message that says so.
func TestBadFaults(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{})
	for _, tc := range []struct {
		name  string
		fault dnsstub.Fault
		want  string
	}{
		{"www.example.test.", dnsstub.Fault{}, "does nothing"},
		{"www.example.test.", dnsstub.Fault{Types: []uint16{dns.TypeA}}, "does nothing"},
		{"www.example.test.", dnsstub.Fault{Drop: true, Delay: time.Second}, "set Drop alone"},
		{"www.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure, Truncate: true}, "set one"},
		{"www.example.test.", dnsstub.Fault{Rcode: 16}, "want 1 to 15"},
		{"www.example.test.", dnsstub.Fault{Delay: -time.Second}, "negative"},
		{"www.example.test.", dnsstub.Fault{Drop: true, Times: -1}, "negative"},
		{"bad..name", dnsstub.Fault{Drop: true}, "not a domain name"},
	} {
		err := s.SetFault(tc.name, tc.fault)
		if !errors.Is(err, dnsstub.ErrBadFault) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetFault(%q, %+v): got %v, want ErrBadFault saying %q", tc.name, tc.fault, err, tc.want)
		}
	}
}

// TestFaultString pins the fault's description in the log.
func TestFaultString(t *testing.T) {
	for _, tc := range []struct {
		f    dnsstub.Fault
		want string
	}{
		{dnsstub.Fault{Rcode: dns.RcodeServerFailure}, "SERVFAIL"},
		{dnsstub.Fault{Drop: true, Types: []uint16{dns.TypeAAAA}, Subtree: true}, "drop AAAA subtree"},
		{dnsstub.Fault{Delay: 200 * time.Millisecond, Times: 2}, "delay 200ms x2"},
		{dnsstub.Fault{Truncate: true, Delay: time.Second}, "truncate delay 1s"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
