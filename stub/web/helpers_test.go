package webstub_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
)

// clientTimeout bounds one request on loopback: far above its
// milliseconds, for a loaded runner under -race.
const clientTimeout = 10 * time.Second

// start starts a server for cfg on loopback, closed when the test ends,
// and returns it with its URL.
func start(t *testing.T, cfg webstub.Config) (*webstub.Server, string) {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	s := webstub.New(cfg)
	url, err := s.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, url
}

// client is an HTTP client trusting ca (none: plain HTTP), with no
// connection reuse so that each request is seen alone.
func client(ca *tlsca.CA) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	if ca != nil {
		tr.TLSClientConfig = ca.ClientTLSConfig()
	}
	return &http.Client{Transport: tr, Timeout: clientTimeout}
}

// get fetches url with c and returns the status and body, failing the
// test if no answer comes.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("get %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("get %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// newCA makes a CA or fails the test.
func newCA(t *testing.T) *tlsca.CA {
	t.Helper()
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
