package acmestub_test

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// TestIssue drives whole issuances with x/crypto/acme and verifies the
// chains against Roots.
func TestIssue(t *testing.T) {
	tests := []struct {
		name   string
		names  []string
		typ    string
		hosts  map[string][]string
		verify []string // names the leaf must verify for; names if nil
	}{
		{name: "http-01", names: []string{"www.example.test"}, typ: "http-01"},
		{name: "http-01 two names", names: []string{"a.example.test", "b.example.test"}, typ: "http-01"},
		{name: "dns-01", names: []string{"dns.example.test"}, typ: "dns-01"},
		{name: "dns-01 wildcard and apex", names: []string{"*.w.example.test", "w.example.test"}, typ: "dns-01",
			verify: []string{"any.w.example.test", "w.example.test"}},
		{name: "http-01 second address after a refused one", names: []string{"two.example.test"}, typ: "http-01",
			hosts: map[string][]string{"two.example.test": {"127.0.0.2", "127.0.0.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, acmestub.Config{})
			for n, a := range tt.hosts {
				e.hosts[n] = a
			}
			chain := e.issue(t, e.client(t), tt.names, tt.typ)
			if len(chain) != 2 {
				t.Fatalf("got a chain of %d certificates, want 2: leaf and issuer", len(chain))
			}
			leaf, err := x509.ParseCertificate(chain[0])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(leaf.DNSNames, tt.names) {
				t.Errorf("leaf names %v, want %v", leaf.DNSNames, tt.names)
			}
			issuer, err := x509.ParseCertificate(chain[1])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := issuer.Verify(x509.VerifyOptions{Roots: e.s.Roots()}); err != nil {
				t.Errorf("chain's second certificate is not the root: %v", err)
			}
			verify := tt.verify
			if verify == nil {
				verify = tt.names
			}
			for _, n := range verify {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.s.Roots(), DNSName: n}); err != nil {
					t.Errorf("verify for %s: %v", n, err)
				}
			}
			issued := e.s.Issued()
			if len(issued) != 1 || !issued[0].Equal(leaf) {
				t.Errorf("Issued: got %d certificates, want the leaf alone", len(issued))
			}
			ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
			defer cancel()
			ev, err := e.s.WaitFor(ctx, acmestub.Match{Kind: acmestub.EventIssued, Name: tt.names[0]})
			if err != nil {
				t.Fatal(err)
			}
			if ev.Serial != leaf.SerialNumber.Text(16) {
				t.Errorf("issued event's serial %s, want %s", ev.Serial, leaf.SerialNumber.Text(16))
			}
		})
	}
}

// TestWildcardDNS01Only: a wildcard's authorization offers dns-01 alone,
// for the name without "*.".
func TestWildcardDNS01Only(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	c := e.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs("*.w.test", "v.test"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range o.AuthzURLs {
		a, err := c.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ch := range a.Challenges {
			types = append(types, ch.Type)
		}
		got = append(got, a.Identifier.Value+" "+strings.Join(types, ","))
		if a.Wildcard != (a.Identifier.Value == "w.test") {
			t.Errorf("%s: wildcard %v", a.Identifier.Value, a.Wildcard)
		}
	}
	if want := []string{"w.test dns-01", "v.test http-01,dns-01"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestValidationFails checks the problem of each kind of failed
// validation, and that the failure is final: authorization and order
// invalid.
func TestValidationFails(t *testing.T) {
	tests := []struct {
		name       string
		host       string
		addrs      []string // what host resolves to, if set
		typ        string
		wrong      string // the answer, if not the right one
		fault      *acmestub.Fault
		noAnswer   bool
		wantType   string
		wantDetail []string
	}{
		{name: "wrong key authorization", host: "wrong.test", typ: "http-01", wrong: "not-it",
			wantType: acmestub.ProblemIncorrectResponse, wantDetail: []string{`answered "not-it", want the key authorization`}},
		{name: "404", host: "missing.test", typ: "http-01", noAnswer: true,
			wantType: acmestub.ProblemUnauthorized, wantDetail: []string{"got 404 Not Found"}},
		{name: "name does not resolve", host: "nowhere.invalid", typ: "http-01",
			wantType: acmestub.ProblemDNS, wantDetail: []string{"look up nowhere.invalid", "no such host"}},
		{name: "resolves to nothing", host: "empty.test", addrs: []string{}, typ: "http-01",
			wantType: acmestub.ProblemDNS, wantDetail: []string{"look up empty.test: no addresses"}},
		{name: "connection refused", host: "refused.test", addrs: []string{"127.0.0.2"}, typ: "http-01",
			wantType: acmestub.ProblemConnection, wantDetail: []string{"connect to 127.0.0.2:", "connection refused"}},
		{name: "wrong TXT", host: "txt.test", typ: "dns-01", wrong: "nope",
			wantType: acmestub.ProblemIncorrectResponse, wantDetail: []string{`TXT records at _acme-challenge.txt.test were ["nope"], want "`}},
		{name: "no TXT", host: "notxt.test", typ: "dns-01", noAnswer: true,
			wantType: acmestub.ProblemIncorrectResponse, wantDetail: []string{"no TXT records at _acme-challenge.notxt.test"}},
		{name: "fault", host: "fault.test", typ: "http-01",
			fault:    &acmestub.Fault{FailValidations: 1, Problem: &acmestub.Problem{Type: acmestub.ProblemConnection, Detail: "timeout during connect"}},
			wantType: acmestub.ProblemConnection, wantDetail: []string{"timeout during connect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, acmestub.Config{})
			if tt.addrs != nil {
				e.hosts[tt.host] = tt.addrs
			}
			if tt.fault != nil {
				if err := e.s.SetFault(*tt.fault); err != nil {
					t.Fatal(err)
				}
			}
			c := e.client(t)
			ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
			defer cancel()
			o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(tt.host))
			if err != nil {
				t.Fatal(err)
			}
			a, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
			if err != nil {
				t.Fatal(err)
			}
			chal := challengeOf(a, tt.typ)
			if !tt.noAnswer {
				e.answer(t, c, chal, tt.host, tt.wrong)
			}
			if _, err := c.Accept(ctx, chal); err != nil {
				t.Fatal(err)
			}
			_, err = c.WaitAuthorization(ctx, o.AuthzURLs[0])
			var aerr *acme.AuthorizationError
			if !errors.As(err, &aerr) || len(aerr.Errors) != 1 {
				t.Fatalf("wait authorization: got %v, want an AuthorizationError with one problem", err)
			}
			p := aerr.Errors[0].(*acme.Error)
			if p.ProblemType != tt.wantType {
				t.Errorf("problem type %s, want %s (detail %q)", p.ProblemType, tt.wantType, p.Detail)
			}
			for _, w := range tt.wantDetail {
				if !strings.Contains(p.Detail, w) {
					t.Errorf("detail %q does not say %q", p.Detail, w)
				}
			}
			got, err := c.GetOrder(ctx, o.URI)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != acme.StatusInvalid || problemType(got.Error) != tt.wantType {
				t.Errorf("order %s with error %v, want invalid with %s", got.Status, got.Error, tt.wantType)
			}
			// Invalid is final: answering again starts nothing.
			if ch, err := c.Accept(ctx, chal); err != nil || ch.Status != acme.StatusInvalid {
				t.Errorf("accept again: got %v, %v; want the challenge, invalid", ch, err)
			}
			ev, err := e.s.WaitFor(ctx, acmestub.Match{Kind: acmestub.EventInvalid, Name: tt.host, ProblemType: tt.wantType})
			if err != nil {
				t.Fatal(err)
			}
			if (ev.Fault != "") != (tt.fault != nil) {
				t.Errorf("event's fault %q, want one only for a fault", ev.Fault)
			}
		})
	}
}
