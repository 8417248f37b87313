package shakedown

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/network/netstack"
)

// Peer is what plugs into a network and what faults single out: a
// *Machine or a *Host. Impair, ImpairPair and Partition take peers.
type Peer interface {
	// peer returns the identity behind the handle, the same for every
	// handle of one machine (WithT, WithTimeout): *machine or *Host.
	peer() any
	// Name is the machine's or host's name.
	Name() string
}

func (m *Machine) peer() any { return m.machine }

// Host is a named host endpoint: a virtual host of Go code in the test on
// one network, a gVisor netstack plugged into the network's switch. Every
// guest's /etc/hosts lists it by name, as it lists machines, and faults
// reach it as they reach machines: Impair, ImpairPair, Partition, Block.
// It lives until the testbed ends.
type Host struct {
	n    *Network
	name string
	num  int
	ep   *netstack.Host
}

// HostOptions configure a host endpoint. The zero value picks its number.
type HostOptions struct {
	// Number is the host's n in 192.168.v.n and 2001:db8:v::n. 0 takes
	// the highest number free below DefaultHostNumber: 253, then 252, ...
	// Machines are numbered from 1 up, so the two meet only in a testbed
	// of some 250 machines and hosts.
	Number int
	// Gateway, if set, is a router machine's IPv4 address on this network,
	// the host's default route (and its IPv6 twin's): so machines on other
	// networks reach the host.
	Gateway netip.Addr
}

// Host declares a host endpoint named name on the network and starts it;
// its name must differ from every machine's and every other host's.
// Calling Host again with the same name returns the same host. Hosts
// declared before the machines start are in their /etc/hosts at boot;
// a later one is added to the /etc/hosts of every running machine.
func (n *Network) Host(name string, opts HostOptions) *Host {
	n.tb.t.Helper()
	h, err := n.HostE(name, opts)
	n.tb.must(err)
	return h
}

// HostE is Host returning its error.
func (n *Network) HostE(name string, opts HostOptions) (*Host, error) {
	if err := CheckName("host", name); err != nil {
		return nil, err
	}
	// One declaration at a time on a network, so that two cannot pick
	// one number, or declare one name twice.
	n.declareMu.Lock()
	defer n.declareMu.Unlock()
	tb := n.tb
	tb.mu.Lock()
	if h, ok := tb.hosts[name]; ok {
		tb.mu.Unlock()
		if h.n != n || opts.Number != 0 && opts.Number != h.num {
			return nil, fmt.Errorf("host %s: declared already, as %s on network %s", name, h.Addr(), h.n.name)
		}
		return h, nil
	}
	_, clash := tb.machines[name]
	tb.mu.Unlock()
	if clash {
		return nil, fmt.Errorf("host %s: a machine has that name (names go in /etc/hosts, so hosts and machines need different ones)", name)
	}
	if opts.Number < 0 || opts.Number > DefaultHostNumber {
		return nil, fmt.Errorf("host %s: %w: number %d: want 1 to %d, or 0 to pick one", name, ErrInvalid, opts.Number, DefaultHostNumber)
	}

	n.hostsMu.Lock()
	num := opts.Number
	if num == 0 {
		num = n.freeHostNumber()
	}
	n.hostsMu.Unlock()
	if num == 0 {
		return nil, fmt.Errorf("host %s: no host number left on network %s", name, n.name)
	}
	if other := n.namedHost(num); other != nil {
		return nil, fmt.Errorf("host %s: %s: %w: it is host %s's (choose another HostOptions.Number, or 0)", name, n.address(num, false), ErrAddressInUse, other.name)
	}
	ep, err := n.hostEndpoint(num)
	if err == nil && opts.Gateway.IsValid() {
		err = ep.SetGateway(opts.Gateway)
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	h := &Host{n: n, name: name, num: num, ep: ep}

	tb.mu.Lock()
	if other, ok := tb.hosts[name]; ok {
		// Declared on another network meanwhile.
		tb.mu.Unlock()
		return nil, fmt.Errorf("host %s: declared already, as %s on network %s", name, other.Addr(), other.n.name)
	}
	if tb.hosts == nil {
		tb.hosts = map[string]*Host{}
	}
	tb.hosts[name] = h
	tb.mu.Unlock()
	// Standing faults of this host, if it was named in them.
	if err := n.apply(); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	if err := tb.refreshHostsFiles(); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	return h, nil
}

// freeHostNumber returns the highest host number below DefaultHostNumber
// that no machine on the network and no host endpoint holds, or 0.
// n.hostsMu is held.
func (n *Network) freeHostNumber() int {
	var machines []int
	for _, m := range n.tb.Machines() {
		if slices.Contains(m.cfg.Networks, n.name) {
			machines = append(machines, n.tb.machineNumber(m.name))
		}
	}
	for num := DefaultHostNumber - 1; num >= 1; num-- {
		if n.hosts[num] == nil && !slices.Contains(machines, num) {
			return num
		}
	}
	return 0
}

// namedHost returns the Host holding number num on this network, if any.
func (n *Network) namedHost(num int) *Host {
	for _, h := range n.tb.Hosts() {
		if h.n == n && h.num == num {
			return h
		}
	}
	return nil
}

// Hosts returns the declared hosts in name order.
func (tb *Testbed) Hosts() []*Host {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.SortedFunc(maps.Values(tb.hosts), func(a, b *Host) int { return strings.Compare(a.name, b.name) })
}

func (h *Host) peer() any { return h }

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// Network returns the network the host is on.
func (h *Host) Network() *Network { return h.n }

// Number returns the host's n in 192.168.v.n.
func (h *Host) Number() int { return h.num }

// Addr returns the host's IPv4 address, 192.168.v.n.
func (h *Host) Addr() netip.Addr { return h.n.address(h.num, false) }

// Addr6 returns the host's IPv6 address, 2001:db8:v::n.
func (h *Host) Addr6() netip.Addr { return h.n.address(h.num, true) }

// Listen announces a TCP service on the host: network is "tcp", "tcp4" or
// "tcp6" (the host's IPv6 address), addr is ":port" (or "NAME:port" with
// the host's own name or address).
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	local, err := h.local(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s on host %s: %w", network, addr, h.name, err)
	}
	return h.n.Listen(network, local)
}

// ListenPacket is Listen for UDP: network is "udp", "udp4" or "udp6".
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	local, err := h.local(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s on host %s: %w", network, addr, h.name, err)
	}
	return h.n.ListenPacket(network, local)
}

// Dial connects from the host to addr, "host:port", host being an
// address of the host's network or the name of a machine or host on it.
// network and ctx are as for Network.Dial.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := h.n.dialFrom(ctx, h.num, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from host %s: %w", network, addr, h.name, err)
	}
	return c, nil
}

// Block cuts the host's link, as Machine.Block cuts a machine's: nothing
// passes either way until Unblock.
func (h *Host) Block() {
	h.n.tb.t.Helper()
	h.n.tb.must(h.BlockE())
}

// BlockE is Block returning its error: the testbed has ended.
func (h *Host) BlockE() error { return h.setLink(false) }

// Unblock restores the link Block cut.
func (h *Host) Unblock() {
	h.n.tb.t.Helper()
	h.n.tb.must(h.UnblockE())
}

// UnblockE is Unblock returning its error.
func (h *Host) UnblockE() error { return h.setLink(true) }

func (h *Host) setLink(up bool) error {
	if err := h.n.sw.SetLink(h.ep.Port(), up); err != nil {
		return fmt.Errorf("host %s: link: %w", h.name, err)
	}
	return nil
}

// local turns ":port" or "NAME:port" into the host's address and port
// for network's family.
func (h *Host) local(network, addr string) (string, error) {
	a, err := netstack.ParseAddress(network, addr)
	if err != nil {
		return "", err
	}
	ip := h.n.address(h.num, a.V6)
	if a.Host != "" && a.Host != h.name {
		want, err := netip.ParseAddr(a.Host)
		if err != nil || want.Unmap() != ip {
			return "", fmt.Errorf("host %q: want \":PORT\", or the host's own name or address (%s)", a.Host, ip)
		}
	}
	return netip.AddrPortFrom(ip, a.Port).String(), nil
}

// refreshHostsFiles rewrites /etc/hosts in every running machine, for a
// host declared after they booted.
func (tb *Testbed) refreshHostsFiles() error {
	data := tb.hostsFile()
	for _, m := range tb.Machines() {
		v := m.current()
		if v == nil || !v.Running() || v.Agent() == nil || len(m.cfg.Networks) == 0 {
			continue
		}
		client := v.Agent()
		if err := client.WriteFile("/etc/hosts", data); err != nil {
			return fmt.Errorf("update /etc/hosts of %s: %w", m.name, err)
		}
	}
	return nil
}
