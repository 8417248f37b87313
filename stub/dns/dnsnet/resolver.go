package dnsnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown"
)

// resolveTimeout bounds one question when the caller's context has no
// deadline: far above a stub's answer time through the switch.
const resolveTimeout = 5 * time.Second

// Resolver asks a DNS server on a testbed network, from a host there, as
// a guest's stub resolver would: for Go code in the test that must see
// what machines see (a stand-in certificate authority validating a
// challenge, say) rather than the host's own resolver, which knows
// nothing of the testbed. It follows CNAMEs within the answer, and does
// not recurse: the server must answer with authority, as a DNS stub does.
type Resolver struct {
	// From is the host the questions come from.
	From *shakedown.Host
	// Server is the DNS server's address (Host.Addr of a stub's host).
	Server netip.Addr
}

// LookupHost returns the IPv4 and IPv6 addresses of name, as
// net.Resolver.LookupHost does; an IP literal is returned as it is.
func (r Resolver) LookupHost(ctx context.Context, name string) ([]string, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return []string{ip.String()}, nil
	}
	var out []string
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.ask(ctx, name, t)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.A:
				out = append(out, rr.A.String())
			case *dns.AAAA:
				out = append(out, rr.AAAA.String())
			}
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: name, Server: r.Server.String(), IsNotFound: true}
	}
	return out, nil
}

// LookupTXT returns the TXT records at name, each one's strings joined, as
// net.Resolver.LookupTXT does.
func (r Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.ask(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, nil
}

// ask sends one question over UDP from r.From, retrying over TCP if the
// answer is truncated, and returns the answer's records. NXDOMAIN and
// NODATA give no records and no error; other rcodes an error naming them.
func (r Resolver) ask(ctx context.Context, name string, t uint16) ([]dns.RR, error) {
	if r.From == nil || !r.Server.IsValid() {
		return nil, fmt.Errorf("resolve %s: the Resolver needs From (a host) and Server (the DNS server's address)", name)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	m.SetEdns0(1232, false)
	var resp *dns.Msg
	for _, transport := range []string{"udp", "tcp"} {
		c, err := r.From.Dial(ctx, transport, netip.AddrPortFrom(r.Server, 53).String())
		if err != nil {
			return nil, fmt.Errorf("resolve %s %s: %w", name, dns.Type(t), err)
		}
		if d, ok := ctx.Deadline(); ok {
			c.SetDeadline(d)
		}
		client := &dns.Client{Net: transport}
		resp, _, err = client.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: c})
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("resolve %s %s at %s over %s: %w", name, dns.Type(t), r.Server, transport, err)
		}
		if !resp.Truncated {
			break
		}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return resp.Answer, nil
	}
	return nil, &net.DNSError{Err: "server answered " + dns.RcodeToString[resp.Rcode], Name: name,
		Server: r.Server.String(), IsTemporary: resp.Rcode == dns.RcodeServerFailure}
}
