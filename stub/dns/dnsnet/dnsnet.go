// Package dnsnet puts a dnsstub.Server on a shakedown testbed: as a named
// host on a network, which machines query on port 53, and with records for
// the testbed's machines and hosts. It imports the root package shakedown
// and stub/dns; stub/dns itself imports nothing of shakedown's, so that it
// stays usable on its own.
//
//	s := dnsstub.New(dnsstub.Config{Logf: t.Logf})
//	t.Cleanup(func() { s.Close() })
//	ns, err := dnsnet.Attach(lan, "ns", s) // 192.168.1.253, port 53, UDP and TCP
//	err = dnsnet.AddTestbedRecords(s, tb, "test.")
//	web := tb.Machine("web", shakedown.MachineConfig{Networks: []string{"lan"},
//		Files: []shakedown.File{{Guest: "/etc/resolv.conf", Data: dnsnet.ResolvConf("test.", ns)}}})
package dnsnet

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown"
	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// Reverse zones of the address plan (internal/addrplan): every network's
// IPv4 subnet, 192.168.v.0/24, is in 192.168.0.0/16, and every IPv6
// subnet, 2001:db8:v::/64, in 2001:db8::/32. One zone each serves every
// network.
const (
	reverse4 = "168.192.in-addr.arpa."
	reverse6 = "8.b.d.0.1.0.0.2.ip6.arpa."
)

// Attach declares a host named name on network n and serves s from it on
// port 53, UDP and TCP, IPv4 and IPv6, until the testbed ends (its hosts'
// listeners close then) or s is closed. Machines reach it by name, as
// every guest's /etc/hosts lists hosts, or by its address (Host.Addr).
func Attach(n *shakedown.Network, name string, s *dnsstub.Server) (*shakedown.Host, error) {
	h, err := n.HostE(name, shakedown.HostOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach dns stub: %w", err)
	}
	if err := Serve(h, s); err != nil {
		return nil, err
	}
	return h, nil
}

// Serve serves s from host h, declared by the caller (at a HostOptions.Number
// of its choice, say), on port 53 as Attach does.
func Serve(h *shakedown.Host, s *dnsstub.Server) error {
	for _, family := range []string{"4", "6"} {
		pc, err := h.ListenPacket("udp"+family, ":53")
		if err != nil {
			return fmt.Errorf("attach dns stub to host %s: %w", h.Name(), err)
		}
		ln, err := h.Listen("tcp"+family, ":53")
		if err != nil {
			pc.Close()
			return fmt.Errorf("attach dns stub to host %s: %w", h.Name(), err)
		}
		// Serve returns when the testbed closes the host's listeners,
		// or when s closes: the goroutine lives no longer than either.
		go s.Serve(pc, ln)
	}
	return nil
}

// AddTestbedRecords makes every machine and host of tb resolvable under
// domain (e.g. "test."): NAME.domain has A and AAAA records with the
// addresses /etc/hosts gives NAME (a machine's on its first network; none
// for a machine with ManualAddresses), and each address a PTR record back
// to it. It declares the zones it needs that s lacks: domain, and the
// reverse zones of the address plan, 168.192.in-addr.arpa. and
// 8.b.d.0.1.0.0.2.ip6.arpa. (zones of s's that hold the names already,
// 1.168.192.in-addr.arpa. say, hold them still).
//
// The records are those of the machines and hosts declared so far: call
// it once they all are. Asking for machines' addresses fixes their
// numbering, as starting one does. Calling it again adds those declared
// since; records already there stay.
func AddTestbedRecords(s *dnsstub.Server, tb *shakedown.Testbed, domain string) error {
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" || domain == "." {
		return fmt.Errorf("add testbed records under %q: %w: want a domain such as \"test.\"", domain, dnsstub.ErrBadRecord)
	}
	dom := dns.CanonicalName(domain)
	var rrs []dns.RR
	for _, m := range tb.Machines() {
		ip4, ip6 := m.Addr(), m.Addr6()
		if !ip4.IsValid() {
			continue // no network, or ManualAddresses: not in /etc/hosts either
		}
		fqdn := m.Name() + "." + dom
		rrs = append(rrs, dnsstub.Address(fqdn, ip4), dnsstub.Address(fqdn, ip6),
			dnsstub.PTR(ip4, fqdn), dnsstub.PTR(ip6, fqdn))
	}
	for _, h := range tb.Hosts() {
		fqdn := h.Name() + "." + dom
		rrs = append(rrs, dnsstub.Address(fqdn, h.Addr()), dnsstub.Address(fqdn, h.Addr6()),
			dnsstub.PTR(h.Addr(), fqdn), dnsstub.PTR(h.Addr6(), fqdn))
	}
	for _, rr := range rrs {
		zone := dom
		if rr.Header().Rrtype == dns.TypePTR {
			zone = reverse4
			if dns.IsSubDomain(reverse6, rr.Header().Name) {
				zone = reverse6
			}
		}
		if err := ensureZone(s, rr.Header().Name, zone); err != nil {
			return fmt.Errorf("add testbed records under %s: %w", dom, err)
		}
	}
	if err := s.AddRR(rrs...); err != nil {
		return fmt.Errorf("add testbed records under %s: %w", dom, err)
	}
	return nil
}

// ensureZone declares zone unless one of s's zones holds name already.
func ensureZone(s *dnsstub.Server, name, zone string) error {
	for _, z := range s.Zones() {
		if dns.IsSubDomain(z, name) {
			return nil
		}
	}
	if err := s.AddZone(zone); err != nil && !errors.Is(err, dnsstub.ErrZoneExists) {
		return err
	}
	return nil
}

// ResolvConf is an /etc/resolv.conf for machines that resolve through
// servers (hosts serving a dnsstub.Server, from Attach): a nameserver line
// for each server's IPv4 address, then one for each IPv6 address (glibc
// reads the first three), and domain as the search domain unless it is
// "", so that plain machine names resolve through DNS too. Put it in
// MachineConfig.Files.
func ResolvConf(domain string, servers ...*shakedown.Host) []byte {
	var b strings.Builder
	for _, h := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", h.Addr())
	}
	for _, h := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", h.Addr6())
	}
	if domain = strings.TrimSuffix(domain, "."); domain != "" {
		fmt.Fprintf(&b, "search %s\n", domain)
	}
	return []byte(b.String())
}
