package acmestub_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// flowTimeout bounds one ACME flow on loopback: x/crypto/acme polls an
// authorization or order once a second, so a flow takes seconds; far
// more for a loaded runner under -race.
const flowTimeout = 60 * time.Second

// env is a CA on loopback and the test's side of its validations: a
// challenge server for HTTP-01, TXT records for DNS-01, and the
// addresses names resolve to.
type env struct {
	s *acmestub.Server

	mu    sync.Mutex
	files map[string]string   // token → HTTP-01 answer
	txt   map[string][]string // name → TXT records
	hosts map[string][]string // name → addresses; names under .test not in it are 127.0.0.1
}

// newEnv starts a CA configured by cfg (its HTTPPort, LookupHost,
// LookupTXT and Logf set by env) and a challenge server, closed when the
// test ends.
func newEnv(t *testing.T, cfg acmestub.Config) *env {
	t.Helper()
	e := &env{files: map[string]string{}, txt: map[string][]string{}, hosts: map[string][]string{}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		body, ok := e.files[strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body + "\n")) // whitespace around it is allowed
	}))
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	cfg.HTTPPort, _ = strconv.Atoi(port)
	cfg.LookupHost = e.lookupHost
	cfg.LookupTXT = e.lookupTXT
	cfg.Logf = t.Logf
	s, err := acmestub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.s = s
	return e
}

func (e *env) lookupHost(ctx context.Context, name string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if addrs, ok := e.hosts[name]; ok {
		return addrs, nil
	}
	if strings.HasSuffix(name, ".test") {
		return []string{"127.0.0.1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (e *env) lookupTXT(ctx context.Context, name string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if txt, ok := e.txt[name]; ok {
		return txt, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// client returns an x/crypto/acme client of a new account.
func (e *env) client(t *testing.T) *acme.Client {
	t.Helper()
	c := &acme.Client{Key: newKey(t), DirectoryURL: e.s.DirectoryURL(), HTTPClient: e.s.Client()}
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	if _, err := c.Register(ctx, &acme.Account{Contact: []string{"mailto:test@example.test"}}, acme.AcceptTOS); err != nil {
		t.Fatalf("register: %v", err)
	}
	return c
}

// answer provisions the answer to chal the way a client does: the key
// authorization as the HTTP-01 file, or its digest as the DNS-01 TXT
// record of name; a non-empty wrong replaces it.
func (e *env) answer(t *testing.T, c *acme.Client, chal *acme.Challenge, name, wrong string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	switch chal.Type {
	case "http-01":
		v, err := c.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			t.Fatal(err)
		}
		if wrong != "" {
			v = wrong
		}
		e.files[chal.Token] = v
	case "dns-01":
		v, err := c.DNS01ChallengeRecord(chal.Token)
		if err != nil {
			t.Fatal(err)
		}
		if wrong != "" {
			v = wrong
		}
		at := "_acme-challenge." + name
		e.txt[at] = append(e.txt[at], v)
	}
}

// authorize orders names and answers each authorization's challenge of
// type typ (wrong, if not "", as the answer), waiting for each; it
// returns the order, and the first authorization's error.
func (e *env) authorize(t *testing.T, c *acme.Client, names []string, typ, wrong string) (*acme.Order, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(names...))
	if err != nil {
		t.Fatalf("order %v: %v", names, err)
	}
	for _, u := range o.AuthzURLs {
		a, err := c.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatalf("get authorization: %v", err)
		}
		chal := challengeOf(a, typ)
		if chal == nil {
			t.Fatalf("authorization for %s has no %s challenge", a.Identifier.Value, typ)
		}
		e.answer(t, c, chal, a.Identifier.Value, wrong)
		if _, err := c.Accept(ctx, chal); err != nil {
			t.Fatalf("accept %s for %s: %v", typ, a.Identifier.Value, err)
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			return o, err
		}
	}
	return o, nil
}

// issue orders names, answers their typ challenges, finalizes with a new
// key and returns the chain.
func (e *env) issue(t *testing.T, c *acme.Client, names []string, typ string) [][]byte {
	t.Helper()
	o, err := e.authorize(t, c, names, typ, "")
	if err != nil {
		t.Fatalf("authorize %v: %v", names, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	chain, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr(t, newKey(t), names...), true)
	if err != nil {
		t.Fatalf("finalize %v: %v", names, err)
	}
	return chain
}

// challengeOf is a's challenge of type typ, nil if none.
func challengeOf(a *acme.Authorization, typ string) *acme.Challenge {
	for _, c := range a.Challenges {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csr is a CSR of key for names, the first also the common name.
func csr(t *testing.T, key crypto.Signer, names ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// problemType is an ACME error's problem type, "" if err is not one.
func problemType(err error) string {
	if e, ok := err.(*acme.Error); ok {
		return e.ProblemType
	}
	return ""
}
