// Package webstub is a stand-in HTTP(S) host for tests, usable on its own
// as net/http/httptest is: a handler or a directory to serve (an apt
// repository, installer payloads), routes added while it serves
// (webhooks), faults set per path at run time, and a request log to assert
// on.
//
// It owns the web stand-in of shakedown's stub services: serving, TLS
// from the test's CA, faults and the request log. It serves any
// net.Listener: loopback sockets (Start), or a shakedown host's (package
// webnet attaches a Server to a testbed's network). It imports the
// standard library, stub/tlsca and internal/eventlog, nothing of
// shakedown's root, so that it
// stays usable in any Go test.
//
//	ca, err := tlsca.New(tlsca.Options{})
//	s := webstub.New(webstub.Config{Dir: "testdata/repo", CA: ca, Logf: t.Logf})
//	t.Cleanup(func() { s.Close() })
//	url, err := s.Start("") // https://127.0.0.1:PORT, certificate for 127.0.0.1
//	s.Handle("POST /hook", hookHandler)
//	err = s.SetFault("/dists/", webstub.Fault{Status: 503, RetryAfter: 2 * time.Second, Times: 1})
//	r, err := s.WaitForRequest(ctx, webstub.Match{Method: "GET", PathPrefix: "/pool/"})
//
// It speaks HTTP/1.1 only, over TLS too: what apt, curl and installers
// use first, and what lets a Drop fault close the connection.
package webstub
