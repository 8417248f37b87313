package dnsstub_test

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// A server on loopback with one zone, asked with miekg/dns's client, then
// failed for one name, and the log asked what came.
func Example() {
	s := dnsstub.New(dnsstub.Config{})
	defer s.Close()
	if err := s.AddZone("example.test.",
		"www A     192.0.2.1",
		"api CNAME www",
	); err != nil {
		panic(err)
	}
	if err := s.Start(""); err != nil {
		panic(err)
	}

	c := &dns.Client{Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("api.example.test.", dns.TypeA)
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		panic(err)
	}
	for _, rr := range r.Answer {
		fmt.Println(rr)
	}

	s.SetFault("www.example.test.", dnsstub.Fault{Rcode: dns.RcodeServerFailure, Times: 1})
	m.SetQuestion("www.example.test.", dns.TypeA)
	r, _, _ = c.Exchange(m, s.Addr())
	fmt.Println(dns.RcodeToString[r.Rcode])

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	q, err := s.WaitForQuery(ctx, dnsstub.Match{Name: "www.example.test.", Type: dns.TypeA})
	fmt.Println(q.Fault, err)
	// Output:
	// api.example.test.	5	IN	CNAME	www.example.test.
	// www.example.test.	5	IN	A	192.0.2.1
	// SERVFAIL
	// SERVFAIL x1 <nil>
}
