// Package acmenet puts an acmestub.Server on a shakedown testbed: a named
// host on a network serving ACME over HTTPS on port 443, that validates
// challenges through the testbed, as a real certificate authority would
// through the internet. HTTP-01 connects from the host to the machine a
// name resolves to; names and DNS-01's TXT records resolve through a DNS
// server on the network (a dnsstub host, from dnsnet.Attach) asked over
// the switch. It imports the root package shakedown, stub/acme, stub/tlsca
// and stub/dns/dnsnet.
//
//	ca, err := tlsca.New(tlsca.Options{})     // one CA: ACME's and the web stubs'
//	ns, err := dnsnet.Attach(lan, "ns", dnsStub)
//	acme, h, err := acmenet.Attach(lan, "acme", acmenet.Config{CA: ca, DNS: ns})
//	// machines: certbot --server acmenet.DirectoryURL(h), trusting ca (tlsca.GuestFiles)
package acmenet

import (
	"errors"
	"fmt"

	"github.com/shakedown-dev/shakedown"
	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
	"github.com/shakedown-dev/shakedown/stub/dns/dnsnet"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
	"github.com/shakedown-dev/shakedown/stub/web/webnet"
)

// Config says how an ACME stand-in on a testbed issues and validates.
type Config struct {
	// CA signs the certificates issued and the server's own; nil makes the
	// server a root of its own (acmestub's default), which guests must
	// then trust from Server.RootPEM.
	CA *tlsca.CA
	// DNS is the host of the DNS server names resolve through (required):
	// the testbed's /etc/hosts is the guests', and a CA asks DNS.
	DNS *shakedown.Host
	// Server configures the rest (CertLifetime, faults' Logf, ...); its
	// Issuer, Dial, LookupHost, LookupTXT and Names are set by Attach.
	Server acmestub.Config
}

// ErrNoDNS: Config.DNS is nil.
var ErrNoDNS = errors.New("acme stub needs a DNS server on the testbed")

// Attach declares a host named name on network n and serves an ACME
// server from it on port 443, IPv4 and IPv6, until the testbed ends or
// the server is closed (the caller's t.Cleanup). Clients use
// DirectoryURL(h). The server's certificate names the host's name and
// addresses.
func Attach(n *shakedown.Network, name string, cfg Config) (*acmestub.Server, *shakedown.Host, error) {
	if cfg.DNS == nil {
		return nil, nil, fmt.Errorf("attach acme stub %s: %w: set Config.DNS to the host of a DNS stub (dnsnet.Attach), which validation asks for names and TXT records", name, ErrNoDNS)
	}
	h, err := n.HostE(name, shakedown.HostOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("attach acme stub: %w", err)
	}
	s, err := Serve(h, cfg)
	return s, h, err
}

// Serve serves an ACME server from host h, declared by the caller (with a
// HostOptions.Gateway, say, for clients on other networks), as Attach
// does.
func Serve(h *shakedown.Host, cfg Config) (*acmestub.Server, error) {
	if cfg.DNS == nil {
		return nil, fmt.Errorf("serve acme stub on %s: %w: set Config.DNS to the host of a DNS stub (dnsnet.Attach), which validation asks for names and TXT records", h.Name(), ErrNoDNS)
	}
	sc := cfg.Server
	if cfg.CA != nil {
		sc.Issuer = &acmestub.Issuer{Cert: cfg.CA.Certificate(), Key: cfg.CA.Signer()}
	}
	r := dnsnet.Resolver{From: h, Server: cfg.DNS.Addr()}
	sc.Dial, sc.LookupHost, sc.LookupTXT = h.Dial, r.LookupHost, r.LookupTXT
	sc.Names = append(webnet.Names(h), sc.Names...)
	s, err := acmestub.New(sc)
	if err != nil {
		return nil, fmt.Errorf("serve acme stub on %s: %w", h.Name(), err)
	}
	if err := webnet.Serve(h, s, 443); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// DirectoryURL is the ACME directory of the server on host h, as machines
// reach it: https://NAME/directory.
func DirectoryURL(h *shakedown.Host) string {
	return "https://" + h.Name() + "/directory"
}
