package webstub

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/stub/tlsca"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// readHeaderTimeout bounds how long a client may take to send a request's
// headers: far beyond a test's clients, yet a connection left half-open
// by a dropped client does not hold a goroutine until Close.
const readHeaderTimeout = 30 * time.Second

// Config configures a Server. The zero value is a plain-HTTP server that
// answers 404 to everything but the routes Handle adds, with a request log
// of DefaultLogLimit requests.
type Config struct {
	// Handler, if not nil, answers requests that no route added with
	// Handle matches.
	Handler http.Handler
	// Dir, when Handler is nil, is a directory to serve (http.FileServer):
	// an apt repository, installer payloads.
	Dir string
	// TLS, if not nil, serves HTTPS with it. It is cloned; its NextProtos
	// are set to HTTP/1.1.
	TLS *tls.Config
	// CA, when TLS is nil, serves HTTPS with certificates it issues: for
	// Names, or if Names is empty for whatever each client asks (its SNI
	// name, or else the address it connected to), so that the server is
	// valid at any name and address it is reached by.
	CA *tlsca.CA
	// Names are the names and addresses CA's certificate is issued for
	// (tlsca.CA.Issue); Start fails if one is bad.
	Names []string
	// Logf, if not nil, gets a line per request (Request.String) and the
	// HTTP server's errors (TLS handshakes that failed, say), e.g. t.Logf.
	// Lines stop once Close returns, so that t.Logf is safe from a
	// t.Cleanup that closes the server.
	Logf func(format string, args ...any)
	// LogLimit is how many requests the log keeps, the oldest dropped
	// first; 0 means DefaultLogLimit.
	LogLimit int
}

// Server is a stand-in HTTP(S) host. It is safe for concurrent use; its
// routes and faults change while it serves. It serves from any number of
// Serve calls (Start serves on loopback); Close stops them all.
//
// Whoever serves with it must call Close, which closes every listener and
// connection and waits for the handlers running.
type Server struct {
	cfg     Config
	tls     *tls.Config // nil for plain HTTP
	hs      *http.Server
	routes  *http.ServeMux // Handle's, asked first
	handler http.Handler   // the Config's, asked when no route matches

	certMu sync.Mutex
	certs  map[string]*tls.Certificate // issued on demand, by name

	faultMu sync.Mutex
	faults  map[string]*Fault // by path prefix

	log   eventlog.Log[Request]
	lines eventlog.Lines // Config.Logf, stopped when Close returns

	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close: cuts Delay faults short
	wg     sync.WaitGroup
	url    string
	tlsErr error // Config.Names that did not issue
}

// New returns a server configured by cfg, not serving yet.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, routes: http.NewServeMux(), done: make(chan struct{})}
	s.lines.Logf = cfg.Logf
	switch {
	case cfg.Handler != nil:
		s.handler = cfg.Handler
	case cfg.Dir != "":
		s.handler = http.FileServer(http.Dir(cfg.Dir))
	default:
		s.handler = http.NotFoundHandler()
	}
	switch {
	case cfg.TLS != nil:
		s.tls = cfg.TLS.Clone()
	case cfg.CA != nil && len(cfg.Names) > 0:
		c, err := cfg.CA.ServerTLSConfig(cfg.Names...)
		if err != nil {
			s.tlsErr = err
		}
		s.tls = c
	case cfg.CA != nil:
		s.tls = &tls.Config{GetCertificate: s.certificate, MinVersion: tls.VersionTLS12}
	}
	if s.tls != nil {
		s.tls.NextProtos = []string{"http/1.1"}
	}
	s.hs = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          log.New(logWriter{s}, "", 0),
	}
	return s
}

// certificate issues, once per name, a certificate for the name the
// client asks for (SNI), or for the address it connected to.
func (s *Server) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if name == "" && hello.Conn != nil {
		if ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String()); err == nil {
			name = ap.Addr().Unmap().WithZone("").String()
		}
	}
	if name == "" {
		return nil, errors.New("web stub: no server name and no local address to issue a certificate for")
	}
	s.certMu.Lock()
	defer s.certMu.Unlock()
	if c := s.certs[name]; c != nil {
		return c, nil
	}
	c, err := s.cfg.CA.Issue(name)
	if err != nil {
		return nil, fmt.Errorf("web stub: %w", err)
	}
	if s.certs == nil {
		s.certs = map[string]*tls.Certificate{}
	}
	s.certs[name] = &c
	return &c, nil
}

// Start serves on addr ("host:port"; "" means "127.0.0.1:0", a free
// loopback port) in the background, until Close: the net/http/httptest
// way. It returns the server's URL, "https://127.0.0.1:PORT" with TLS,
// which URL returns too.
func (s *Server) Start(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if s.tlsErr != nil {
		return "", fmt.Errorf("start web stub on %s: %w", addr, s.tlsErr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("start web stub on %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return "", fmt.Errorf("start web stub on %s: %w", addr, ErrServerClosed)
	}
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	u := scheme + "://" + ln.Addr().String()
	if s.url == "" {
		s.url = u
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if err := s.Serve(ln); err != nil && !errors.Is(err, ErrServerClosed) {
			s.logf("web stub: %v", err)
		}
	}()
	return u, nil
}

// URL returns the URL of Start's address, "http://127.0.0.1:PORT" or
// "https://..."; "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Addr returns Start's address, "127.0.0.1:PORT"; "" before Start.
func (s *Server) Addr() string {
	u := s.URL()
	if i := strings.Index(u, "://"); i >= 0 {
		return u[i+3:]
	}
	return ""
}

// TLS reports whether the server serves HTTPS.
func (s *Server) TLS() bool { return s.tls != nil }

// Serve answers requests from ln, over TLS if the Config asks for it,
// until Close or until ln fails; it closes ln before it returns. After
// Close it returns ErrServerClosed. Serve may be called for several
// listeners at once: on loopback and on a testbed's network, say.
func (s *Server) Serve(ln net.Listener) error {
	if s.tlsErr != nil {
		ln.Close()
		return fmt.Errorf("serve web on %s: %w", ln.Addr(), s.tlsErr)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ln.Close()
		return ErrServerClosed
	}
	where := ln.Addr().String()
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	err := s.hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return fmt.Errorf("serve web on %s: %w", where, err)
}

// Handle adds a route, in http.ServeMux's pattern syntax ("POST /hook",
// "/api/"), asked before the Config's Handler or Dir: a webhook receiver
// added while the server runs, say. Like ServeMux.Handle it panics on a
// pattern that is bad or registered already.
func (s *Server) Handle(pattern string, h http.Handler) { s.routes.Handle(pattern, h) }

// HandleFunc adds a route as Handle does, for a function.
func (s *Server) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	s.routes.HandleFunc(pattern, f)
}

// Close stops every Serve, closing their listeners and connections, cuts
// Delay faults short, and waits for the handlers running to return (a
// handler of the test's that never returns holds Close up). The log and
// faults stay readable. Close may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.hs.Close()
	s.wg.Wait()
	s.lines.Stop()
	return nil
}

// serveHTTP runs one request: its fault, if one applies, else the route
// or the Config's handler, then logs it.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		panic(http.ErrAbortHandler) // closing: close the connection
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	rw := &recorder{ResponseWriter: w}
	req := Request{
		Time:      time.Now(),
		Method:    r.Method,
		Host:      r.Host,
		Path:      r.URL.Path,
		RawQuery:  r.URL.RawQuery,
		UserAgent: r.UserAgent(),
		TLS:       r.TLS != nil,
	}
	req.Remote, _ = netip.ParseAddrPort(r.RemoteAddr)
	req.Fault = s.takeFault(r.URL.Path)
	defer func() {
		req.Status, req.Bytes, req.Duration = rw.status, rw.bytes, time.Since(req.Time)
		if req.Status == 0 && !req.Dropped {
			req.Status = http.StatusOK // the handler wrote nothing: net/http sends 200
		}
		s.record(req)
	}()

	if f := req.Fault; f != nil {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done(): // the client gave up
				t.Stop()
				req.Dropped = true
				panic(http.ErrAbortHandler)
			case <-s.done:
				// Closing: no answer, else net/http would send an
				// empty 200 before Close reaches the connection.
				t.Stop()
				req.Dropped = true
				panic(http.ErrAbortHandler)
			}
		}
		switch {
		case f.Drop:
			// net/http closes the connection without an answer, and
			// keeps quiet about it; the deferred record logs the drop.
			req.Dropped = true
			panic(http.ErrAbortHandler)
		case f.Status != 0:
			if f.RetryAfter > 0 {
				rw.Header().Set("Retry-After", fmt.Sprint(int((f.RetryAfter+time.Second-1)/time.Second)))
			}
			http.Error(rw, http.StatusText(f.Status), f.Status)
			return
		}
	}
	if h, pattern := s.routes.Handler(r); pattern != "" {
		h.ServeHTTP(rw, r)
		return
	}
	s.handler.ServeHTTP(rw, r)
}

// recorder notes a response's status and body size.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap gives http.ResponseController the connection's writer, for
// handlers that flush or hijack.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logf hands a line to Config.Logf, until Close returns.
func (s *Server) logf(format string, args ...any) { s.lines.Printf(format, args...) }

// logWriter carries the http.Server's error log to Config.Logf.
type logWriter struct{ s *Server }

func (w logWriter) Write(b []byte) (int, error) {
	w.s.logf("web stub: %s", strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
