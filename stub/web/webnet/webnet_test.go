package webnet_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	registrystub "github.com/shakedown-dev/shakedown/stub/registry"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
	"github.com/shakedown-dev/shakedown/stub/web/webnet"
)

// hostIOTimeout bounds one request between host endpoints through the
// in-process switch: ARP or neighbour discovery, a TLS handshake and a
// round trip, on a loaded runner under -race.
const hostIOTimeout = 20 * time.Second

// TestAttach attaches a web server and a registry to a testbed's network
// (no VM) and fetches from another host over HTTPS, by name and by each
// address, verifying with the test's CA.
func TestAttach(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	web := webstub.New(webstub.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	}), CA: ca, Logf: t.Logf})
	t.Cleanup(func() { web.Close() })
	h, err := webnet.Attach(lan, "www", web, 443)
	if err != nil {
		t.Fatal(err)
	}
	reg := registrystub.New(registrystub.Config{CA: ca, Logf: t.Logf})
	t.Cleanup(func() { reg.Close() })
	rh, err := webnet.Attach(lan, "registry", reg, 443)
	if err != nil {
		t.Fatal(err)
	}
	client := lan.Host("client", shakedown.HostOptions{})

	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return client.Dial(ctx, network, addr)
		},
		TLSClientConfig:   ca.ClientTLSConfig(),
		DisableKeepAlives: true,
	}
	c := &http.Client{Transport: tr, Timeout: hostIOTimeout}
	for _, tc := range []struct{ name, url, want string }{
		{"name", "https://www/", "hello from www"},
		{"ipv4", "https://" + h.Addr().String() + "/", "hello from " + h.Addr().String()},
		{"ipv6", "https://[" + h.Addr6().String() + "]/", "hello from [" + h.Addr6().String() + "]"},
		{"registry ping", "https://registry/v2/", ""}, // 200, no body
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(b) != tc.want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, b, tc.want)
			}
		})
	}
	r, err := web.WaitForRequest(tb.Context(), webstub.Match{Host: "www"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Remote.Addr(), client.Addr(); got != want {
		t.Errorf("remote in the log: got %s, want %s", got, want)
	}
	if got := webnet.Names(rh); len(got) != 3 || got[0] != "registry" || got[1] != rh.Addr().String() {
		t.Errorf("Names: got %v", got)
	}
}
