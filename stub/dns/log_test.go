package dnsstub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// TestQueryLog checks what the log records of each query.
func TestQueryLog(t *testing.T) {
	s := startFixture(t)
	if err := s.SetFault("mail.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	ask(t, s.Addr(), "WWW.example.test.", dns.TypeA)
	if _, _, err := exchange(s.Addr(), "tcp", question("nope.example.test.", dns.TypeAAAA), exchangeTimeout); err != nil {
		t.Fatal(err)
	}
	ask(t, s.Addr(), "mail.example.test.", dns.TypeA)
	ask(t, s.Addr(), "www.elsewhere.org.", dns.TypeA)

	log := s.Log()
	var got []string
	for _, q := range log {
		got = append(got, fmt.Sprintf("%s %s %s %s %d %v", q.Transport, q.Name, dns.Type(q.Type), dns.RcodeToString[q.Rcode], q.Answers, q.Fault))
		if q.Time.Before(before) || q.Time.After(time.Now()) {
			t.Errorf("%s: time %v out of the test's", q.Name, q.Time)
		}
		if q.Client.Addr().String() != "127.0.0.1" || q.Client.Port() == 0 {
			t.Errorf("%s: client %v, want 127.0.0.1 and a port", q.Name, q.Client)
		}
	}
	want := []string{
		"udp WWW.example.test. A NOERROR 1 <nil>",
		"tcp nope.example.test. AAAA NXDOMAIN 0 <nil>",
		"udp mail.example.test. A SERVFAIL 0 SERVFAIL",
		"udp www.elsewhere.org. A REFUSED 0 <nil>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if line := log[2].String(); !strings.HasPrefix(line, "udp 127.0.0.1:") || !strings.HasSuffix(line, " mail.example.test. A: SERVFAIL, 0 answers (fault: SERVFAIL)") {
		t.Errorf("String: got %q", line)
	}

	log[0].Name = "changed"
	if s.Log()[0].Name == "changed" {
		t.Error("Log returned the log itself, want a copy")
	}
	s.ClearLog()
	if n := len(s.Log()); n != 0 {
		t.Errorf("after ClearLog: got %d queries, want 0", n)
	}
}

// TestLogLimit keeps the last LogLimit queries.
func TestLogLimit(t *testing.T) {
	s := dnsstub.New(dnsstub.Config{LogLimit: 3})
	if err := s.AddZone("l.test."); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	for i := range 5 {
		ask(t, s.Addr(), fmt.Sprintf("n%d.l.test.", i), dns.TypeA)
	}
	var got []string
	for _, q := range s.Log() {
		got = append(got, q.Name)
	}
	if want := []string{"n2.l.test.", "n3.l.test.", "n4.l.test."}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestWaitForQuery waits for a query logged before, one to come, and one
// that never comes, whose error says what it waited for and saw.
func TestWaitForQuery(t *testing.T) {
	s := startFixture(t)
	ask(t, s.Addr(), "www.example.test.", dns.TypeA)

	t.Run("logged before", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
		defer cancel()
		q, err := s.WaitForQuery(ctx, dnsstub.Match{Name: "WWW.example.test", Type: dns.TypeA})
		if err != nil || q.Name != "www.example.test." {
			t.Errorf("got %v, %v; want the query", q, err)
		}
	})

	t.Run("to come", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
		defer cancel()
		since := time.Now()
		go func() {
			time.Sleep(50 * time.Millisecond)
			exchange(s.Addr(), "tcp", question("www.example.test.", dns.TypeAAAA), exchangeTimeout)
		}()
		q, err := s.WaitForQuery(ctx, dnsstub.Match{
			Name: "www.example.test.", Transport: "tcp", Since: since,
			Func: func(q dnsstub.Query) bool { return q.Answers == 1 }, Desc: "has one answer",
		})
		if err != nil || q.Type != dns.TypeAAAA || q.Transport != "tcp" {
			t.Errorf("got %v, %v; want the AAAA query over tcp", q, err)
		}
	})

	t.Run("never", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := s.WaitForQuery(ctx, dnsstub.Match{Name: "never.example.test.", Type: dns.TypeMX})
		if !errors.Is(err, dnsstub.ErrNoQuery) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want ErrNoQuery and DeadlineExceeded", err)
		}
		for _, want := range []string{
			"wait for a query for never.example.test. MX",
			"2 queries came, none matching",
			"www.example.test. A: NOERROR, 1 answer",
			"www.example.test. AAAA: NOERROR, 1 answer",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q\nlacks %q", err, want)
			}
		}
	})

	t.Run("nothing came", func(t *testing.T) {
		empty := dnsstub.New(dnsstub.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := empty.WaitForQuery(ctx, dnsstub.Match{})
		if want := "no query came at all"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error saying %q", err, want)
		}
	})
}

// TestMatch checks each field of a Match.
func TestMatch(t *testing.T) {
	now := time.Now()
	q := dnsstub.Query{Time: now, Transport: "udp", Name: "Www.Example.Test.", Type: dns.TypeA, Rcode: dns.RcodeSuccess}
	for _, tc := range []struct {
		m    dnsstub.Match
		want bool
	}{
		{dnsstub.Match{}, true},
		{dnsstub.Match{Name: "www.example.test"}, true},
		{dnsstub.Match{Name: "other.example.test."}, false},
		{dnsstub.Match{Type: dns.TypeA}, true},
		{dnsstub.Match{Type: dns.TypeAAAA}, false},
		{dnsstub.Match{Transport: "tcp"}, false},
		{dnsstub.Match{Since: now}, true},
		{dnsstub.Match{Since: now.Add(time.Nanosecond)}, false},
		{dnsstub.Match{Func: func(q dnsstub.Query) bool { return q.Rcode == dns.RcodeServerFailure }}, false},
	} {
		if got := tc.m.Matches(q); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.m, got, tc.want)
		}
	}
}
