package registrystub

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// Config configures a Server. The zero value is a plain-HTTP registry
// (clients must be told it is insecure) with logs of DefaultLogLimit
// pulls and pushes.
type Config struct {
	// CA, if not nil, serves HTTPS with certificates it issues: for
	// Names, or if Names is empty for whatever each client asks (its SNI
	// name, or else the address it connected to).
	CA *tlsca.CA
	// Names are the names and addresses CA's certificate is issued for.
	// Push connects to Start's loopback address asking for Names[0].
	Names []string
	// Logf, if not nil, gets a line per pull and push, and one per HTTP
	// request (webstub.Request.String), e.g. t.Logf. Lines stop once
	// Close returns.
	Logf func(format string, args ...any)
	// LogLimit is how many pulls, and how many pushes, the logs keep, the
	// oldest dropped first; 0 means DefaultLogLimit.
	LogLimit int
}

// Server is a stand-in OCI registry. It is safe for concurrent use. It
// serves from any number of Serve calls (Start serves on loopback); Close
// stops them all and must be called by whoever serves with it.
type Server struct {
	cfg      Config
	web      *webstub.Server
	registry http.Handler
	refuse   atomic.Bool

	pulls  eventlog.Log[Pull]
	pushes eventlog.Log[Push]

	startMu sync.Mutex // serialises Push's Start
}

// New returns a registry configured by cfg, empty, not serving yet.
func New(cfg Config) *Server {
	s := &Server{
		cfg: cfg,
		// The request log is the web server's: the registry's own
		// line per request would say it twice.
		registry: registry.New(registry.Logger(log.New(io.Discard, "", 0))),
	}
	s.web = webstub.New(webstub.Config{
		Handler:  http.HandlerFunc(s.serveHTTP),
		CA:       cfg.CA,
		Names:    cfg.Names,
		Logf:     cfg.Logf,
		LogLimit: cfg.LogLimit,
	})
	return s
}

// Web returns the web server the registry is served by: its request log
// holds every request (Log, WaitForRequest), and its faults fail them
// (SetFault("/v2/library/alpine/blobs/", ...)).
func (s *Server) Web() *webstub.Server { return s.web }

// Start serves on addr ("host:port"; "" means "127.0.0.1:0", a free
// loopback port) in the background, until Close, and returns the
// address, "127.0.0.1:PORT": the registry's host in references
// ("127.0.0.1:PORT/library/alpine:3.20").
func (s *Server) Start(addr string) (string, error) {
	if _, err := s.web.Start(addr); err != nil {
		return "", fmt.Errorf("start registry stub: %w", err)
	}
	return s.web.Addr(), nil
}

// Addr returns Start's address, "127.0.0.1:PORT"; "" before Start.
func (s *Server) Addr() string { return s.web.Addr() }

// Serve serves the registry on ln until Close (webstub.Server.Serve).
func (s *Server) Serve(ln net.Listener) error { return s.web.Serve(ln) }

// Close stops every Serve, closing their listeners and connections, and
// waits for the requests in flight. The images and logs stay readable.
func (s *Server) Close() error { return s.web.Close() }

// SetRefusePulls turns airgap mode on or off. On, every pull (GET or HEAD
// of a manifest or blob) is answered 403 with an OCI error DENIED, and
// logged with Refused set: a machine that should install from what it
// carries shows, in Pulls, every image it tried to fetch. Pushes go on.
func (s *Server) SetRefusePulls(refuse bool) { s.refuse.Store(refuse) }

// pushHeader marks the requests of the test's own pushes, which are in
// neither log and never refused: the blob checks (HEAD) of a push are no
// pulls. Guests do not send it.
const pushHeader = "Shakedown-Registry-Stub-Push"

// serveHTTP logs pulls and pushes, refuses pulls in airgap mode, and
// hands the rest to the registry.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(pushHeader) != "" {
		s.registry.ServeHTTP(w, r)
		return
	}
	kind, repo, ref := parsePath(r.URL.Path)
	remote, _ := netip.ParseAddrPort(r.RemoteAddr)
	rec := &recorder{ResponseWriter: w}
	now := time.Now()
	switch {
	case kind != "" && ref != "uploads" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		p := Pull{Time: now, Remote: remote, Method: r.Method, Kind: kind, Repo: repo, Reference: ref}
		if s.refuse.Load() {
			p.Refused, p.Status = true, http.StatusForbidden
			writeDenied(w, fmt.Sprintf("pull of %s %s:%s refused: the registry stub is in airgap mode", kind, repo, ref))
		} else {
			s.registry.ServeHTTP(rec, r)
			p.Status, p.Digest = rec.code(), rec.Header().Get("Docker-Content-Digest")
		}
		s.recordPull(p)
	case kind == Manifest && r.Method == http.MethodPut:
		s.registry.ServeHTTP(rec, r)
		s.recordPush(Push{Time: now, Remote: remote, Kind: kind, Repo: repo, Reference: ref,
			Digest: rec.Header().Get("Docker-Content-Digest"), Status: rec.code()})
	case kind == Blob && ref == "uploads" && (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
		(r.URL.Query().Get("digest") != "" || r.URL.Query().Get("mount") != ""):
		// An upload's last request (PUT, or a monolithic POST) names the
		// blob's digest; a POST with mount= copies one from another
		// repository. The PATCHes between carry data only.
		s.registry.ServeHTTP(rec, r)
		d := r.URL.Query().Get("digest")
		if d == "" {
			d = r.URL.Query().Get("mount")
		}
		s.recordPush(Push{Time: now, Remote: remote, Kind: kind, Repo: repo, Reference: d, Digest: d, Status: rec.code()})
	default:
		s.registry.ServeHTTP(w, r)
	}
}

// parsePath splits a registry API path, /v2/NAME/manifests/REF or
// /v2/NAME/blobs/DIGEST (or /v2/NAME/blobs/uploads/...), into its kind,
// repository and reference ("uploads" for an upload); kind "" for other
// paths.
func parsePath(path string) (Kind, string, string) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", "", ""
	}
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		return Manifest, rest[:i], rest[i+len("/manifests/"):]
	}
	if i := strings.Index(rest, "/blobs/uploads"); i > 0 {
		return Blob, rest[:i], "uploads"
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		return Blob, rest[:i], rest[i+len("/blobs/"):]
	}
	return "", "", ""
}

// writeDenied answers 403 with an OCI error body (distribution spec,
// "Error Codes"), which clients show: "DENIED: pull of manifest ...".
func writeDenied(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": "DENIED", "message": msg}},
	})
}

// recorder notes a response's status.
type recorder struct {
	http.ResponseWriter
	status int
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
	return w.ResponseWriter.Write(b)
}

// code is the status sent: 200 if the handler wrote nothing.
func (w *recorder) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap gives http.ResponseController the connection's writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
