package acmestub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// testCA is a CA of the test's own, for Config.Issuer.
func testCA(t *testing.T, isCA bool) *acmestub.Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &acmestub.Issuer{Cert: cert, Key: key}
}

// TestIssuer: a CA of the test's signs what the server issues; one that
// cannot sign is refused.
func TestIssuer(t *testing.T) {
	ca := testCA(t, true)
	e := newEnv(t, acmestub.Config{Issuer: ca, CertLifetime: time.Minute})
	chain := e.issue(t, e.client(t), []string{"own.test"}, "dns-01")
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("leaf not signed by the issuer given: %v", err)
	}
	if d := time.Until(leaf.NotAfter); d > time.Minute {
		t.Errorf("leaf valid for %v more, want CertLifetime's minute at most", d)
	}
	if !strings.Contains(string(e.s.RootPEM()), "BEGIN CERTIFICATE") {
		t.Errorf("RootPEM: %q", e.s.RootPEM())
	}

	for name, is := range map[string]*acmestub.Issuer{
		"not a CA":   testCA(t, false),
		"wrong key":  {Cert: ca.Cert, Key: testCA(t, true).Key},
		"key absent": {Cert: ca.Cert},
	} {
		if _, err := acmestub.New(acmestub.Config{Issuer: is}); !errors.Is(err, acmestub.ErrBadConfig) {
			t.Errorf("%s: got %v, want ErrBadConfig", name, err)
		}
	}
}

// TestServeNames: Serve's certificate covers Config.Names, and the
// directory URL uses the first.
func TestServeNames(t *testing.T) {
	s, err := acmestub.New(acmestub.Config{Names: []string{"ca.example.test"}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, acmestub.ErrServerClosed) {
			t.Errorf("Serve: got %v, want ErrServerClosed", err)
		}
	})
	for s.DirectoryURL() == "" {
		time.Sleep(time.Millisecond)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if want := "https://ca.example.test:" + port + "/directory"; s.DirectoryURL() != want {
		t.Errorf("DirectoryURL %s, want %s", s.DirectoryURL(), want)
	}
	hc := s.Client()
	c := &acme.Client{Key: newKey(t), DirectoryURL: s.DirectoryURL(), HTTPClient: hc}
	// The name resolves nowhere: dial the listener for it.
	tr := hc.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	if _, err := c.Discover(ctx); err != nil {
		t.Errorf("discover at %s: %v", s.DirectoryURL(), err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(""); !errors.Is(err, acmestub.ErrServerClosed) {
		t.Errorf("Start after Close: got %v, want ErrServerClosed", err)
	}
}
