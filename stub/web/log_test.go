package webstub_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	webstub "github.com/shakedown-dev/shakedown/stub/web"
)

// TestRequestLog checks what the log records of each request, over HTTPS.
func TestRequestLog(t *testing.T) {
	ca := newCA(t)
	s, url := start(t, webstub.Config{Dir: "testdata/repo", CA: ca})
	before := time.Now()
	c := client(ca)
	req, _ := http.NewRequest("GET", url+"/dists/stable/Release?x=1", nil)
	req.Header.Set("User-Agent", "Debian APT-HTTP/1.3 (2.6.1)")
	req.Host = "deb.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	get(t, c, url+"/missing")

	log := s.Log()
	if len(log) != 2 {
		t.Fatalf("got %d requests, want 2: %v", len(log), log)
	}
	r := log[0]
	if r.Method != "GET" || r.Host != "deb.test" || r.Path != "/dists/stable/Release" || r.RawQuery != "x=1" ||
		r.Status != 200 || r.Bytes != 13 || !r.TLS || r.UserAgent != "Debian APT-HTTP/1.3 (2.6.1)" || r.Dropped || r.Fault != nil {
		t.Errorf("got %+v, want GET deb.test/dists/stable/Release?x=1 over TLS answered 200 with 13 bytes", r)
	}
	if r.Time.Before(before) || r.Time.After(time.Now()) {
		t.Errorf("time %v out of the test's", r.Time)
	}
	if r.Remote.Addr().String() != "127.0.0.1" || r.Remote.Port() == 0 {
		t.Errorf("remote %v, want 127.0.0.1 and a port", r.Remote)
	}
	if got := log[1].String(); !strings.HasPrefix(got, "GET https://"+s.Addr()+"/missing from 127.0.0.1:") ||
		!strings.Contains(got, "(Go-http-client/1.1): 404 Not Found, 19 bytes in ") {
		t.Errorf("String: got %q", got)
	}

	log[0].Path = "changed"
	if s.Log()[0].Path == "changed" {
		t.Error("Log returned the log itself, want a copy")
	}
	s.ClearLog()
	if n := len(s.Log()); n != 0 {
		t.Errorf("after ClearLog: got %d requests, want 0", n)
	}
}

// TestMatch picks requests by each field of Match.
func TestMatch(t *testing.T) {
	r := webstub.Request{Method: "GET", Host: "deb.test:8080", Path: "/pool/main/h/hello.deb", Status: 200, Time: time.Unix(100, 0)}
	for _, tc := range []struct {
		m    webstub.Match
		want bool
	}{
		{webstub.Match{}, true},
		{webstub.Match{Method: "get"}, true},
		{webstub.Match{Method: "POST"}, false},
		{webstub.Match{Host: "deb.test"}, true},
		{webstub.Match{Host: "deb.test:8080"}, true},
		{webstub.Match{Host: "deb.test:80"}, false},
		{webstub.Match{Host: "other.test"}, false},
		{webstub.Match{Path: "/pool/main/h/hello.deb"}, true},
		{webstub.Match{Path: "/pool/"}, false},
		{webstub.Match{PathPrefix: "/pool/"}, true},
		{webstub.Match{PathPrefix: "/dists/"}, false},
		{webstub.Match{Status: 200}, true},
		{webstub.Match{Status: 404}, false},
		{webstub.Match{Since: time.Unix(100, 0)}, true},
		{webstub.Match{Since: time.Unix(101, 0)}, false},
		{webstub.Match{Func: func(r webstub.Request) bool { return strings.HasSuffix(r.Path, ".deb") }}, true},
	} {
		t.Run(tc.m.String(), func(t *testing.T) {
			if got := tc.m.Matches(r); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got, want := (webstub.Match{Host: "v6", PathPrefix: "/p/"}).Matches(webstub.Request{Host: "[2001:db8::1]:443", Path: "/p/x"}), false; got != want {
		t.Errorf("v6 host: got %v, want %v", got, want)
	}
	if got := (webstub.Match{Host: "2001:db8::1"}).Matches(webstub.Request{Host: "[2001:db8::1]:443"}); !got {
		t.Error("an IPv6 Host header with a port: got no match, want one")
	}
}

// TestWaitForRequest waits for a request that comes later, and says what
// it saw when none matching comes.
func TestWaitForRequest(t *testing.T) {
	s, url := start(t, webstub.Config{Handler: hello})
	c := client(nil)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.WaitForRequest(ctx, webstub.Match{Path: "/x"})
	if !errors.Is(err, webstub.ErrNoRequest) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "wait for a request for /x: no matching request after") ||
		!strings.Contains(err.Error(), "no request came at all") {
		t.Errorf("with no request: got %v", err)
	}

	for _, p := range []string{"/a", "/b"} {
		get(t, c, url+p)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = s.WaitForRequest(ctx, webstub.Match{Method: "POST", PathPrefix: "/hook/"})
	if !errors.Is(err, webstub.ErrNoRequest) ||
		!strings.Contains(err.Error(), "wait for a POST request for /hook/...: no matching request") ||
		!strings.Contains(err.Error(), "2 requests came, none matching; the last 2:\n\t") ||
		!strings.Contains(err.Error(), "GET http://"+s.Addr()+"/b from") {
		t.Errorf("with other requests: got %v", err)
	}

	since := time.Now()
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		_, err := s.WaitForRequest(ctx, webstub.Match{Path: "/a", Since: since})
		got <- err
	}()
	get(t, c, url+"/a")
	if err := <-got; err != nil {
		t.Errorf("waiting for a later request: %v", err)
	}
}

// TestLogLimit keeps the last LogLimit requests.
func TestLogLimit(t *testing.T) {
	s, url := start(t, webstub.Config{Handler: hello, LogLimit: 2})
	c := client(nil)
	for _, p := range []string{"/1", "/2", "/3"} {
		get(t, c, url+p)
	}
	var got []string
	for _, r := range s.Log() {
		got = append(got, r.Path)
	}
	if strings.Join(got, " ") != "/2 /3" {
		t.Errorf("got %v, want [/2 /3]", got)
	}
}
