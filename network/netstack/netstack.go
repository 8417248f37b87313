// Package netstack puts virtual hosts of Go code on a network's switch: a
// gVisor netstack with one Ethernet NIC at a host number of the address
// plan, plugged into a host port, so that Go code listens and dials as a
// machine on the network would, with no host interface and no privilege.
// It imports network, internal/addrplan and gVisor's tcpip packages.
package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/shakedown-dev/shakedown/internal/addrplan"
	"github.com/shakedown-dev/shakedown/network"
)

// queueLen is the gVisor link queue of a host, in packets: a TCP window
// of full-size segments with room to spare. Beyond it the stack sees
// ErrNoBufferSpace and retransmits, as it would on a full NIC ring.
const queueLen = 1024

// nicID is the one NIC of a host's stack.
const nicID tcpip.NICID = 1

// Host is a virtual host on a switch: host number Number on network
// Network of the address plan, both IPv4 and IPv6. Its methods are safe
// for concurrent use. Close it when done; its connections end then.
type Host struct {
	net, num int
	stack    *stack.Stack
	link     *channel.Endpoint
	port     *network.HostPort
	cancel   context.CancelFunc
	wg       sync.WaitGroup // toSwitch and fromSwitch
	once     sync.Once
}

// New starts host num of network v (numbers as in addrplan) on sw, with
// the plan's MAC and addresses. The goroutines that carry its frames run
// until Close.
func New(sw *network.Switch, v, num int) (*Host, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// A connection to the host's own address stays inside: the
		// switch sends nothing back to the port it came from.
		HandleLocal: true,
	})
	// Selective acknowledgements, as Linux has them: without them every
	// frame an impairment drops costs a window's worth of retransmits.
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	link := channel.New(queueLen, uint32(sw.MTU()+header.EthernetMinimumSize), tcpip.LinkAddress(addrplan.MAC(v, num)))
	if err := s.CreateNIC(nicID, ethernet.New(link)); err != nil {
		s.Close()
		return nil, fmt.Errorf("netstack NIC: %s", err)
	}
	for _, p := range []netip.Prefix{
		netip.PrefixFrom(addrplan.IPv4(v, num), addrplan.Bits4),
		netip.PrefixFrom(addrplan.IPv6(v, num), addrplan.Bits6),
	} {
		pa := tcpip.ProtocolAddress{Protocol: protocolOf(p.Addr()),
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFromSlice(p.Addr().AsSlice()), PrefixLen: p.Bits()}}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			s.Close()
			return nil, fmt.Errorf("netstack address %s: %s", p, err)
		}
		s.AddRoute(tcpip.Route{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID})
	}
	port, err := sw.AddHostPort(fmt.Sprintf("host%d", num))
	if err != nil {
		s.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{net: v, num: num, stack: s, link: link, port: port, cancel: cancel}
	h.wg.Add(2)
	go h.toSwitch(ctx)
	go h.fromSwitch(ctx)
	return h, nil
}

// SetGateway gives the host default routes through gw, an IPv4 address on
// its network, and through gw's twin in the address plan for IPv6 (the
// same host number): a router machine's, so that the host answers
// machines on other networks, as a server behind a router does.
func (h *Host) SetGateway(gw netip.Addr) error {
	if !gw.Is4() || !addrplan.Prefix4(h.net).Contains(gw) {
		return fmt.Errorf("gateway %s: want an IPv4 address on the host's network, %s", gw, addrplan.Prefix4(h.net))
	}
	num := int(gw.As4()[3])
	if num == h.num {
		return fmt.Errorf("gateway %s: it is the host's own address: want a router's", gw)
	}
	h.stack.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFromSlice(gw.AsSlice()), NIC: nicID})
	h.stack.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet,
		Gateway: tcpip.AddrFromSlice(addrplan.IPv6(h.net, num).AsSlice()), NIC: nicID})
	return nil
}

// Port is the host's port on the switch, for faults.
func (h *Host) Port() network.PortID { return h.port.ID() }

// Addr is the host's address: IPv6 when v6 is set, else IPv4.
func (h *Host) Addr(v6 bool) netip.Addr {
	if v6 {
		return addrplan.IPv6(h.net, h.num)
	}
	return addrplan.IPv4(h.net, h.num)
}

// Listen listens for TCP at local, one of the host's addresses.
func (h *Host) Listen(local netip.AddrPort) (net.Listener, error) {
	return gonet.ListenTCP(h.stack, fullAddress(local), protocolOf(local.Addr()))
}

// ListenPacket opens a UDP socket at local, one of the host's addresses.
// Its WriteTo takes *net.UDPAddr, and sends to the broadcast addresses
// too (255.255.255.255 and the subnet's, from the host's address, to the
// Ethernet broadcast address): a socket here has SO_BROADCAST set.
//
// A socket at the host's IPv4 address receives the broadcasts to its port
// as well as the datagrams to the address: it is bound to the any address
// of the host's one NIC, as a Linux socket at 0.0.0.0:port is, and
// LocalAddr reports local. A host has one IPv4 address, so this takes no
// datagram meant for another socket; and services that clients find by
// broadcast, a DHCP server first of all (its clients have no address yet
// and send to 255.255.255.255:67), could not be served otherwise.
func (h *Host) ListenPacket(local netip.AddrPort) (net.PacketConn, error) {
	la := fullAddress(local)
	proto := protocolOf(local.Addr())
	if local.Addr().Is4() && local.Addr() == h.Addr(false) {
		la.Addr = tcpip.Address{} // the any address, on this NIC only
	}
	var wq waiter.Queue
	ep, tcpErr := h.stack.NewEndpoint(udp.ProtocolNumber, proto, &wq)
	if tcpErr != nil {
		return nil, fmt.Errorf("listen udp %s: %s", local, tcpErr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if tcpErr := ep.Bind(la); tcpErr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(local), Err: errors.New(tcpErr.String())}
	}
	return udpConn{UDPConn: gonet.NewUDPConn(&wq, ep), local: local.Addr()}, nil
}

// Dial connects to remote over "tcp" or "udp" from this host. ctx bounds
// the setup of a TCP connection.
func (h *Host) Dial(ctx context.Context, transport string, remote netip.AddrPort) (net.Conn, error) {
	ra := fullAddress(remote)
	proto := protocolOf(remote.Addr())
	switch transport {
	case "tcp":
		return gonet.DialContextTCP(ctx, h.stack, ra, proto)
	case "udp":
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := gonet.DialUDP(h.stack, nil, &ra, proto)
		if err != nil {
			return nil, err
		}
		return udpConn{UDPConn: c}, nil
	}
	return nil, fmt.Errorf("dial %s: want tcp or udp", transport)
}

// Close stops the host: its connections and listeners end, then its port
// leaves the switch, which stops the goroutines. Closing twice does
// nothing.
func (h *Host) Close() {
	h.once.Do(func() {
		h.stack.Close()
		h.stack.Wait()
		h.link.Close()
		h.port.Close()
		h.cancel()
		h.wg.Wait()
	})
}

// toSwitch carries the stack's frames into the switch until the link
// closes.
func (h *Host) toSwitch(ctx context.Context) {
	defer h.wg.Done()
	for {
		pkt := h.link.ReadContext(ctx)
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		pkt.DecRef()
		err := h.port.WriteFrame(v.AsSlice())
		v.Release()
		if err != nil {
			return
		}
	}
}

// fromSwitch carries the switch's frames into the stack until the port
// closes.
func (h *Host) fromSwitch(ctx context.Context) {
	defer h.wg.Done()
	for {
		frame, err := h.port.ReadFrame(ctx)
		if err != nil {
			return
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
		h.link.InjectInbound(0, pkt)
		pkt.DecRef()
	}
}

func protocolOf(ip netip.Addr) tcpip.NetworkProtocolNumber {
	if ip.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

func fullAddress(ap netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}
}

// udpConn is gonet's UDP connection, taking IPv4 addresses in their
// 16-byte form too, as net.ParseIP returns them.
type udpConn struct {
	*gonet.UDPConn
	local netip.Addr // if valid, the address LocalAddr reports: a socket bound wider
}

// LocalAddr is the address the socket was asked for: the host's, for one
// bound to the any address to take broadcasts too, with its port.
func (c udpConn) LocalAddr() net.Addr {
	a := c.UDPConn.LocalAddr()
	if ua, ok := a.(*net.UDPAddr); ok && c.local.IsValid() {
		return &net.UDPAddr{IP: c.local.AsSlice(), Port: ua.Port}
	}
	return a
}

func (c udpConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		if ip4 := ua.IP.To4(); ip4 != nil {
			addr = &net.UDPAddr{IP: ip4, Port: ua.Port}
		}
	}
	return c.UDPConn.WriteTo(b, addr)
}
