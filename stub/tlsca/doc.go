// Package tlsca is the certificate authority of a test: a root made when
// the test starts, trusted by the test's clients (Pool, ClientTLSConfig)
// and by guests (CertPEM, written to their trust store, GuestFiles), which
// issues the certificates that stand-in servers present (Issue,
// ServerTLSConfig), for DNS names and IP addresses alike.
//
// It owns key generation, issuing, and the paths where guests look for
// trusted roots. It imports only the standard library, so that any Go
// test, and every stub of shakedown's (stub/web, stub/registry, an ACME
// stand-in issuing from Signer), can use it.
//
//	ca, err := tlsca.New(tlsca.Options{})
//	cfg, err := ca.ServerTLSConfig("www.test", "192.168.1.253") // for an http.Server
//	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientTLSConfig()}}
//	files := ca.GuestFiles(tlsca.Debian) // the CA for /usr/local/share/ca-certificates
//
// Keys are ECDSA P-256: fast to make, so every test can have its own CA,
// and accepted by every TLS stack a guest runs.
package tlsca
