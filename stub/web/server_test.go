package webstub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
)

// hello is a handler answering "hello PATH".
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello %s", r.URL.Path)
})

// TestServe serves a handler and a directory, over HTTP and over HTTPS
// with each way of getting a certificate, and fetches from each with a
// client that trusts the test's CA alone.
func TestServe(t *testing.T) {
	ca := newCA(t)
	tlsCfg, err := ca.ServerTLSConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		cfg      webstub.Config
		path     string
		wantURL  string
		wantCode int
		wantBody string
	}{
		{"handler http", webstub.Config{Handler: hello}, "/a", "http://", 200, "hello /a"},
		{"dir", webstub.Config{Dir: "testdata/repo"}, "/dists/stable/Release", "http://", 200, "Origin: test\n"},
		{"dir missing", webstub.Config{Dir: "testdata/repo"}, "/nope", "http://", 404, "404 page not found\n"},
		{"nothing", webstub.Config{}, "/", "http://", 404, "404 page not found\n"},
		{"handler over dir", webstub.Config{Handler: hello, Dir: "testdata/repo"}, "/dists/stable/Release", "http://", 200, "hello /dists/stable/Release"},
		{"tls config", webstub.Config{Handler: hello, TLS: tlsCfg}, "/b", "https://", 200, "hello /b"},
		{"ca names", webstub.Config{Handler: hello, CA: ca, Names: []string{"127.0.0.1", "www.test"}}, "/c", "https://", 200, "hello /c"},
		{"ca on demand", webstub.Config{Dir: "testdata/repo", CA: ca}, "/dists/stable/Release", "https://", 200, "Origin: test\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := start(t, tc.cfg)
			if !strings.HasPrefix(url, tc.wantURL+"127.0.0.1:") || s.URL() != url || !strings.HasSuffix(url, s.Addr()) {
				t.Errorf("URL: got %q (URL() %q, Addr() %q), want %s127.0.0.1:PORT", url, s.URL(), s.Addr(), tc.wantURL)
			}
			code, body := get(t, client(ca), url+tc.path)
			if code != tc.wantCode || body != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// TestTLSNames checks the certificates a server presents: for Names, a
// client asking for another name fails; on demand, any name the client
// asks for verifies; a client not trusting the CA fails.
func TestTLSNames(t *testing.T) {
	ca := newCA(t)
	fixed, _ := start(t, webstub.Config{Handler: hello, CA: ca, Names: []string{"www.test"}})
	_, anyURL := start(t, webstub.Config{Handler: hello, CA: ca})
	for _, tc := range []struct {
		name, addr, serverName string
		roots                  *x509.CertPool
		ok                     bool
	}{
		{"names: the name", fixed.Addr(), "www.test", ca.Pool(), true},
		{"names: another", fixed.Addr(), "api.test", ca.Pool(), false},
		{"names: the address", fixed.Addr(), "", ca.Pool(), false},
		{"on demand: a name", strings.TrimPrefix(anyURL, "https://"), "api.test", ca.Pool(), true},
		{"on demand: the address", strings.TrimPrefix(anyURL, "https://"), "", ca.Pool(), true},
		{"other CA", strings.TrimPrefix(anyURL, "https://"), "api.test", newCA(t).Pool(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: tc.roots, ServerName: tc.serverName}
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: clientTimeout}, "tcp", tc.addr, cfg)
			if got := err == nil; got != tc.ok {
				t.Fatalf("handshake: got %v, want ok %v", err, tc.ok)
			}
			if err == nil {
				c.Close()
			}
		})
	}

	bad := webstub.New(webstub.Config{CA: ca, Names: []string{"bad name"}})
	defer bad.Close()
	if _, err := bad.Start(""); !errors.Is(err, tlsca.ErrBadName) {
		t.Errorf("Start with a bad name: got %v, want tlsca.ErrBadName", err)
	}
}

// TestHandle adds routes while the server runs, asked before the
// Config's handler.
func TestHandle(t *testing.T) {
	s, url := start(t, webstub.Config{Handler: hello})
	c := client(nil)
	got := make(chan string, 1)
	s.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Event")
		w.WriteHeader(http.StatusAccepted)
	})
	req, _ := http.NewRequest("POST", url+"/hook", nil)
	req.Header.Set("X-Event", "push")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || <-got != "push" {
		t.Errorf("hook: got %d, want 202 and the event", resp.StatusCode)
	}
	if code, body := get(t, c, url+"/hook"); code != 200 || body != "hello /hook" {
		t.Errorf("GET /hook, which the route does not take: got %d %q, want the handler's", code, body)
	}
}

// TestClose checks that Close stops Serve with ErrServerClosed, ends the
// requests in flight (a Delay, a handler waiting on its request's
// context) without an answer, and that a closed server does not serve
// again.
func TestClose(t *testing.T) {
	s := webstub.New(webstub.Config{Handler: hello, Logf: t.Logf})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	arrived := make(chan struct{})
	s.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // Close closing the connection ends it
	})
	if err := s.SetFault("/slow", webstub.Fault{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	reqErr := make(chan error, 2)
	for _, p := range []string{"/wait", "/slow"} {
		go func() {
			resp, err := client(nil).Get(url + p)
			if err == nil {
				resp.Body.Close()
			}
			reqErr <- err
		}()
	}
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not end the requests in flight")
	}
	if err := <-served; !errors.Is(err, webstub.ErrServerClosed) {
		t.Errorf("Serve: got %v, want ErrServerClosed", err)
	}
	for range 2 {
		if err := <-reqErr; err == nil {
			t.Error("a request in flight: got an answer, want an error")
		}
	}
	if _, err := s.Start(""); !errors.Is(err, webstub.ErrServerClosed) {
		t.Errorf("Start after Close: got %v, want ErrServerClosed", err)
	}
	// /slow may not have reached the server before Close: then it is not
	// in the log, and its client saw the connection refused.
	for _, r := range s.Log() {
		if r.Path == "/slow" && !r.Dropped {
			t.Errorf("log: got %v, want /slow dropped", r)
		}
	}
	if _, err := s.WaitForRequest(ctx, webstub.Match{Path: "/wait"}); err != nil {
		t.Error(err)
	}
	s.Close() // again: a no-op
}
