package acmestub_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/acme"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// TestAccounts: an existing key finds its account, an unknown one none,
// and a kid of no account is refused.
func TestAccounts(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	c := e.client(t)
	acct, err := c.GetReg(ctx, "")
	if err != nil || acct.Status != acme.StatusValid || !strings.HasSuffix(acct.URI, "/acct/1") {
		t.Errorf("GetReg: got %+v, %v; want account 1, valid", acct, err)
	}
	again := &acme.Client{Key: c.Key, DirectoryURL: c.DirectoryURL, HTTPClient: e.s.Client()}
	if _, err := again.Register(ctx, &acme.Account{}, acme.AcceptTOS); !errors.Is(err, acme.ErrAccountAlreadyExists) {
		t.Errorf("register the same key again: got %v, want ErrAccountAlreadyExists", err)
	}

	stranger := &acme.Client{Key: newKey(t), DirectoryURL: c.DirectoryURL, HTTPClient: e.s.Client()}
	if _, err := stranger.GetReg(ctx, ""); !errors.Is(err, acme.ErrNoAccount) {
		t.Errorf("GetReg of an unknown key: got %v, want ErrNoAccount (accountDoesNotExist)", err)
	}
	stranger.KID = acme.KeyID(strings.Replace(acct.URI, "/acct/1", "/acct/99", 1))
	if _, err := stranger.AuthorizeOrder(ctx, acme.DomainIDs("x.test")); problemType(err) != acmestub.ProblemAccountDoesNotExist {
		t.Errorf("order with an unknown kid: got %v, want accountDoesNotExist", err)
	}

	if err := c.DeactivateReg(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthorizeOrder(ctx, acme.DomainIDs("x.test")); problemType(err) != acmestub.ProblemUnauthorized {
		t.Errorf("order of a deactivated account: got %v, want unauthorized", err)
	}
}

// TestTermsOfService: new accounts must agree.
func TestTermsOfService(t *testing.T) {
	e := newEnv(t, acmestub.Config{TermsOfService: "https://ca.test/tos"})
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	c := &acme.Client{Key: newKey(t), DirectoryURL: e.s.DirectoryURL(), HTTPClient: e.s.Client()}
	if _, err := c.Register(ctx, &acme.Account{}, func(string) bool { return false }); problemType(err) != acmestub.ProblemMalformed {
		t.Errorf("register without agreeing: got %v, want malformed", err)
	}
	if _, err := c.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Errorf("register agreeing: %v", err)
	}
}

// TestRequestChecks sends hand-made requests that break RFC 8555 6.2 to
// 6.5, and checks each answer's problem and headers.
func TestRequestChecks(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	dir := e.s.DirectoryURL()
	base := strings.TrimSuffix(dir, "/directory")
	hc := e.s.Client()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nonce := func() string {
		resp, err := hc.Head(base + "/new-nonce")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Replay-Nonce")
	}
	// sign makes a JWS of payload with key's jwk, for url, with nonce.
	sign := func(alg jose.SignatureAlgorithm, k any, url, nonce, payload string) string {
		opts := (&jose.SignerOptions{EmbedJWK: true}).WithHeader("url", url).WithHeader("nonce", nonce)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, opts)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return jws.FullSerialize()
	}
	used := nonce()
	body := sign(jose.ES256, key, base+"/new-account", used, `{"termsOfServiceAgreed":true}`)
	tests := []struct {
		name        string
		method, url string
		ctype       string
		body        string
		wantStatus  int
		wantType    string
	}{
		{name: "first use of a nonce", method: "POST", url: base + "/new-account", body: body, wantStatus: http.StatusCreated},
		{name: "nonce used again", method: "POST", url: base + "/new-account", body: body, wantStatus: http.StatusBadRequest, wantType: acmestub.ProblemBadNonce},
		{name: "nonce never issued", method: "POST", url: base + "/new-account", body: sign(jose.ES256, key, base+"/new-account", "made-up", "{}"), wantStatus: http.StatusBadRequest, wantType: acmestub.ProblemBadNonce},
		{name: "url of another resource", method: "POST", url: base + "/new-account", body: sign(jose.ES256, key, base+"/new-order", nonce(), "{}"), wantStatus: http.StatusForbidden, wantType: acmestub.ProblemUnauthorized},
		{name: "MAC algorithm", method: "POST", url: base + "/new-account", body: sign(jose.HS256, []byte("0123456789abcdef0123456789abcdef"), base+"/new-account", nonce(), "{}"), wantStatus: http.StatusBadRequest, wantType: acmestub.ProblemBadSignatureAlgorithm},
		{name: "jwk where kid is due", method: "POST", url: base + "/new-order", body: sign(jose.ES256, key, base+"/new-order", nonce(), "{}"), wantStatus: http.StatusBadRequest, wantType: acmestub.ProblemMalformed},
		{name: "wrong content type", method: "POST", url: base + "/new-account", ctype: "application/json", body: "{}", wantStatus: http.StatusUnsupportedMediaType, wantType: acmestub.ProblemMalformed},
		{name: "GET of a resource", method: "GET", url: base + "/new-order", wantStatus: http.StatusMethodNotAllowed, wantType: acmestub.ProblemMalformed},
		{name: "unknown path", method: "GET", url: base + "/nope", wantStatus: http.StatusNotFound, wantType: acmestub.ProblemMalformed},
		{name: "directory", method: "GET", url: dir, wantStatus: http.StatusOK},
		{name: "GET newNonce", method: "GET", url: base + "/new-nonce", wantStatus: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			ctype := tt.ctype
			if ctype == "" {
				ctype = "application/jose+json"
			}
			req.Header.Set("Content-Type", ctype)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, b)
			}
			if tt.wantType != "" {
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("content type %q, want application/problem+json", ct)
				}
				if !bytes.Contains(b, []byte(`"type":"`+tt.wantType+`"`)) {
					t.Errorf("body %s, want problem %s", b, tt.wantType)
				}
			}
			if resp.Header.Get("Replay-Nonce") == "" {
				t.Error("no Replay-Nonce")
			}
			if got, want := resp.Header.Get("Link"), "<"+dir+`>;rel="index"`; got != want {
				t.Errorf("Link %q, want %q", got, want)
			}
		})
	}
}
