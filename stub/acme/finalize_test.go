package acmestub_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// TestFinalizeRefuses CSRs that do not match the order, and orders not
// ready.
func TestFinalizeRefuses(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	c := e.client(t)
	ready, err := e.authorize(t, c, []string{"f.test", "g.test"}, "http-01", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	pending, err := c.AuthorizeOrder(ctx, acme.DomainIDs("p.test"))
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		order      *acme.Order
		key        crypto.Signer
		names      []string
		wantType   string
		wantDetail string
	}{
		{name: "extra name", order: ready, names: []string{"f.test", "g.test", "h.test"}, wantType: acmestub.ProblemBadCSR, wantDetail: "extra [h.test], missing []"},
		{name: "missing name", order: ready, names: []string{"f.test"}, wantType: acmestub.ProblemBadCSR, wantDetail: "missing [g.test]"},
		{name: "account key", order: ready, key: c.Key, names: []string{"f.test", "g.test"}, wantType: acmestub.ProblemBadCSR, wantDetail: "the account's key"},
		{name: "weak key", order: ready, key: weak, names: []string{"f.test", "g.test"}, wantType: acmestub.ProblemBadCSR, wantDetail: "RSA key of 1024 bits"},
		{name: "not ready", order: pending, names: []string{"p.test"}, wantType: acmestub.ProblemOrderNotReady, wantDetail: "is pending, not ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == nil {
				key = newKey(t)
			}
			_, _, err := c.CreateOrderCert(ctx, tt.order.FinalizeURL, csr(t, key, tt.names...), true)
			if problemType(err) != tt.wantType || !strings.Contains(err.Error(), tt.wantDetail) {
				t.Errorf("got %v, want %s saying %q", err, tt.wantType, tt.wantDetail)
			}
		})
	}
	// The refusals leave the order ready for a right CSR.
	if _, _, err := c.CreateOrderCert(ctx, ready.FinalizeURL, csr(t, newKey(t), "g.test", "f.test"), true); err != nil {
		t.Errorf("finalize after refusals: %v", err)
	}
}

// TestRevoke revokes with the account, then again.
func TestRevoke(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	c := e.client(t)
	chain := e.issue(t, c, []string{"r.test"}, "dns-01")
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	if err := c.RevokeCert(ctx, nil, chain[0], acme.CRLReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.WaitFor(ctx, acmestub.Match{Kind: acmestub.EventRevoked, Name: "r.test"}); err != nil {
		t.Error(err)
	}
	// x/crypto/acme takes alreadyRevoked as success: the log tells.
	if err := c.RevokeCert(ctx, nil, chain[0], acme.CRLReasonKeyCompromise); err != nil {
		t.Errorf("revoke again: %v", err)
	}
	if _, err := e.s.WaitFor(ctx, acmestub.Match{Kind: acmestub.EventRejected, ProblemType: acmestub.ProblemAlreadyRevoked}); err != nil {
		t.Error(err)
	}
	other := e.client(t)
	if err := other.RevokeCert(ctx, nil, chain[0], acme.CRLReasonKeyCompromise); problemType(err) != acmestub.ProblemUnauthorized {
		t.Errorf("revoke by another account: got %v, want unauthorized", err)
	}
}
