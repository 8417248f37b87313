package acmestub

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of HTTP-01 validation, as Let's Encrypt's.
const (
	// maxRedirects is how many redirects a challenge fetch follows.
	maxRedirects = 10
	// maxKeyAuthBody is how much of a challenge answer is read: a key
	// authorization is under 100 bytes, and the excerpt in a problem is
	// cut to it too.
	maxKeyAuthBody = 1024
)

// validate runs a challenge's validation, in a goroutine of its own, and
// moves the challenge, its authorization and order on (RFC 8555 7.1.6): a
// failure is final, the client makes a new order.
func (s *Server) validate(c *challenge, a *authz, keyAuth string) {
	ev := Event{Account: a.account, Order: a.order, Names: []string{a.identifier.Value}, Challenge: c.typ}
	delay, p := s.takeValidationFault()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
	}
	start := ev
	start.Kind = EventValidation
	if p != nil {
		start.Fault = p.fault
	}
	s.record(start)
	if p == nil {
		timeout := s.cfg.ValidationTimeout
		if timeout <= 0 {
			timeout = DefaultValidationTimeout
		}
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		switch c.typ {
		case ChallengeHTTP01:
			p = s.checkHTTP01(ctx, a.identifier.Value, c.token, keyAuth)
		case ChallengeDNS01:
			p = s.checkDNS01(ctx, a.identifier.Value, keyAuth)
		}
		cancel()
		if p != nil && s.ctx.Err() != nil {
			p = &Problem{Type: ProblemServerInternal, Detail: "acme stub closed while validating: " + p.Detail}
		}
	}
	if p != nil {
		p.Identifier = &a.identifier
	}

	s.mu.Lock()
	if p == nil {
		c.status, c.validated = statusValid, time.Now()
		if a.status == statusPending {
			a.status = statusValid
		}
	} else {
		c.status, c.err = statusInvalid, p
		if a.status == statusPending {
			a.status = statusInvalid
		}
	}
	s.refreshOrder(s.orders[a.order])
	s.mu.Unlock()

	ev.Kind, ev.Problem = EventValid, p
	if p != nil {
		ev.Kind, ev.Fault = EventInvalid, p.fault
	}
	s.record(ev)
}

// keyAuthDigest is the TXT record of a dns-01 answer (RFC 8555 8.4):
// base64url(SHA-256(key authorization)).
func keyAuthDigest(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkDNS01 looks for the key authorization's digest in the TXT records
// at _acme-challenge.name (RFC 8555 8.4).
func (s *Server) checkDNS01(ctx context.Context, name, keyAuth string) *Problem {
	lookup := s.cfg.LookupTXT
	if lookup == nil {
		lookup = net.DefaultResolver.LookupTXT
	}
	at := "_acme-challenge." + name
	want := keyAuthDigest(keyAuth)
	txts, err := lookup(ctx, at)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		// No records is a wrong answer, not a broken resolver.
		return &Problem{Type: ProblemIncorrectResponse, Detail: fmt.Sprintf("no TXT records at %s (resolver: %v), want %q", at, err, want)}
	case err != nil:
		return &Problem{Type: ProblemDNS, Detail: fmt.Sprintf("look up TXT %s: %v", at, err)}
	case !slices.Contains(txts, want):
		return &Problem{Type: ProblemIncorrectResponse, Detail: fmt.Sprintf("TXT records at %s were %q, want %q", at, txts, want)}
	}
	return nil
}

// checkHTTP01 fetches http://name/.well-known/acme-challenge/token (on
// Config.HTTPPort) and compares it with the key authorization (RFC 8555
// 8.3). Each of name's addresses is tried in turn while connecting to
// them fails, as Let's Encrypt falls back from IPv6 to IPv4; an answer,
// right or wrong, ends the tries.
func (s *Server) checkHTTP01(ctx context.Context, name, token, keyAuth string) *Problem {
	port := s.cfg.HTTPPort
	if port == 0 {
		port = 80
	}
	u := "http://" + net.JoinHostPort(name, strconv.Itoa(port)) + "/.well-known/acme-challenge/" + token
	if port == 80 {
		u = "http://" + name + "/.well-known/acme-challenge/" + token
	}
	addrs, err := s.lookupHost(ctx, name)
	if err != nil {
		return &Problem{Type: ProblemDNS, Detail: err.Error()}
	}
	var failures []string
	for _, addr := range addrs {
		body, p, connected := s.fetch(ctx, u, name, addr, port)
		switch {
		case !connected:
			failures = append(failures, p.Detail)
			continue
		case p != nil:
			return p
		}
		if got := strings.TrimSpace(body); got != keyAuth {
			return &Problem{Type: ProblemIncorrectResponse, Detail: fmt.Sprintf("%s answered %q, want the key authorization %q", u, excerpt(got), keyAuth)}
		}
		return nil
	}
	return &Problem{Type: ProblemConnection, Detail: strings.Join(failures, "; ")}
}

// lookupHost resolves name for HTTP-01, an error naming name and the
// resolver's answer.
func (s *Server) lookupHost(ctx context.Context, name string) ([]string, error) {
	lookup := s.cfg.LookupHost
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	addrs, err := lookup(ctx, name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("look up %s: %w", name, err)
	case len(addrs) == 0:
		return nil, fmt.Errorf("look up %s: no addresses", name)
	}
	return addrs, nil
}

// fetch GETs u with name's connections going to addr, following
// redirects to other names through LookupHost. connected is false when
// no connection to addr was made (p then says why): the next address is
// worth a try.
func (s *Server) fetch(ctx context.Context, u, name, addr string, port int) (body string, p *Problem, connected bool) {
	dial := s.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	first := net.JoinHostPort(addr, strconv.Itoa(port))
	var (
		dialMu  sync.Mutex // the transport dials in goroutines of its own
		dialErr error      // the failure to connect to addr, if one
	)
	firstDialErr := func() error {
		dialMu.Lock()
		defer dialMu.Unlock()
		return dialErr
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			host, p, err := net.SplitHostPort(hostport)
			if err != nil {
				return nil, err
			}
			if strings.EqualFold(host, name) {
				c, err := dial(ctx, network, net.JoinHostPort(addr, p))
				if err != nil && hostport == net.JoinHostPort(name, strconv.Itoa(port)) {
					dialMu.Lock()
					dialErr = err
					dialMu.Unlock()
				}
				return c, err
			}
			// A redirect to another name: its addresses, in turn.
			addrs, err := s.lookupHost(ctx, host)
			if err != nil {
				return nil, err
			}
			var errs []error
			for _, a := range addrs {
				c, err := dial(ctx, network, net.JoinHostPort(a, p))
				if err == nil {
					return c, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
		// RFC 8555 8.3 lets a challenge redirect to HTTPS; Let's Encrypt
		// does not check the certificate there, the key authorization
		// being the proof.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true, // nothing outlives the validation
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			// Let's Encrypt follows redirects to http and https on their
			// standard ports only; the configured port counts as one.
			switch p := r.URL.Port(); {
			case r.URL.Scheme != "http" && r.URL.Scheme != "https":
				return fmt.Errorf("redirect to %s: want http or https", r.URL)
			case p != "" && p != "80" && p != "443" && p != strconv.Itoa(port):
				return fmt.Errorf("redirect to %s: want port 80 or 443", r.URL)
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", &Problem{Type: ProblemMalformed, Detail: fmt.Sprintf("challenge URL %s: %v", u, err)}, true
	}
	req.Header.Set("User-Agent", "shakedown-acme-stub")
	resp, err := client.Do(req)
	if err != nil {
		if dialErr := firstDialErr(); dialErr != nil {
			return "", &Problem{Type: ProblemConnection, Detail: fmt.Sprintf("connect to %s for %s: %v", first, u, dialErr)}, false
		}
		return "", &Problem{Type: ProblemConnection, Detail: fmt.Sprintf("fetch %s from %s: %v", u, first, unwrapURLError(err))}, true
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyAuthBody))
	if resp.StatusCode != http.StatusOK {
		return "", &Problem{Type: ProblemUnauthorized, Detail: fmt.Sprintf("%s from %s: got %s, want 200 and the key authorization; body %q", resp.Request.URL, first, resp.Status, excerpt(string(b)))}, true
	}
	if err != nil {
		return "", &Problem{Type: ProblemConnection, Detail: fmt.Sprintf("read %s from %s: %v", resp.Request.URL, first, err)}, true
	}
	return string(b), nil, true
}

// unwrapURLError drops the "Get URL:" of a url.Error: the problem names
// the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// excerpt cuts s for a problem's detail.
func excerpt(s string) string {
	const n = 100
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
