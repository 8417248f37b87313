package webui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/shakedown-dev/shakedown/control"
)

// Config configures a Server. The zero value serves every testbed running
// under the default parent directory, with a fresh token.
type Config struct {
	// Parent is the parent of the run directories ("" means
	// $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown), as for `shakedown ls`.
	Parent string
	// PID, if set, lists only the testbeds of that process: `shakedown
	// run --web` shows its own run.
	PID int
	// Token is the secret that the page's address carries; "" makes a
	// random one.
	Token string
}

// cookieName holds the token once the address that carries it was
// opened.
const cookieName = "shakedown-token"

// Server serves the live page of the running testbeds: an index, a page
// per testbed and per machine, and each testbed's API (Handler) proxied
// from its control socket.
//
// It is meant for loopback (Listen refuses anything else), and even there
// other users of the host can connect; so every request must carry the
// token, in the address that Server.URL gives or in the cookie that
// opening it sets. The Host header must name a loopback address, so that
// a web page elsewhere cannot reach it by DNS rebinding.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("web: token: %w", err)
		}
		cfg.Token = hex.EncodeToString(b)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /{$}", s.page("index"))
	s.mux.HandleFunc("GET /t/{bed}/{$}", s.page("testbed"))
	s.mux.HandleFunc("GET /t/{bed}/m/{machine}", s.page("machine"))
	s.mux.HandleFunc("GET /static/{file}", serveStatic)
	s.mux.HandleFunc("GET /api/testbeds", s.testbeds)
	s.mux.HandleFunc("/t/{bed}/api/", s.proxy)
	return s, nil
}

// Listen listens on addr, which must be a loopback address ("" means
// 127.0.0.1 on a free port).
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("web: address %q: %w (want HOST:PORT, e.g. 127.0.0.1:8080)", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("web: address %q is not loopback: the page serves the testbeds' machines without a password, so it listens on 127.0.0.1 or ::1 only", addr)
	}
	return net.Listen("tcp", addr)
}

// URL is the address to open for a server listening at addr: it carries
// the token.
func (s *Server) URL(addr net.Addr) string {
	return fmt.Sprintf("http://%s/?token=%s", addr, s.cfg.Token)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s}
	stop := context.AfterFunc(ctx, func() { hs.Close() })
	defer stop()
	err := hs.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !loopbackHost(r.Host) {
		http.Error(w, fmt.Sprintf("host %q is not a loopback address: open the address shakedown web printed", r.Host), http.StatusForbidden)
		return
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		if !s.tokenOK(tok) {
			http.Error(w, "wrong token: open the address shakedown web printed", http.StatusForbidden)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		q := r.URL.Query()
		q.Del("token")
		u := *r.URL
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return
	}
	if c, err := r.Cookie(cookieName); err != nil || !s.tokenOK(c.Value) {
		http.Error(w, "no token: open the address shakedown web printed (it carries the page's token)", http.StatusForbidden)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) tokenOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Bed is a running testbed in the index.
type Bed struct {
	// Name is its run directory's name, which the page's addresses use.
	Name     string            `json:"name"`
	Test     string            `json:"test"`
	PID      int               `json:"pid"`
	Machines []control.Machine `json:"machines"`
}

// running lists the testbeds the server shows.
func (s *Server) running() ([]control.State, error) {
	all, err := control.Running(s.cfg.Parent)
	if err != nil {
		return nil, err
	}
	var out []control.State
	for _, st := range all {
		if s.cfg.PID == 0 || st.PID == s.cfg.PID {
			out = append(out, st)
		}
	}
	return out, nil
}

func (s *Server) testbeds(w http.ResponseWriter, r *http.Request) {
	states, err := s.running()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	beds := []Bed{}
	for _, st := range states {
		beds = append(beds, Bed{Name: filepath.Base(st.Dir), Test: st.Name, PID: st.PID, Machines: st.Machines})
	}
	writeJSON(w, beds)
}

// gone is the API's answer for a testbed that is not running.
type gone struct {
	Gone    bool   `json:"gone"`
	Message string `json:"message"`
}

// proxy passes a testbed's API request to its control socket.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	bed := r.PathValue("bed")
	states, err := s.running()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var st *control.State
	for i := range states {
		if filepath.Base(states[i].Dir) == bed {
			st = &states[i]
		}
	}
	if st == nil {
		w.WriteHeader(http.StatusNotFound)
		writeJSON(w, gone{Gone: true, Message: fmt.Sprintf("testbed %s no longer exists: it ended, and its artifacts, report.html among them, are kept in its run directory if it failed", bed)})
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: "http", Host: "testbed", Path: strings.TrimPrefix(pr.In.URL.Path, "/t/"+bed), RawQuery: pr.In.URL.RawQuery}
			pr.Out.Host = "testbed"
			pr.Out.Header.Del("Cookie")
		},
		Transport:     control.Transport(st.Socket),
		FlushInterval: -1, // event streams and followed captures
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
			writeJSON(w, gone{Gone: true, Message: fmt.Sprintf("testbed %s does not answer (%v): it is ending or has ended", bed, err)})
		},
	}
	rp.ServeHTTP(w, r)
}
