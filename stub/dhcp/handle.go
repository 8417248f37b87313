package dhcpstub

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// Ports of DHCP (RFC 2131 4.1).
const (
	serverPort = 67
	clientPort = 68
)

// handle answers req from from, updating the lease table and logging the
// event: the reply (nil for none), where it goes, and how long a Delay
// fault holds it back.
func (s *Server) handle(req *dhcpv4.DHCPv4, from netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort, time.Duration) {
	now := time.Now()
	ev := Event{Time: now, Type: req.MessageType(), MAC: slices.Clone(req.ClientHWAddr), Hostname: req.HostName(),
		XID: req.TransactionID, From: from}
	s.stateMu.Lock()
	resp := s.answer(req, &ev, now)
	s.stateMu.Unlock()
	var to netip.AddrPort
	if resp != nil {
		to = s.destination(req, resp, from)
		ev.Reply, ev.To = resp.MessageType(), to
		if yi, ok := netip.AddrFromSlice(resp.YourIPAddr.To4()); ok && !yi.IsUnspecified() {
			ev.Addr = yi
		}
	}
	s.record(ev)
	var delay time.Duration
	if ev.Fault != nil {
		delay = ev.Fault.Delay
	}
	return resp, to, delay
}

// answer decides the reply to req and changes the table; it fills ev's
// Requested, Addr, Note and Fault. stateMu is held.
func (s *Server) answer(req *dhcpv4.DHCPv4, ev *Event, now time.Time) *dhcpv4.DHCPv4 {
	mac := req.ClientHWAddr
	if s.outage {
		ev.Note = "outage: no answer"
		return nil
	}
	fault := s.takeFault(req)
	ev.Fault = fault
	if fault != nil && fault.Drop {
		ev.Note = "fault: dropped"
		return nil
	}
	requested := ip4(req.RequestedIPAddress())
	ciaddr := ip4(req.ClientIPAddr)
	ev.Requested = requested
	nak := func(format string, args ...any) *dhcpv4.DHCPv4 {
		ev.Note = fmt.Sprintf(format, args...)
		return s.nak(req, ev.Note)
	}
	// ack binds addr to the client, unless a NAK fault refuses it.
	ack := func(addr netip.Addr, static bool) *dhcpv4.DHCPv4 {
		if fault != nil && fault.NAK {
			return nak("fault: NAK for %s", addr)
		}
		l := s.leases[mac.String()]
		if l == nil || l.Addr != addr {
			l = &lease{Lease: Lease{MAC: slices.Clone(mac), Addr: addr}}
			s.leases[mac.String()] = l
		}
		l.Static, l.bound, l.Expires = static, true, now.Add(s.cfg.LeaseTime)
		if ev.Hostname != "" {
			l.Hostname = ev.Hostname
		}
		return s.reply(req, dhcpv4.MessageTypeAck, addr, true)
	}

	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		addr, static, ok := s.allocate(mac, requested, now)
		if !ok {
			ev.Note = fmt.Sprintf("pool exhausted: all %d addresses of %s-%s are leased, offered or declined: no offer",
				s.poolSize(), s.cfg.PoolStart, s.cfg.PoolEnd)
			return nil
		}
		l := s.leases[mac.String()]
		if l == nil || l.Addr != addr {
			l = &lease{Lease: Lease{MAC: slices.Clone(mac), Addr: addr, Hostname: ev.Hostname}}
			s.leases[mac.String()] = l
		}
		// An offer holds the address for a while; a lease bound to it
		// already keeps its time.
		l.Static = static
		if hold := now.Add(min(offerHold, s.cfg.LeaseTime)); !l.bound || l.Expires.Before(hold) {
			l.Expires = hold
		}
		return s.reply(req, dhcpv4.MessageTypeOffer, addr, true)

	case dhcpv4.MessageTypeRequest:
		switch sid := ip4(req.ServerIdentifier()); {
		case sid.IsValid(): // SELECTING: the answer to an offer
			if sid != s.cfg.ServerID {
				if l := s.leases[mac.String()]; l != nil && !l.bound {
					delete(s.leases, mac.String())
				}
				ev.Note = fmt.Sprintf("the client chose server %s: no answer", sid)
				return nil
			}
			if ok, _ := s.owns(mac, requested, now); !ok {
				return nak("requested %v, which is not the address offered", requested)
			}
			_, static := s.staticAddr(mac)
			return ack(requested, static)
		case requested.IsValid(): // INIT-REBOOT: a client that had a lease
			if !s.cfg.inHosts(requested) {
				return nak("requested %s, outside the subnet %s", requested, s.cfg.Subnet)
			}
			ok, known := s.owns(mac, requested, now)
			if !known {
				ev.Note = "no record of the client (INIT-REBOOT): no answer, as RFC 2131 4.3.2 asks"
				return nil
			}
			if !ok {
				return nak("requested %s, which is not the client's", requested)
			}
			_, static := s.staticAddr(mac)
			return ack(requested, static)
		case ciaddr.IsValid(): // RENEWING or REBINDING
			ev.Requested = ciaddr
			if ok, _ := s.owns(mac, ciaddr, now); !ok {
				return nak("renewal of %s, which is not the client's", ciaddr)
			}
			_, static := s.staticAddr(mac)
			return ack(ciaddr, static)
		}
		ev.Note = "REQUEST with neither a requested address nor ciaddr: no answer"
		return nil

	case dhcpv4.MessageTypeRelease:
		ev.Requested = ciaddr
		if l := s.leases[mac.String()]; l != nil && l.Addr == ciaddr {
			delete(s.leases, mac.String())
			ev.Note = "released " + ciaddr.String()
		} else {
			ev.Note = fmt.Sprintf("release of %v, which is not the client's: ignored", ciaddr)
		}
		return nil

	case dhcpv4.MessageTypeDecline:
		// The client found the address in use (ARP): keep it from every
		// client for a lease's time.
		if requested.IsValid() {
			s.declined[requested] = now.Add(s.cfg.LeaseTime)
			if l := s.leases[mac.String()]; l != nil && l.Addr == requested {
				delete(s.leases, mac.String())
			}
		}
		ev.Note = fmt.Sprintf("declined %v: kept from clients for %v", requested, s.cfg.LeaseTime)
		return nil

	case dhcpv4.MessageTypeInform:
		// A client with an address of its own, asking for the options.
		ev.Requested = ciaddr
		return s.reply(req, dhcpv4.MessageTypeAck, netip.Addr{}, false)
	}
	ev.Note = "not a message a server answers: ignored"
	return nil
}

// reply is an OFFER or ACK of addr with the configured options; lease
// adds the lease times (not for INFORM's ACK, RFC 2131 3.4).
func (s *Server) reply(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, addr netip.Addr, lease bool) *dhcpv4.DHCPv4 {
	c := s.cfg
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(t),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(c.ServerID.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(c.Subnet.Bits(), 32))),
	}
	if addr.IsValid() {
		mods = append(mods, dhcpv4.WithYourIP(addr.AsSlice()))
	}
	if lease {
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(c.LeaseTime)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(c.LeaseTime/2)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(c.LeaseTime*7/8)))
	}
	if c.Router.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(c.Router.AsSlice())))
	}
	if len(c.DNS) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(ips(c.DNS)...)))
	}
	if c.Domain != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(c.Domain)))
	}
	if len(c.Search) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: c.Search})))
	}
	if c.MTU != 0 {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{byte(c.MTU >> 8), byte(c.MTU)}))
	}
	if len(c.NTP) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptNTPServers(ips(c.NTP)...)))
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		// Only the transaction ID's generation fails, and a reply
		// copies the request's.
		panic(fmt.Sprintf("dhcp stub: build %s: %v", t, err))
	}
	return resp
}

// nak is a NAK saying why (option 56, which clients log).
func (s *Server) nak(req *dhcpv4.DHCPv4, why string) *dhcpv4.DHCPv4 {
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.ServerID.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)))
	if err != nil {
		panic(fmt.Sprintf("dhcp stub: build NAK: %v", err))
	}
	return resp
}

// destination is where a reply goes (RFC 2131 4.1): to the relay that
// sent the request; broadcast for a NAK; to ciaddr for a client that has
// an address; else broadcast, since the client has none. Broadcasting
// also where the client leaves the broadcast flag clear is allowed, and
// spares the server the ARP entry a unicast to yiaddr would need.
func (s *Server) destination(req, resp *dhcpv4.DHCPv4, from netip.AddrPort) netip.AddrPort {
	broadcast := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), clientPort)
	switch gi, ci := ip4(req.GatewayIPAddr), ip4(req.ClientIPAddr); {
	case s.cfg.ReplyToSender:
		return from
	case gi.IsValid():
		return netip.AddrPortFrom(gi, serverPort)
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		return broadcast
	case ci.IsValid():
		return netip.AddrPortFrom(ci, clientPort)
	}
	return broadcast
}

// ip4 is an IPv4 address of a message, the zero Addr for none or 0.0.0.0.
func ip4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

func ips(addrs []netip.Addr) []net.IP {
	out := make([]net.IP, len(addrs))
	for i, a := range addrs {
		out[i] = a.AsSlice()
	}
	return out
}
