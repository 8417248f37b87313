package webstub_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
)

// A directory served over HTTPS from the test's CA, failed once for a
// path, and the log asked what came.
func Example() {
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		panic(err)
	}
	s := webstub.New(webstub.Config{Dir: "testdata/repo", CA: ca})
	defer s.Close()
	url, err := s.Start("")
	if err != nil {
		panic(err)
	}
	s.SetFault("/dists/", webstub.Fault{Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Times: 1})

	c := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientTLSConfig()}}
	for range 2 {
		resp, err := c.Get(url + "/dists/stable/Release")
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d Retry-After %q: %q\n", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := s.WaitForRequest(ctx, webstub.Match{Path: "/dists/stable/Release", Status: http.StatusOK})
	fmt.Println(r.Method, r.Path, r.Status, r.Bytes, err)
	// Output:
	// 503 Retry-After "1": "Service Unavailable\n"
	// 200 Retry-After "": "Origin: test\n"
	// GET /dists/stable/Release 200 13 <nil>
}
