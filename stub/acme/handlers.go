package acmestub

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// routes maps the server's URLs to their handlers. The paths are the
// server's own; clients find them in the directory.
func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /directory", s.directory)
	m.HandleFunc("/new-nonce", s.nonce)
	m.HandleFunc("/new-account", s.post(byJWK, s.newAccount))
	m.HandleFunc("/acct/{id}", s.post(byKID, s.account))
	m.HandleFunc("/acct/{id}/orders", s.post(byKID, s.accountOrders))
	m.HandleFunc("/new-order", s.post(byKID, s.newOrder))
	m.HandleFunc("/order/{id}", s.post(byKID, s.order))
	m.HandleFunc("/order/{id}/finalize", s.post(byKID, s.finalize))
	m.HandleFunc("/authz/{id}", s.post(byKID, s.authz))
	m.HandleFunc("/chal/{id}", s.post(byKID, s.challenge))
	m.HandleFunc("/cert/{id}", s.post(byKID, s.cert))
	m.HandleFunc("/revoke-cert", s.post(byEither, s.revoke))
	m.HandleFunc("/key-change", s.post(byKID, func(w http.ResponseWriter, req *request) {
		s.fail(w, req.r, problem(ProblemMalformed, http.StatusNotImplemented, "account key rollover is not supported by the acme stub"))
	}))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, problem(ProblemMalformed, http.StatusNotFound, "no such resource %s: start at %s/directory", r.URL.Path, baseURL(r)))
	})
	return m
}

// ServeHTTP answers an ACME request. Every answer carries a fresh
// Replay-Nonce and the Link to the directory, errors included (RFC 8555
// 6.5, 7.1), so that a client always has a nonce to retry with.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "acme stub closed", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1) // Close waits for the request, which may start a validation
	s.mu.Unlock()
	defer s.wg.Done()
	h := w.Header()
	h.Set("Replay-Nonce", s.newNonce())
	h.Add("Link", "<"+baseURL(r)+`/directory>;rel="index"`)
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// post wraps a handler of signed POSTs: other methods get 405, and
// requests failing the JWS checks their problem.
func (s *Server) post(mode keyMode, h func(http.ResponseWriter, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			s.fail(w, r, problem(ProblemMalformed, http.StatusMethodNotAllowed, "%s %s: ACME resources take signed POSTs (POST-as-GET to read, RFC 8555 6.3)", r.Method, r.URL.Path))
			return
		}
		req, p := s.verify(r, mode)
		if p != nil {
			s.fail(w, r, p)
			return
		}
		h(w, req)
	}
}

// fail answers with problem p, and logs it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, p *Problem) {
	s.record(Event{Kind: EventRejected, Request: r.Method + " " + r.URL.Path, Problem: p, Fault: p.fault})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// reply answers with v as JSON.
func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// directory answers with the directory (RFC 8555 7.1.1).
func (s *Server) directory(w http.ResponseWriter, r *http.Request) {
	base := baseURL(r)
	meta := map[string]any{"externalAccountRequired": false}
	if s.cfg.TermsOfService != "" {
		meta["termsOfService"] = s.cfg.TermsOfService
	}
	reply(w, http.StatusOK, map[string]any{
		"newNonce":   base + "/new-nonce",
		"newAccount": base + "/new-account",
		"newOrder":   base + "/new-order",
		"revokeCert": base + "/revoke-cert",
		"keyChange":  base + "/key-change",
		"meta":       meta,
	})
}

// nonce answers newNonce (RFC 8555 7.2): ServeHTTP set the nonce.
func (s *Server) nonce(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, problem(ProblemMalformed, http.StatusMethodNotAllowed, "%s %s: want HEAD or GET", r.Method, r.URL.Path))
	}
}

// decode parses a request's JSON payload into v; an empty payload
// (POST-as-GET) is refused where a body is needed.
func decode(req *request, v any) *Problem {
	if len(req.payload) == 0 {
		return problem(ProblemMalformed, http.StatusBadRequest, "%s needs a JSON payload, got none", req.r.URL.Path)
	}
	if err := json.Unmarshal(req.payload, v); err != nil {
		return problem(ProblemMalformed, http.StatusBadRequest, "parse payload of %s: %v", req.r.URL.Path, err)
	}
	return nil
}

// newAccount creates an account, or finds the one of the request's key
// (RFC 8555 7.3, 7.3.1).
func (s *Server) newAccount(w http.ResponseWriter, req *request) {
	var in struct {
		Contact            []string `json:"contact"`
		TOSAgreed          bool     `json:"termsOfServiceAgreed"`
		OnlyReturnExisting bool     `json:"onlyReturnExisting"`
	}
	if p := decode(req, &in); p != nil {
		s.fail(w, req.r, p)
		return
	}
	thumb, err := thumbprint(req.jwk)
	if err != nil {
		s.fail(w, req.r, problem(ProblemBadPublicKey, http.StatusBadRequest, "%v", err))
		return
	}
	s.mu.Lock()
	for _, a := range s.accounts {
		if a.thumb == thumb {
			j := a.json(req.base)
			s.mu.Unlock()
			w.Header().Set("Location", req.base+"/acct/"+a.id)
			reply(w, http.StatusOK, j)
			return
		}
	}
	s.mu.Unlock()
	switch {
	case in.OnlyReturnExisting:
		s.fail(w, req.r, problem(ProblemAccountDoesNotExist, http.StatusBadRequest, "no account has this key (onlyReturnExisting)"))
		return
	case s.cfg.TermsOfService != "" && !in.TOSAgreed:
		s.fail(w, req.r, problem(ProblemMalformed, http.StatusBadRequest, "new accounts must agree to the terms of service %s (termsOfServiceAgreed)", s.cfg.TermsOfService))
		return
	}
	s.mu.Lock()
	a := &account{id: s.nextID(), key: req.jwk, thumb: thumb, status: statusValid, contact: in.Contact, tosAgreed: in.TOSAgreed}
	s.accounts[a.id] = a
	j := a.json(req.base)
	s.mu.Unlock()
	s.record(Event{Kind: EventAccount, Account: a.id})
	w.Header().Set("Location", req.base+"/acct/"+a.id)
	reply(w, http.StatusCreated, j)
}

// own checks that the request's account is owner, the owner of what it
// asks for.
func own(req *request, owner, what string) *Problem {
	if req.acct.id != owner {
		return problem(ProblemUnauthorized, http.StatusForbidden, "%s belongs to account %s, not to account %s", what, owner, req.acct.id)
	}
	return nil
}

// account reads or updates an account (RFC 8555 7.3.2, 7.3.6).
func (s *Server) account(w http.ResponseWriter, req *request) {
	if p := own(req, req.r.PathValue("id"), "account "+req.r.PathValue("id")); p != nil {
		s.fail(w, req.r, p)
		return
	}
	var in struct {
		Contact []string `json:"contact"`
		Status  string   `json:"status"`
	}
	if len(req.payload) > 0 {
		if p := decode(req, &in); p != nil {
			s.fail(w, req.r, p)
			return
		}
	}
	if in.Status != "" && in.Status != statusDeactivated {
		s.fail(w, req.r, problem(ProblemMalformed, http.StatusBadRequest, "account status %q: a client may only set %q", in.Status, statusDeactivated))
		return
	}
	s.mu.Lock()
	a := req.acct
	if in.Contact != nil {
		a.contact = in.Contact
	}
	if in.Status == statusDeactivated {
		a.status = statusDeactivated
	}
	j := a.json(req.base)
	s.mu.Unlock()
	w.Header().Set("Location", req.base+"/acct/"+a.id)
	reply(w, http.StatusOK, j)
}

// accountOrders lists an account's orders (RFC 8555 7.1.2.1).
func (s *Server) accountOrders(w http.ResponseWriter, req *request) {
	if p := own(req, req.r.PathValue("id"), "account "+req.r.PathValue("id")); p != nil {
		s.fail(w, req.r, p)
		return
	}
	s.mu.Lock()
	urls := []string{}
	for _, id := range req.acct.orders {
		urls = append(urls, req.base+"/order/"+id)
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, map[string][]string{"orders": urls})
}

// newOrder creates an order and its authorizations (RFC 8555 7.4).
func (s *Server) newOrder(w http.ResponseWriter, req *request) {
	if p, after := s.takeOrderFault(); p != nil {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
		s.fail(w, req.r, p)
		return
	}
	var in struct {
		Identifiers []Identifier `json:"identifiers"`
	}
	if p := decode(req, &in); p != nil {
		s.fail(w, req.r, p)
		return
	}
	if len(in.Identifiers) == 0 {
		s.fail(w, req.r, problem(ProblemMalformed, http.StatusBadRequest, "order has no identifiers"))
		return
	}
	var ids []Identifier
	for _, id := range in.Identifiers {
		if id.Type != "dns" {
			p := problem(ProblemUnsupportedIdentifier, http.StatusBadRequest, "identifier type %q of %q: the acme stub issues for \"dns\" only", id.Type, id.Value)
			p.Identifier = &id
			s.fail(w, req.r, p)
			return
		}
		id.Value = strings.ToLower(id.Value)
		if err := checkName(id.Value); err != nil {
			p := problem(ProblemRejectedIdentifier, http.StatusBadRequest, "%v", err)
			p.Identifier = &id
			s.fail(w, req.r, p)
			return
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	now := time.Now()
	s.mu.Lock()
	o := &order{id: s.nextID(), account: req.acct.id, status: statusPending, expires: now.Add(orderLifetime), identifiers: ids}
	for _, id := range ids {
		a := &authz{id: s.nextID(), account: req.acct.id, order: o.id, status: statusPending, expires: now.Add(authzLifetime)}
		a.identifier = Identifier{Type: "dns", Value: strings.TrimPrefix(id.Value, "*.")}
		a.wildcard = a.identifier.Value != id.Value
		types := []string{ChallengeHTTP01, ChallengeDNS01}
		if a.wildcard {
			types = []string{ChallengeDNS01} // RFC 8555 7.1.3: a wildcard is proven in DNS only
		}
		for _, t := range types {
			c := &challenge{id: s.nextID(), authz: a.id, typ: t, token: newToken(), status: statusPending}
			s.chals[c.id] = c
			a.chals = append(a.chals, c.id)
		}
		s.authzs[a.id] = a
		o.authzs = append(o.authzs, a.id)
	}
	s.orders[o.id] = o
	req.acct.orders = append(req.acct.orders, o.id)
	j := s.orderJSON(o, req.base)
	s.mu.Unlock()
	s.record(Event{Kind: EventOrder, Account: o.account, Order: o.id, Names: values(ids)})
	w.Header().Set("Location", req.base+"/order/"+o.id)
	reply(w, http.StatusCreated, j)
}

// values are the identifiers' values.
func values(ids []Identifier) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id.Value)
	}
	return out
}

// newToken is a challenge token: 128 bits of entropy at least, as RFC
// 8555 8.1 asks, in base64url.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkName checks a DNS name an order asks for, lowercase: LDH labels of
// 1 to 63 characters, two labels at least, a wildcard only as the whole
// first label.
func checkName(name string) error {
	rest := strings.TrimPrefix(name, "*.")
	if len(name) > 253 {
		return fmt.Errorf("name %q is longer than 253 characters", name)
	}
	labels := strings.Split(rest, ".")
	if len(labels) < 2 {
		return fmt.Errorf("name %q has a single label: want a domain name such as host.example.test", name)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' ||
			strings.IndexFunc(l, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) >= 0 {
			return fmt.Errorf("name %q: label %q is not 1 to 63 letters, digits and inner hyphens (a wildcard is only allowed as \"*.\" first)", name, l)
		}
	}
	return nil
}

// lookup finds the object of kind ("order", ...) by the path's ID, under
// s.mu, checking its owner; it answers the problem itself and returns
// false if it fails.
func lookup[T any](s *Server, w http.ResponseWriter, req *request, kind string, m map[string]*T, owner func(*T) string) (*T, bool) {
	id := req.r.PathValue("id")
	v := m[id]
	if v == nil {
		s.mu.Unlock()
		s.fail(w, req.r, problem(ProblemMalformed, http.StatusNotFound, "no %s %s", kind, id))
		return nil, false
	}
	if p := own(req, owner(v), kind+" "+id); p != nil {
		s.mu.Unlock()
		s.fail(w, req.r, p)
		return nil, false
	}
	return v, true
}

// order answers with an order (RFC 8555 7.4, POST-as-GET).
func (s *Server) order(w http.ResponseWriter, req *request) {
	s.mu.Lock()
	o, ok := lookup(s, w, req, "order", s.orders, func(o *order) string { return o.account })
	if !ok {
		return
	}
	s.refreshOrder(o)
	j := s.orderJSON(o, req.base)
	s.mu.Unlock()
	if j.Status == statusProcessing {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Location", req.base+"/order/"+o.id)
	reply(w, http.StatusOK, j)
}

// authz answers with an authorization, or deactivates it (RFC 8555 7.5,
// 7.5.2).
func (s *Server) authz(w http.ResponseWriter, req *request) {
	var in struct {
		Status string `json:"status"`
	}
	if len(req.payload) > 0 {
		if p := decode(req, &in); p != nil {
			s.fail(w, req.r, p)
			return
		}
		if in.Status != statusDeactivated {
			s.fail(w, req.r, problem(ProblemMalformed, http.StatusBadRequest, "authorization status %q: a client may only set %q", in.Status, statusDeactivated))
			return
		}
	}
	s.mu.Lock()
	a, ok := lookup(s, w, req, "authorization", s.authzs, func(a *authz) string { return a.account })
	if !ok {
		return
	}
	if in.Status == statusDeactivated && (a.status == statusPending || a.status == statusValid) {
		a.status = statusDeactivated
		s.refreshOrder(s.orders[a.order])
	}
	j := s.authzJSON(a, req.base)
	s.mu.Unlock()
	if j.Status == statusPending {
		w.Header().Set("Retry-After", "1")
	}
	reply(w, http.StatusOK, j)
}

// challenge answers with a challenge, and starts its validation when the
// client says it is ready (RFC 8555 7.5.1): a POST of "{}".
func (s *Server) challenge(w http.ResponseWriter, req *request) {
	s.mu.Lock()
	c, ok := lookup(s, w, req, "challenge", s.chals, func(c *challenge) string { return s.authzs[c.authz].account })
	if !ok {
		return
	}
	a := s.authzs[c.authz]
	start := len(req.payload) > 0 && c.status == statusPending && a.status == statusPending
	if start {
		c.status = statusProcessing
	}
	j := c.json(req.base)
	s.mu.Unlock()
	if start {
		keyAuth := c.token + "." + req.acct.thumb
		if !s.goCounted(func() { s.validate(c, a, keyAuth) }) {
			s.mu.Lock()
			c.status, c.err = statusInvalid, problem(ProblemServerInternal, 0, "acme stub closed before validating")
			s.mu.Unlock()
		}
	}
	w.Header().Add("Link", "<"+req.base+"/authz/"+a.id+`>;rel="up"`)
	reply(w, http.StatusOK, j)
}

// finalize checks an order's CSR and issues its certificate (RFC 8555
// 7.4).
func (s *Server) finalize(w http.ResponseWriter, req *request) {
	var in struct {
		CSR string `json:"csr"`
	}
	if p := decode(req, &in); p != nil {
		s.fail(w, req.r, p)
		return
	}
	s.mu.Lock()
	o, ok := lookup(s, w, req, "order", s.orders, func(o *order) string { return o.account })
	if !ok {
		return
	}
	s.refreshOrder(o)
	if o.status != statusReady {
		status := o.status
		s.mu.Unlock()
		s.fail(w, req.r, problem(ProblemOrderNotReady, http.StatusForbidden, "order %s is %s, not ready: finalize once all its authorizations are valid", o.id, status))
		return
	}
	csr, p := checkCSR(in.CSR, o.identifiers, req.acct)
	if p != nil {
		s.mu.Unlock()
		s.fail(w, req.r, p)
		return
	}
	o.status = statusProcessing
	s.mu.Unlock()

	leaf, err := s.issuer.issue(csr.PublicKey, values(o.identifiers), s.certLifetime())
	s.mu.Lock()
	if err != nil {
		o.status, o.err = statusInvalid, problem(ProblemServerInternal, 0, "%v", err)
		s.mu.Unlock()
		s.fail(w, req.r, problem(ProblemServerInternal, http.StatusInternalServerError, "%v", err))
		return
	}
	c := &issuedCert{id: s.nextID(), account: o.account, order: o.id, leaf: leaf}
	s.certs = append(s.certs, c)
	o.status, o.cert = statusValid, c.id
	j := s.orderJSON(o, req.base)
	s.mu.Unlock()
	s.record(Event{Kind: EventIssued, Account: o.account, Order: o.id, Names: leaf.DNSNames, Serial: leaf.SerialNumber.Text(16)})
	w.Header().Set("Location", req.base+"/order/"+o.id)
	reply(w, http.StatusOK, j)
}

func (s *Server) certLifetime() time.Duration {
	if s.cfg.CertLifetime > 0 {
		return s.cfg.CertLifetime
	}
	return DefaultCertLifetime
}

// cert answers with a certificate chain in PEM, leaf then issuer (RFC
// 8555 7.4.2).
func (s *Server) cert(w http.ResponseWriter, req *request) {
	s.mu.Lock()
	var c *issuedCert
	for _, ic := range s.certs {
		if ic.id == req.r.PathValue("id") {
			c = ic
		}
	}
	s.mu.Unlock()
	if c == nil {
		s.fail(w, req.r, problem(ProblemMalformed, http.StatusNotFound, "no certificate %s", req.r.PathValue("id")))
		return
	}
	if p := own(req, c.account, "certificate "+c.id); p != nil {
		s.fail(w, req.r, p)
		return
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusOK)
	w.Write(append(pemCert(c.leaf), pemCert(s.issuer.Cert)...))
}

// revoke revokes a certificate, for its account or whoever holds its key
// (RFC 8555 7.6).
func (s *Server) revoke(w http.ResponseWriter, req *request) {
	var in struct {
		Certificate string `json:"certificate"`
		Reason      int    `json:"reason"`
	}
	if p := decode(req, &in); p != nil {
		s.fail(w, req.r, p)
		return
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(in.Certificate, "="))
	if err != nil {
		s.fail(w, req.r, problem(ProblemMalformed, http.StatusBadRequest, "certificate is not base64url: %v", err))
		return
	}
	s.mu.Lock()
	var c *issuedCert
	for _, ic := range s.certs {
		if bytes.Equal(ic.leaf.Raw, der) {
			c = ic
		}
	}
	var p *Problem
	switch {
	case c == nil:
		p = problem(ProblemMalformed, http.StatusNotFound, "certificate not issued by this CA")
	case req.acct != nil && req.acct.id != c.account:
		p = problem(ProblemUnauthorized, http.StatusForbidden, "certificate %s belongs to account %s, not to account %s", c.id, c.account, req.acct.id)
	case req.acct == nil && !sameKey(req.jwk.Key, c.leaf.PublicKey):
		p = problem(ProblemUnauthorized, http.StatusForbidden, "the jwk is not the key of certificate %s", c.id)
	case c.revoked:
		p = problem(ProblemAlreadyRevoked, http.StatusBadRequest, "certificate %s is revoked already", c.id)
	default:
		c.revoked = true
	}
	s.mu.Unlock()
	if p != nil {
		s.fail(w, req.r, p)
		return
	}
	s.record(Event{Kind: EventRevoked, Account: c.account, Order: c.order, Names: c.leaf.DNSNames, Serial: c.leaf.SerialNumber.Text(16)})
	w.WriteHeader(http.StatusOK)
}

// sameKey reports whether two public keys are the same.
func sameKey(a, b any) bool {
	ka, errA := x509.MarshalPKIXPublicKey(a)
	kb, errB := x509.MarshalPKIXPublicKey(b)
	return errA == nil && errB == nil && bytes.Equal(ka, kb)
}
