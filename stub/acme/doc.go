// Package acmestub is a stand-in ACME certificate authority (RFC 8555) for
// tests, usable on its own as net/http/httptest is: accounts, orders,
// HTTP-01 and DNS-01 validation, finalization and certificate download, as
// golang.org/x/crypto/acme, lego, certbot or cert-manager speak them, with
// faults set at run time and an event log to assert on.
//
// It owns the ACME stand-in of shakedown's stub services: the protocol's
// objects and their states, the validation of challenges, the issuing CA
// and the event log. It imports the standard library and
// github.com/go-jose/go-jose/v4 (JWS parsing, verification and JWK
// thumbprints) and internal/eventlog, nothing of shakedown's API, so that it stays usable in any Go
// test; a testbed plugs in its network through Config's functions.
//
// Why not letsencrypt/pebble as a library: pebble's validation authority
// dials challenges with a net.Dialer and resolves names with the host's
// resolver or a resolver address, configured partly through environment
// variables. A testbed's machines live on in-process virtual networks
// (gVisor netstack) that only a given Dial function reaches, and their
// names resolve through shakedown's in-process DNS stand-in
// (package dnsstub). So validation here goes through Config.Dial,
// Config.LookupHost and Config.LookupTXT, and nothing else.
//
// A server on loopback, driven by x/crypto/acme:
//
//	s, err := acmestub.New(acmestub.Config{
//		LookupHost: func(ctx context.Context, name string) ([]string, error) { return []string{"127.0.0.1"}, nil },
//		HTTPPort:   challengePort, // where the test serves /.well-known/acme-challenge/
//		Logf:       t.Logf,
//	})
//	err = s.Start("") // HTTPS on a free port of 127.0.0.1, its certificate from the same CA
//	t.Cleanup(func() { s.Close() })
//	c := &acme.Client{Key: key, DirectoryURL: s.DirectoryURL(), HTTPClient: s.Client()}
//	err = s.SetFault(acmestub.Fault{BadNonce: 2}) // the client must retry
//	e, err := s.WaitFor(ctx, acmestub.Match{Kind: acmestub.EventIssued, Name: "www.example.test"})
//	pool := s.Roots() // verifies what it issued
//
// What it does as RFC 8555 asks: every signed request's JWS is checked
// (algorithm, single-use nonce with badNonce and a fresh Replay-Nonce on
// failure, the url header against the request's URL, jwk for new accounts
// and kid otherwise); every answer carries Replay-Nonce and the Link to
// the directory; errors are problem documents (RFC 7807) of the
// urn:ietf:params:acme:error: types; Location headers are absolute URLs
// built from the request's Host. Wildcard names are validated by dns-01
// only. A failed validation is final, as RFC 8555 7.1.6 says: its
// authorization and order become invalid, and the client makes a new
// order. Validation runs in the background once the client responds to a
// challenge, and a validation failure's problem says what was seen ("got
// 404", the TXT records found, the resolver's error).
//
// What it leaves out: pre-authorization (newAuthz), account key rollover,
// external account binding, IP identifiers, tls-alpn-01, and reuse of an
// account's valid authorizations across orders (each order gets fresh
// ones, so that each validation is seen in the log).
package acmestub
