package acmestub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// A CA on loopback issuing a wildcard certificate to x/crypto/acme over
// dns-01, its TXT records in a map; then the log asked what happened.
func Example() {
	var (
		mu  sync.Mutex
		txt = map[string][]string{}
	)
	s, err := acmestub.New(acmestub.Config{
		LookupTXT: func(ctx context.Context, name string) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			return txt[name], nil
		},
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if err := s.Start(""); err != nil {
		panic(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &acme.Client{Key: key, DirectoryURL: s.DirectoryURL(), HTTPClient: s.Client()}
	if _, err := c.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		panic(err)
	}
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs("*.example.test"))
	if err != nil {
		panic(err)
	}
	a, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		panic(err)
	}
	chal := a.Challenges[0] // a wildcard's only challenge: dns-01
	record, _ := c.DNS01ChallengeRecord(chal.Token)
	mu.Lock()
	txt["_acme-challenge.example.test"] = []string{record}
	mu.Unlock()
	if _, err := c.Accept(ctx, chal); err != nil {
		panic(err)
	}
	if _, err := c.WaitAuthorization(ctx, a.URI); err != nil {
		panic(err)
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"*.example.test"}}, certKey)
	chain, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		panic(err)
	}

	leaf, _ := x509.ParseCertificate(chain[0])
	_, err = leaf.Verify(x509.VerifyOptions{Roots: s.Roots(), DNSName: "www.example.test"})
	fmt.Println(chal.Type, leaf.DNSNames, err)
	for _, e := range s.Log() {
		fmt.Println(e.Kind)
	}
	// Output:
	// dns-01 [*.example.test] <nil>
	// account created
	// order created
	// validation started
	// validation succeeded
	// certificate issued
}
