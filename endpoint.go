package shakedown

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
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

	"github.com/shakedown-dev/shakedown/network"
)

// DefaultHostNumber is the host number of a network's host endpoint when
// Listen or ListenPacket names no address, and the one Dial sends from:
// 192.168.v.254 and 2001:db8:v::254. Machines take numbers from 1 up, so
// it clashes with none unless a testbed holds 254 machines.
const DefaultHostNumber = 254

// ErrAddressInUse is returned when a host endpoint is asked for at the
// address of a machine on the same network.
var ErrAddressInUse = errors.New("address in use")

// hostQueueLen is the gVisor link queue of a host endpoint, in packets: a
// TCP window of full-size segments with room to spare. Beyond it the stack
// sees ErrNoBufferSpace and retransmits, as it would on a full NIC ring.
const hostQueueLen = 1024

// Listen announces a TCP service of Go code on the network, at a host
// endpoint: a virtual host with its own IP and MAC, a gVisor netstack
// plugged into the network's switch, which machines reach as they reach
// each other. network is "tcp", "tcp4" or "tcp6"; addr is "host:port",
// host one of this network's addresses (192.168.v.n or 2001:db8:v::n, n
// not a machine's) or empty for DefaultHostNumber's (IPv6 for "tcp6").
// Listening needs no host interface and no privilege; the listener closes
// when the testbed ends, or earlier by Close.
func (n *Network) Listen(network, addr string) (net.Listener, error) {
	h, ap, proto, err := n.localEndpoint("listen", network, "tcp", addr)
	if err != nil {
		return nil, err
	}
	ln, err := gonet.ListenTCP(h.stack, fullAddress(ap), proto)
	if err != nil {
		return nil, fmt.Errorf("listen %s on network %s: %w", addr, n.name, err)
	}
	return ln, nil
}

// ListenPacket is Listen for UDP: network is "udp", "udp4" or "udp6". The
// connection's WriteTo takes *net.UDPAddr.
func (n *Network) ListenPacket(network, addr string) (net.PacketConn, error) {
	h, ap, proto, err := n.localEndpoint("listen", network, "udp", addr)
	if err != nil {
		return nil, err
	}
	local := fullAddress(ap)
	c, err := gonet.DialUDP(h.stack, &local, nil, proto)
	if err != nil {
		return nil, fmt.Errorf("listen %s on network %s: %w", addr, n.name, err)
	}
	return udpConn{c}, nil
}

// Dial connects from the network's default host endpoint (DefaultHostNumber)
// to addr, "host:port" where host is an address of this network or the name
// of a machine on it (its address on this network, by network's family:
// IPv6 for "tcp6" and "udp6"). network is one of "tcp", "tcp4", "tcp6",
// "udp", "udp4", "udp6". ctx bounds the connection's setup only.
func (n *Network) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := n.dialFrom(ctx, DefaultHostNumber, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s on network %s: %w", network, addr, n.name, err)
	}
	return c, nil
}

// dialFrom dials from host endpoint num.
func (n *Network) dialFrom(ctx context.Context, num int, network, addr string) (net.Conn, error) {
	transport, v6, err := parseNetwork(network)
	if err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %v", portStr, err)
	}
	ip, err := n.resolve(host, v6)
	if err != nil {
		return nil, err
	}
	h, err := n.hostEndpoint(num)
	if err != nil {
		return nil, err
	}
	remote := fullAddress(netip.AddrPortFrom(ip, uint16(port)))
	proto := protocolOf(ip)
	if transport == "tcp" {
		return gonet.DialContextTCP(ctx, h.stack, remote, proto)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := gonet.DialUDP(h.stack, nil, &remote, proto)
	if err != nil {
		return nil, err
	}
	return udpConn{c}, nil
}

// resolve turns a host of Dial's address into an IP of this network: an
// IP literal on it, or a machine's name.
func (n *Network) resolve(host string, v6 bool) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if _, err := n.hostNumber(ip); err != nil {
			return netip.Addr{}, err
		}
		return ip, nil
	}
	for _, m := range n.tb.Machines() {
		if m.name == host {
			if !contains(m.cfg.Networks, n.name) {
				return netip.Addr{}, fmt.Errorf("machine %s is not on network %s (it joins %v)", host, n.name, m.cfg.Networks)
			}
			return n.address(n.tb.numberOf(machineKind, host), v6), nil
		}
	}
	for _, h := range n.tb.Hosts() {
		if h.name == host {
			if h.n != n {
				return netip.Addr{}, fmt.Errorf("host %s is on network %s, not %s", host, h.n.name, n.name)
			}
			return n.address(h.num, v6), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%q is neither an address of network %s nor a machine or host on it", host, n.name)
}

// localEndpoint parses a local address for Listen or ListenPacket and
// returns the host endpoint that owns it.
func (n *Network) localEndpoint(op, network, want, addr string) (*hostEndpoint, netip.AddrPort, tcpip.NetworkProtocolNumber, error) {
	fail := func(err error) (*hostEndpoint, netip.AddrPort, tcpip.NetworkProtocolNumber, error) {
		return nil, netip.AddrPort{}, 0, fmt.Errorf("%s %s %s on network %s: %w", op, network, addr, n.name, err)
	}
	transport, v6, err := parseNetwork(network)
	if err != nil {
		return fail(err)
	}
	if transport != want {
		return fail(fmt.Errorf("want a %s network", want))
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fail(err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fail(fmt.Errorf("port %q: %v", portStr, err))
	}
	num := DefaultHostNumber
	var ip netip.Addr
	if host == "" {
		ip = n.address(num, v6)
	} else {
		if ip, err = netip.ParseAddr(host); err != nil {
			return fail(fmt.Errorf("host %q: want an IP address of the network", host))
		}
		ip = ip.Unmap()
		if num, err = n.hostNumber(ip); err != nil {
			return fail(err)
		}
	}
	h, err := n.hostEndpoint(num)
	if err != nil {
		return fail(err)
	}
	return h, netip.AddrPortFrom(ip, uint16(port)), protocolOf(ip), nil
}

// parseNetwork splits "tcp6" into "tcp" and true.
func parseNetwork(network string) (transport string, v6 bool, err error) {
	switch network {
	case "tcp", "tcp4", "udp", "udp4":
		return network[:3], false, nil
	case "tcp6", "udp6":
		return network[:3], true, nil
	}
	return "", false, fmt.Errorf("network %q: want tcp, tcp4, tcp6, udp, udp4 or udp6", network)
}

// address is host number num's address on this network.
func (n *Network) address(num int, v6 bool) netip.Addr {
	v := n.Number()
	if v6 {
		// The numbers are written in decimal digits, as in /etc/hosts:
		// 2001:db8:12::34 is network 12, host 34.
		return netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::%d", v, num))
	}
	return netip.AddrFrom4([4]byte{192, 168, byte(v), byte(num)})
}

// hostNumber is the n of 192.168.v.n or 2001:db8:v::n, the addresses of
// this network's numbering scheme; others are refused.
func (n *Network) hostNumber(ip netip.Addr) (int, error) {
	v := n.Number()
	p4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(v), 0}), 24)
	p6 := netip.PrefixFrom(n.address(0, true), 64)
	var num int
	switch {
	case p4.Contains(ip):
		num = int(ip.As4()[3])
	case p6.Contains(ip):
		b := ip.As16()
		if b[8]|b[9]|b[10]|b[11]|b[12]|b[13] != 0 {
			num = -1
		} else {
			// Decimal digits in a hexadecimal group (see address).
			num, _ = strconv.Atoi(fmt.Sprintf("%x", int(b[14])<<8|int(b[15])))
		}
	default:
		return 0, fmt.Errorf("%s is not on network %s (%s, %s)", ip, n.name, p4, p6)
	}
	if num < 1 || num > 254 {
		return 0, fmt.Errorf("%s: want a host number 1 to 254 on network %s", ip, n.name)
	}
	return num, nil
}

func protocolOf(ip netip.Addr) tcpip.NetworkProtocolNumber {
	if ip.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

func fullAddress(ap netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: hostNIC, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}
}

// hostNIC is the one NIC of a host endpoint's stack.
const hostNIC tcpip.NICID = 1

// udpConn is gonet's UDP connection, taking IPv4 addresses in their
// 16-byte form too, as net.ParseIP returns them.
type udpConn struct{ *gonet.UDPConn }

func (c udpConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		if ip4 := ua.IP.To4(); ip4 != nil {
			addr = &net.UDPAddr{IP: ip4, Port: ua.Port}
		}
	}
	return c.UDPConn.WriteTo(b, addr)
}

// hostEndpoint is a virtual host on a network: a gVisor stack with one
// Ethernet NIC, whose frames a goroutine each way carries to and from a
// host port of the network's switch.
type hostEndpoint struct {
	num   int
	stack *stack.Stack
	link  *channel.Endpoint
	port  *network.HostPort
	wg    sync.WaitGroup // toSwitch and fromSwitch
}

// hostEndpoint returns host number num of this network, starting it on
// first use.
func (n *Network) hostEndpoint(num int) (*hostEndpoint, error) {
	n.hostsMu.Lock()
	defer n.hostsMu.Unlock()
	if h := n.hosts[num]; h != nil {
		return h, nil
	}
	n.tb.mu.Lock()
	closed := n.tb.closed
	n.tb.mu.Unlock()
	if closed || n.tb.ctx.Err() != nil {
		return nil, fmt.Errorf("host endpoint: the testbed has ended")
	}
	for _, m := range n.tb.Machines() {
		if contains(m.cfg.Networks, n.name) && n.tb.numberOf(machineKind, m.name) == num {
			return nil, fmt.Errorf("host endpoint %s: %w: it is machine %s's (choose another host number, e.g. %d)",
				n.address(num, false), ErrAddressInUse, m.name, DefaultHostNumber)
		}
	}
	h, err := n.startHost(num)
	if err != nil {
		return nil, fmt.Errorf("host endpoint %s: %w", n.address(num, false), err)
	}
	if n.hosts == nil {
		n.hosts = map[int]*hostEndpoint{}
		n.tb.onClose(func() { n.closeHosts() })
	}
	n.hosts[num] = h
	return h, nil
}

// startHost makes the stack of host number num, plugs it into the switch
// and starts the goroutines that carry its frames until closeHosts.
func (n *Network) startHost(num int) (*hostEndpoint, error) {
	mac := tcpip.LinkAddress([]byte{0x52, 0x54, 0x00, 0x12, byte(n.Number()), byte(num)})
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// A connection to the endpoint's own address stays inside: the
		// switch sends nothing back to the port it came from.
		HandleLocal: true,
	})
	// Selective acknowledgements, as Linux has them: without them every
	// frame an impairment drops costs a window's worth of retransmits.
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	link := channel.New(hostQueueLen, uint32(n.sw.MTU()+header.EthernetMinimumSize), mac)
	if err := s.CreateNIC(hostNIC, ethernet.New(link)); err != nil {
		s.Close()
		return nil, fmt.Errorf("netstack NIC: %s", err)
	}
	for _, ip := range []netip.Addr{n.address(num, false), n.address(num, true)} {
		bits := 24
		if ip.Is6() {
			bits = 64
		}
		pa := tcpip.ProtocolAddress{Protocol: protocolOf(ip),
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFromSlice(ip.AsSlice()), PrefixLen: bits}}
		if err := s.AddProtocolAddress(hostNIC, pa, stack.AddressProperties{}); err != nil {
			s.Close()
			return nil, fmt.Errorf("netstack address %s: %s", ip, err)
		}
		s.AddRoute(tcpip.Route{Destination: pa.AddressWithPrefix.Subnet(), NIC: hostNIC})
	}
	port, err := n.sw.AddHostPort(fmt.Sprintf("host%d", num))
	if err != nil {
		s.Close()
		return nil, err
	}
	h := &hostEndpoint{num: num, stack: s, link: link, port: port}
	ctx := n.tb.ctx
	h.wg.Add(2)
	go h.toSwitch(ctx)
	go h.fromSwitch(ctx)
	return h, nil
}

// toSwitch carries the stack's frames into the switch until the link
// closes or the testbed ends.
func (h *hostEndpoint) toSwitch(ctx context.Context) {
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
// closes or the testbed ends.
func (h *hostEndpoint) fromSwitch(ctx context.Context) {
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

// closeHosts stops every host endpoint of the network: their connections
// and listeners end, then their ports leave the switch, which stops the
// goroutines.
func (n *Network) closeHosts() {
	n.hostsMu.Lock()
	hs := n.hosts
	n.hosts = nil
	n.hostsMu.Unlock()
	for _, h := range hs {
		h.stack.Close()
		h.stack.Wait()
		h.link.Close()
		h.port.Close()
		h.wg.Wait()
	}
}
