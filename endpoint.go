package shakedown

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/shakedown-dev/shakedown/internal/addrplan"
	"github.com/shakedown-dev/shakedown/network/netstack"
)

// DefaultHostNumber is the host number of a network's host endpoint when
// Listen or ListenPacket names no address, and the one Dial sends from:
// 192.168.v.254 and 2001:db8:v::254. Machines take numbers from 1 up, so
// it clashes with none unless a testbed holds 254 machines.
const DefaultHostNumber = addrplan.MaxHost

// Listen announces a TCP service of Go code on the network, at a host
// endpoint: a virtual host with its own IP and MAC, a gVisor netstack
// plugged into the network's switch, which machines reach as they reach
// each other. network is "tcp", "tcp4" or "tcp6"; addr is "host:port",
// host one of this network's addresses (192.168.v.n or 2001:db8:v::n, n
// not a machine's) or empty for DefaultHostNumber's (IPv6 for "tcp6").
// Listening needs no host interface and no privilege; the listener closes
// when the testbed ends, or earlier by Close.
func (n *Network) Listen(network, addr string) (net.Listener, error) {
	h, ap, err := n.localEndpoint("listen", network, "tcp", addr)
	if err != nil {
		return nil, err
	}
	ln, err := h.Listen(ap)
	if err != nil {
		return nil, fmt.Errorf("listen %s on network %s: %w", addr, n.name, err)
	}
	return ln, nil
}

// ListenPacket is Listen for UDP: network is "udp", "udp4" or "udp6". The
// connection's WriteTo takes *net.UDPAddr.
func (n *Network) ListenPacket(network, addr string) (net.PacketConn, error) {
	h, ap, err := n.localEndpoint("listen", network, "udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := h.ListenPacket(ap)
	if err != nil {
		return nil, fmt.Errorf("listen %s on network %s: %w", addr, n.name, err)
	}
	return c, nil
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
	a, err := netstack.ParseAddress(network, addr)
	if err != nil {
		return nil, err
	}
	ip, err := n.resolve(a.Host, a.V6)
	if err != nil {
		return nil, err
	}
	h, err := n.hostEndpoint(num)
	if err != nil {
		return nil, err
	}
	return h.Dial(ctx, a.Transport, netip.AddrPortFrom(ip, a.Port))
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
			if !slices.Contains(m.cfg.Networks, n.name) {
				return netip.Addr{}, fmt.Errorf("machine %s is not on network %s (it joins %v)", host, n.name, m.cfg.Networks)
			}
			return n.address(n.tb.machineNumber(host), v6), nil
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
func (n *Network) localEndpoint(op, network, want, addr string) (*netstack.Host, netip.AddrPort, error) {
	fail := func(err error) (*netstack.Host, netip.AddrPort, error) {
		return nil, netip.AddrPort{}, fmt.Errorf("%s %s %s on network %s: %w", op, network, addr, n.name, err)
	}
	a, err := netstack.ParseAddress(network, addr)
	if err != nil {
		return fail(err)
	}
	if a.Transport != want {
		return fail(fmt.Errorf("want a %s network", want))
	}
	num := DefaultHostNumber
	var ip netip.Addr
	if a.Host == "" {
		ip = n.address(num, a.V6)
	} else {
		if ip, err = netip.ParseAddr(a.Host); err != nil {
			return fail(fmt.Errorf("host %q: want an IP address of the network", a.Host))
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
	return h, netip.AddrPortFrom(ip, a.Port), nil
}

// address is host number num's address on this network.
func (n *Network) address(num int, v6 bool) netip.Addr {
	if v6 {
		return addrplan.IPv6(n.Number(), num)
	}
	return addrplan.IPv4(n.Number(), num)
}

// hostNumber is the n of 192.168.v.n or 2001:db8:v::n, the addresses of
// this network's plan; others are refused.
func (n *Network) hostNumber(ip netip.Addr) (int, error) {
	num, err := addrplan.Host(n.Number(), ip)
	if err != nil {
		return 0, fmt.Errorf("%w: not on network %s: %w", ErrInvalid, n.name, err)
	}
	return num, nil
}

// hostEndpoint returns host number num of this network, starting it on
// first use.
func (n *Network) hostEndpoint(num int) (*netstack.Host, error) {
	n.hostsMu.Lock()
	defer n.hostsMu.Unlock()
	if h := n.hosts[num]; h != nil {
		return h, nil
	}
	n.tb.mu.Lock()
	closed := n.tb.closed
	n.tb.mu.Unlock()
	if closed || n.tb.ctx.Err() != nil {
		return nil, fmt.Errorf("host endpoint: %w", ErrTestbedEnded)
	}
	for _, m := range n.tb.Machines() {
		if slices.Contains(m.cfg.Networks, n.name) && n.tb.machineNumber(m.name) == num {
			return nil, fmt.Errorf("host endpoint %s: %w: it is machine %s's (choose another host number, e.g. %d)",
				n.address(num, false), ErrAddressInUse, m.name, DefaultHostNumber)
		}
	}
	h, err := netstack.New(n.sw, n.Number(), num)
	if err != nil {
		return nil, fmt.Errorf("host endpoint %s: %w", n.address(num, false), err)
	}
	if n.hosts == nil {
		n.hosts = map[int]*netstack.Host{}
		n.tb.onClose(func() { n.closeHosts() })
	}
	n.hosts[num] = h
	return h, nil
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
		h.Close()
	}
}
