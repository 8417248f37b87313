package acmestub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// DefaultValidationTimeout bounds one validation when
// Config.ValidationTimeout is 0: Let's Encrypt gives a challenge's fetch
// about as long; on a testbed's network an answer takes milliseconds, so
// it is only reached by a client that never answers.
const DefaultValidationTimeout = 10 * time.Second

// Config configures a Server. The zero value is a CA with a root of its
// own, validating through the host's network and resolver on port 80,
// issuing certificates valid DefaultCertLifetime, with no log lines.
type Config struct {
	// Issuer signs the certificates the server issues, its own serving
	// certificates included; nil makes a new ECDSA P-256 root (RootPEM,
	// Roots).
	Issuer *Issuer
	// Names are the names (or IP addresses) of the server's own HTTPS
	// certificate, as clients reach it: "acme.example.test". Serve adds
	// the listener's address, so that empty Names serve by address.
	Names []string
	// Dial connects to the clients' HTTP-01 challenge servers (and their
	// redirects); nil means a net.Dialer. A testbed gives its network's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// LookupHost resolves the names HTTP-01 validation connects to; nil
	// means net.DefaultResolver. Each address is tried in turn until one
	// connects.
	LookupHost func(ctx context.Context, name string) ([]string, error)
	// LookupTXT resolves the TXT records DNS-01 validation checks; nil
	// means net.DefaultResolver.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// HTTPPort is the port HTTP-01 validation connects to; 0 means 80,
	// RFC 8555's. Tests serving challenges on a loopback port set it.
	HTTPPort int
	// CertLifetime is how long issued certificates are valid; 0 means
	// DefaultCertLifetime. A short one (a minute) tests renewal.
	CertLifetime time.Duration
	// ValidationTimeout bounds each validation; 0 means
	// DefaultValidationTimeout.
	ValidationTimeout time.Duration
	// TermsOfService, if not "", is the directory's terms-of-service URL,
	// and new accounts must agree to it (termsOfServiceAgreed).
	TermsOfService string
	// Logf, if not nil, gets a line per event (Event.String), e.g.
	// t.Logf. With t.Logf, Close the server before the test ends
	// (t.Cleanup): testing panics on a log line after.
	Logf func(format string, args ...any)
	// LogLimit is how many events the log keeps, the oldest dropped
	// first; 0 means DefaultLogLimit.
	LogLimit int
}

// Server is a stand-in ACME CA. It is an http.Handler, served with TLS by
// Serve or Start, or by a server of the caller's; it is safe for
// concurrent use, and its faults change while it serves.
//
// Whoever serves with it must call Close, which stops every Serve and
// every validation, and waits for the goroutines of both.
type Server struct {
	cfg    Config
	issuer Issuer
	roots  *x509.CertPool
	mux    *http.ServeMux

	faultMu sync.Mutex
	fault   Fault

	log eventlog.Log[Event]

	// mu guards the ACME objects and the server's lifetime.
	mu         sync.Mutex
	nonces     map[string]bool
	nonceOrder []string // issued nonces, oldest first, to bound nonces
	ids        int      // the last object ID given out
	accounts   map[string]*account
	orders     map[string]*order
	authzs     map[string]*authz
	chals      map[string]*challenge
	certs      []*issuedCert
	closed     bool
	ctx        context.Context // ends at Close: validations' parent
	cancel     context.CancelFunc
	servers    map[*http.Server]bool
	lines      eventlog.Lines // Config.Logf, stopped when Close returns
	wg         sync.WaitGroup // every goroutine of the server and every request in ServeHTTP, counted under mu
	dirURL     string
}

// New returns a CA configured by cfg, not serving yet. It fails only for
// an Issuer that cannot sign (ErrBadConfig), or if making the root fails.
func New(cfg Config) (*Server, error) {
	s := &Server{
		cfg:      cfg,
		lines:    eventlog.Lines{Logf: cfg.Logf},
		nonces:   map[string]bool{},
		accounts: map[string]*account{},
		orders:   map[string]*order{},
		authzs:   map[string]*authz{},
		chals:    map[string]*challenge{},
		servers:  map[*http.Server]bool{},
	}
	if cfg.Issuer != nil {
		if err := cfg.Issuer.check(); err != nil {
			return nil, fmt.Errorf("new acme stub: %w", err)
		}
		s.issuer = *cfg.Issuer
	} else {
		is, err := newRoot()
		if err != nil {
			return nil, fmt.Errorf("new acme stub: %w", err)
		}
		s.issuer = is
	}
	s.roots = x509.NewCertPool()
	s.roots.AddCert(s.issuer.Cert)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mux = s.routes()
	return s, nil
}

// RootPEM returns the issuer's certificate in PEM: what a client (a
// guest's trust store) must trust.
func (s *Server) RootPEM() []byte { return pemCert(s.issuer.Cert) }

// Roots returns a pool holding the issuer's certificate, to verify the
// certificates the server issues and its own.
func (s *Server) Roots() *x509.CertPool { return s.roots.Clone() }

// Client returns an HTTP client that trusts Roots, for an ACME client on
// the test's side (x/crypto/acme's Client.HTTPClient).
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.Roots()},
		Proxy:           nil, // a proxy from the environment never reaches a test's server
	}}
}

// DirectoryURL returns the directory URL of the first Start or Serve:
// "https://127.0.0.1:PORT/directory"; "" before either.
func (s *Server) DirectoryURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirURL
}

// Start serves HTTPS on addr ("host:port"; "" means "127.0.0.1:0", a free
// loopback port) in the background, until Close: the net/http/httptest
// way. DirectoryURL returns the directory's URL.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("start acme stub on %s: %w", addr, err)
	}
	// Prepared here, not in the goroutine, so that DirectoryURL is set
	// when Start returns.
	hs, err := s.prepare(ln)
	if err != nil {
		return fmt.Errorf("start acme stub: %w", err)
	}
	if !s.goCounted(func() {
		if err := s.serve(hs, ln); err != nil && !errors.Is(err, ErrServerClosed) {
			s.logf("acme stub: %v", err)
		}
	}) {
		s.serve(hs, ln) // closed meanwhile: returns at once, tidying up
		return fmt.Errorf("start acme stub on %s: %w", addr, ErrServerClosed)
	}
	return nil
}

// Serve serves HTTPS on ln until Close, or until ln fails; it closes ln
// before it returns. After Close it returns ErrServerClosed. The
// certificate it serves is issued by the server's issuer for Config.Names
// and ln's address (for an unspecified address, "localhost" and the
// loopback addresses): ACME clients require HTTPS, so there is no plain
// HTTP to serve. Serve may be called for several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	hs, err := s.prepare(ln)
	if err != nil {
		return err
	}
	return s.serve(hs, ln)
}

// prepare makes the http.Server for Serve on ln, with its certificate,
// registered for Close; it closes ln if it fails.
func (s *Server) prepare(ln net.Listener) (*http.Server, error) {
	names, dirHost := s.serveNames(ln.Addr())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("serve acme on %s: make key: %w", ln.Addr(), err)
	}
	cert, err := s.issuer.issue(key.Public(), names, rootLifetime)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("serve acme on %s: %w", ln.Addr(), err)
	}
	hs := &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw, s.issuer.Cert.Raw}, PrivateKey: key, Leaf: cert}}},
		ReadHeaderTimeout: DefaultValidationTimeout,
		// A client's TLS handshake failing (it does not trust Roots) is
		// worth a line in the test's log, not stderr.
		ErrorLog: log.New(logWriter{s}, "", 0),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return nil, ErrServerClosed
	}
	s.servers[hs] = true
	if s.dirURL == "" {
		s.dirURL = "https://" + dirHost + "/directory"
	}
	return hs, nil
}

// serve runs hs on ln until Close.
func (s *Server) serve(hs *http.Server, ln net.Listener) error {
	err := hs.ServeTLS(ln, "", "")
	s.mu.Lock()
	delete(s.servers, hs)
	closed := s.closed
	s.mu.Unlock()
	if closed || errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return fmt.Errorf("serve acme on %s: %w", ln.Addr(), err)
}

// serveNames returns the names of Serve's certificate for a listener on
// addr, and the host:port of its directory URL.
func (s *Server) serveNames(addr net.Addr) ([]string, string) {
	names := append([]string(nil), s.cfg.Names...)
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		host, port = addr.String(), ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		names = append(names, "localhost", "127.0.0.1", "::1")
		host = "127.0.0.1"
	} else {
		names = append(names, host)
	}
	if len(s.cfg.Names) > 0 {
		host = s.cfg.Names[0]
	}
	if port == "" {
		return names, host
	}
	return names, net.JoinHostPort(host, port)
}

// logWriter hands what net/http logs to Config.Logf.
type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.logf("acme stub: http: %s", p)
	return len(p), nil
}

// Close stops every Serve, closing their listeners and connections, ends
// validations (cutting Delay faults short), and waits for the server's
// goroutines and the requests it is answering. The log, Issued and the
// ACME objects stay readable. Close may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.cancel()
		for hs := range s.servers {
			hs.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.lines.Stop()
	return nil
}

// goCounted runs f in a goroutine that Close waits for; it returns false,
// running nothing, once the server is closed.
func (s *Server) goCounted(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) logf(format string, args ...any) { s.lines.Printf(format, args...) }
