// Package webnet puts a web or registry stand-in on a shakedown testbed:
// as a named host on a network, which machines reach by name or address
// on a port of the test's choice. It imports the root package shakedown;
// stub/web, stub/registry and stub/tlsca import nothing of shakedown's,
// so that they stay usable on their own.
//
//	ca, err := tlsca.New(tlsca.Options{})
//	s := webstub.New(webstub.Config{Dir: "testdata/repo", CA: ca, Logf: t.Logf})
//	t.Cleanup(func() { s.Close() })
//	h, err := webnet.Attach(lan, "deb", s, 443) // https://deb/ from every machine on lan
//	reg := registrystub.New(registrystub.Config{CA: ca})
//	r, err := webnet.Attach(lan, "registry", reg, 443) // registry:443/library/alpine:3.20
//
// A server whose Config has a CA and no Names issues a certificate for
// whatever name or address a client asks for, so the host's name and
// addresses verify; Names(h) lists them, for a Config that names them.
package webnet

import (
	"fmt"
	"net"

	"github.com/shakedown-dev/shakedown"
)

// Server serves on a listener until it closes: a *webstub.Server or a
// *registrystub.Server.
type Server interface {
	Serve(ln net.Listener) error
}

// Attach declares a host named name on network n and serves s from it on
// port, IPv4 and IPv6, until the testbed ends (its hosts' listeners close
// then) or s is closed. Machines reach it by name, as every guest's
// /etc/hosts lists hosts, or by its address (Host.Addr).
func Attach(n *shakedown.Network, name string, s Server, port int) (*shakedown.Host, error) {
	h, err := n.HostE(name, shakedown.HostOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach web stub: %w", err)
	}
	if err := Serve(h, s, port); err != nil {
		return nil, err
	}
	return h, nil
}

// Serve serves s from host h, declared by the caller (at a
// HostOptions.Number of its choice, say), on port as Attach does.
func Serve(h *shakedown.Host, s Server, port int) error {
	for _, family := range []string{"4", "6"} {
		ln, err := h.Listen("tcp"+family, fmt.Sprintf(":%d", port))
		if err != nil {
			return fmt.Errorf("attach web stub to host %s port %d: %w", h.Name(), port, err)
		}
		// Serve returns when the testbed closes the host's listeners,
		// or when s closes: the goroutine lives no longer than either.
		go s.Serve(ln)
	}
	return nil
}

// Names are the names a certificate for host h must hold for machines to
// verify it: its name, as /etc/hosts gives it, and its IPv4 and IPv6
// addresses. For webstub.Config.Names and registrystub.Config.Names, or
// tlsca.CA.Issue.
func Names(h *shakedown.Host) []string {
	return []string{h.Name(), h.Addr().String(), h.Addr6().String()}
}
