package acmestub

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"

	jose "github.com/go-jose/go-jose/v4"
)

// signatureAlgorithms are the JWS algorithms the server accepts: RFC 8555
// 6.2 asks for asymmetric ones (never "none" or a MAC), ES256 and EdDSA
// at least; RSA for the many clients whose account keys are RSA.
var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// maxRequestBody bounds a signed request: a CSR with many names fits
// well within it.
const maxRequestBody = 1 << 20

// maxNonces bounds the nonces issued and not used: a client that fetches
// many and uses few cannot grow the server without end; the oldest are
// forgotten, and a client using one gets badNonce and retries.
const maxNonces = 10000

// keyMode says how a request must identify its key (RFC 8555 6.2).
type keyMode int

const (
	byKID    keyMode = iota // kid: an account's URL
	byJWK                   // jwk: newAccount
	byEither                // revokeCert: the account's, or the certificate's key
)

// request is a signed request that passed the JWS checks.
type request struct {
	r       *http.Request
	base    string           // "https://host:port"
	payload []byte           // "" for POST-as-GET
	acct    *account         // the signer's account; nil for a jwk request
	jwk     *jose.JSONWebKey // the signer's key
}

// newNonce issues a nonce for Replay-Nonce.
func (s *Server) newNonce() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	n := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonces[n] = true
	s.nonceOrder = append(s.nonceOrder, n)
	if len(s.nonceOrder) > maxNonces {
		for _, old := range s.nonceOrder[:len(s.nonceOrder)-maxNonces] {
			delete(s.nonces, old)
		}
		s.nonceOrder = append(s.nonceOrder[:0:0], s.nonceOrder[len(s.nonceOrder)-maxNonces:]...)
	}
	return n
}

// useNonce reports whether n was issued and not used, using it up.
func (s *Server) useNonce(n string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.nonces[n] {
		return false
	}
	delete(s.nonces, n) // nonceOrder keeps it until it falls off: harmless
	return true
}

// baseURL is the scheme and host clients reach the server at, from the
// request, so that the URLs it hands out are ones they can follow.
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// verify runs the checks of RFC 8555 6.2 to 6.5 on a signed request: its
// content type, JWS, url header, nonce and key, and returns it with its
// payload; or the problem to answer with.
func (s *Server) verify(r *http.Request, mode keyMode) (*request, *Problem) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/jose+json" {
		return nil, problem(ProblemMalformed, http.StatusUnsupportedMediaType, "content type %q: want application/jose+json", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "read request body: %v", err)
	}
	if len(body) > maxRequestBody {
		return nil, problem(ProblemMalformed, http.StatusRequestEntityTooLarge, "request body over %d bytes", maxRequestBody)
	}
	jws, err := jose.ParseSignedJSON(string(body), signatureAlgorithms)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return nil, problem(ProblemBadSignatureAlgorithm, http.StatusBadRequest, "JWS algorithm %q: want one of %v", alg.Got, signatureAlgorithms)
		}
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "parse JWS (flattened JSON serialization, RFC 8555 6.2): %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "JWS has %d signatures: want 1", len(jws.Signatures))
	}
	sig := jws.Signatures[0]
	if u := sig.Unprotected; u.KeyID != "" || u.JSONWebKey != nil || u.Algorithm != "" || u.Nonce != "" || len(u.ExtraHeaders) > 0 {
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "JWS has an unprotected header: RFC 8555 6.2 forbids it")
	}
	h := sig.Protected
	want := baseURL(r) + r.URL.Path
	if got, _ := h.ExtraHeaders["url"].(string); got != want {
		return nil, problem(ProblemUnauthorized, http.StatusForbidden, "JWS url header %q is not the request's URL %q", got, want)
	}
	// The nonce is checked before the signature, as Boulder does, so
	// that a client with a stale nonce learns it first.
	switch {
	case h.Nonce == "":
		return nil, problem(ProblemBadNonce, http.StatusBadRequest, "JWS has no nonce: get one from newNonce or a Replay-Nonce header")
	case !s.useNonce(h.Nonce):
		return nil, problem(ProblemBadNonce, http.StatusBadRequest, "nonce %q was never issued, or was used already: retry with this answer's Replay-Nonce", h.Nonce)
	}
	if f := s.takeBadNonce(); f != "" {
		p := problem(ProblemBadNonce, http.StatusBadRequest, "nonce %q refused: retry with this answer's Replay-Nonce", h.Nonce)
		p.fault = f
		return nil, p
	}
	req := &request{r: r, base: baseURL(r)}
	switch {
	case h.JSONWebKey != nil && h.KeyID != "":
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "JWS has both jwk and kid: want one (RFC 8555 6.2)")
	case h.JSONWebKey != nil && mode == byKID:
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "JWS has jwk: want kid, the account's URL, for %s", r.URL.Path)
	case h.KeyID != "" && mode == byJWK:
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "JWS has kid: want jwk, the account's public key, for %s", r.URL.Path)
	case h.JSONWebKey != nil:
		if !h.JSONWebKey.Valid() || !h.JSONWebKey.IsPublic() {
			return nil, problem(ProblemBadPublicKey, http.StatusBadRequest, "jwk is not a valid public key")
		}
		req.jwk = h.JSONWebKey
	case h.KeyID != "":
		acct, p := s.accountOf(h.KeyID)
		if p != nil {
			return nil, p
		}
		req.acct, req.jwk = acct, acct.key
	default:
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "JWS has neither jwk nor kid")
	}
	payload, err := jws.Verify(req.jwk)
	if err != nil {
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "JWS signature does not verify with the %s: %v", keyName(req), err)
	}
	req.payload = payload
	return req, nil
}

// keyName says which key a request was checked with, for problems.
func keyName(req *request) string {
	if req.acct != nil {
		return "key of account " + req.acct.id
	}
	return "jwk header's key"
}

// accountOf returns the account a kid names.
func (s *Server) accountOf(kid string) (*account, *Problem) {
	u, err := url.Parse(kid)
	dir, id := path.Split(u.Path)
	if err != nil || dir != "/acct/" {
		return nil, problem(ProblemMalformed, http.StatusBadRequest, "kid %q is not an account URL (.../acct/ID)", kid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[id]
	switch {
	case acct == nil:
		return nil, problem(ProblemAccountDoesNotExist, http.StatusBadRequest, "no account %s (kid %q): register with newAccount", id, kid)
	case acct.status != statusValid:
		return nil, problem(ProblemUnauthorized, http.StatusForbidden, "account %s is %s", id, acct.status)
	}
	return acct, nil
}

// thumbprint is the base64url SHA-256 JWK thumbprint (RFC 7638) of key,
// the account's part of key authorizations (RFC 8555 8.1).
func thumbprint(key *jose.JSONWebKey) (string, error) {
	t, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint of account key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}
