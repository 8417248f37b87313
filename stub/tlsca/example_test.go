package tlsca_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/shakedown-dev/shakedown/stub/tlsca"
)

// A server presenting a certificate from the test's CA, and a client that
// trusts that CA alone.
func Example() {
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello over TLS")
	}))
	srv.TLS, err = ca.ServerTLSConfig("127.0.0.1")
	if err != nil {
		panic(err)
	}
	srv.StartTLS()
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientTLSConfig()}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))
	fmt.Println(tlsca.DebianCAFile, len(ca.GuestFiles(tlsca.Debian)[tlsca.DebianCAFile]) > 0)
	// Output:
	// hello over TLS
	// /usr/local/share/ca-certificates/shakedown.crt true
}
