// Package pdnsapi is a cloud DNS API for tests: the HTTP API of the
// PowerDNS Authoritative Server (/api/v1), serving the zones of a
// dnsstub.Server, so that what a client changes through it is what the
// stub answers at once.
//
// It stands in for a provider's API, which tests must never call. PowerDNS
// is the one chosen because its API is documented in full
// (doc.powerdns.com/authoritative/http-api), needs no fixed endpoint (the
// clients take its URL: external-dns's --pdns-server, lego's and
// cert-manager webhooks' PDNS_API_URL), and is what external-dns, lego and
// octoDNS drive through the same endpoints: list zones, read a zone's
// RRsets, PATCH RRsets with changetype REPLACE or DELETE. Zones can also
// be created and deleted (POST, DELETE), and notify is accepted.
//
// It owns the API's shape (paths, JSON, errors as PowerDNS words them,
// X-API-Key), its request log and its faults (429 with Retry-After, 500,
// ... on the next requests, for clients' retries). It imports the
// standard library, miekg/dns, stub/dns and internal/eventlog.
//
//	s := dnsstub.New(dnsstub.Config{})
//	s.AddZone("example.test.")
//	api := pdnsapi.New(s, pdnsapi.Config{APIKey: "secret"})
//	url, err := api.Start("") // or serve api (an http.Handler) on a testbed host
//	api.SetFault(pdnsapi.Fault{Status: 429, RetryAfter: time.Second, Times: 1})
//	r, err := api.WaitForRequest(ctx, pdnsapi.Match{Method: "PATCH"})
package pdnsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// ServerID is the only server the API has, as a single PowerDNS does.
const ServerID = "localhost"

// Config configures an API. The zero value serves without a key and logs
// no lines.
type Config struct {
	// APIKey, if not "", must come in each request's X-API-Key header, as
	// PowerDNS's api-key setting asks; others get 401.
	APIKey string
	// Logf, if not nil, gets a line per request (Request.String).
	Logf func(format string, args ...any)
}

// API serves the PowerDNS HTTP API on a dnsstub.Server's zones. It is an
// http.Handler, safe for concurrent use.
type API struct {
	dns *dnsstub.Server
	cfg Config
	mux *http.ServeMux

	log eventlog.Log[Request]

	mu     sync.Mutex
	faults []Fault
	srv    *http.Server
	url    string
}

// New returns the API of s's zones.
func New(s *dnsstub.Server, cfg Config) *API {
	a := &API{dns: s, cfg: cfg, mux: http.NewServeMux()}
	zone := "/api/v1/servers/{server}/zones/{zone}"
	a.mux.HandleFunc("GET /api", a.apiVersions)
	a.mux.HandleFunc("GET /api/v1/servers", a.servers)
	a.mux.HandleFunc("GET /api/v1/servers/{server}", a.server)
	a.mux.HandleFunc("GET /api/v1/servers/{server}/zones", a.zones)
	a.mux.HandleFunc("POST /api/v1/servers/{server}/zones", a.createZone)
	a.mux.HandleFunc("GET "+zone, a.zone)
	a.mux.HandleFunc("PATCH "+zone, a.patch)
	a.mux.HandleFunc("DELETE "+zone, a.deleteZone)
	a.mux.HandleFunc("PUT "+zone+"/notify", a.notify)
	return a
}

// Start serves the API over HTTP on addr ("" means a free port of
// 127.0.0.1) until Close, and returns its base URL ("http://ADDR"), the
// URL clients are given.
func (a *API) Start(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("start pdns api on %s: %w", addr, err)
	}
	a.mu.Lock()
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	a.url = "http://" + ln.Addr().String()
	srv := a.srv
	a.mu.Unlock()
	go srv.Serve(ln)
	return a.url, nil
}

// Close stops what Start started.
func (a *API) Close() error {
	a.mu.Lock()
	srv := a.srv
	a.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Fault makes the API fail requests on purpose, to test a client's
// retries. The zero value fails every request with 500.
type Fault struct {
	// Status is the status answered, 500 if 0: 429 (rate limited), 503,
	// 500, 401, ...
	Status int
	// RetryAfter, if not 0, goes out as the Retry-After header, in whole
	// seconds (at least 1).
	RetryAfter time.Duration
	// Method and Path, if not "", limit the fault to requests with that
	// method and a path that starts with Path.
	Method, Path string
	// Times, if not 0, limits the fault to the next Times requests it
	// matches; 0 keeps it until ClearFaults.
	Times int
}

// SetFault adds a fault; the first fault that matches a request answers
// it.
func (a *API) SetFault(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = append(a.faults, f)
}

// ClearFaults removes every fault.
func (a *API) ClearFaults() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = nil
}

// takeFault returns the fault that answers r, counting it down; nil if
// none.
func (a *API) takeFault(r *http.Request) *Fault {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, f := range a.faults {
		if f.Method != "" && f.Method != r.Method || !strings.HasPrefix(r.URL.Path, f.Path) {
			continue
		}
		if f.Times > 0 {
			if a.faults[i].Times--; a.faults[i].Times == 0 {
				a.faults = slices.Delete(a.faults, i, i+1)
			}
		}
		return &f
	}
	return nil
}

// ServeHTTP answers one API request, logging it.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	entry := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Remote: r.RemoteAddr}
	defer func() {
		entry.Status, entry.Error = rec.status, rec.errMsg
		a.record(entry)
	}()
	if a.cfg.APIKey != "" && r.Header.Get("X-API-Key") != a.cfg.APIKey {
		rec.fail(http.StatusUnauthorized, "Unauthorized: the X-API-Key header is missing or not the API's key")
		return
	}
	if f := a.takeFault(r); f != nil {
		entry.Fault = f
		if f.RetryAfter > 0 {
			rec.Header().Set("Retry-After", strconv.Itoa(max(1, int(f.RetryAfter.Round(time.Second)/time.Second))))
		}
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		rec.fail(status, "fault injected by the test: "+http.StatusText(status))
		return
	}
	if r.Method == http.MethodPatch || r.Method == http.MethodPost {
		body, err := readBody(r)
		if err != nil {
			rec.fail(http.StatusBadRequest, err.Error())
			return
		}
		entry.Body = string(body)
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, body))
	}
	a.mux.ServeHTTP(rec, r)
}

type bodyKey struct{}

// maxBody bounds a request body: a zone's worth of RRsets.
const maxBody = 4 << 20

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read the request body (%d bytes read): %w", len(b), err)
	}
	return b, nil
}

// recorder notes the status and error a handler answered with.
type recorder struct {
	http.ResponseWriter
	status int
	errMsg string
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// fail answers an error as PowerDNS does: {"error": "..."}.
func (r *recorder) fail(status int, msg string) {
	r.errMsg = msg
	writeJSON(r, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fail answers an error through w, which is always the API's recorder.
func fail(w http.ResponseWriter, status int, format string, args ...any) {
	w.(*recorder).fail(status, fmt.Sprintf(format, args...))
}

// checkServer answers 404 for a server other than localhost.
func checkServer(w http.ResponseWriter, r *http.Request) bool {
	if id := r.PathValue("server"); id != ServerID {
		fail(w, http.StatusNotFound, "Not Found: no server %q; the API has one, %q", id, ServerID)
		return false
	}
	return true
}

// Errors callers branch on, with errors.Is.
var (
	// ErrNoRequest: WaitForRequest's context ended before a matching
	// request came; the error wraps the context's error too.
	ErrNoRequest = errors.New("no matching request")
)
