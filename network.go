package shakedown

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/shakedown-dev/shakedown/network"
	"github.com/shakedown-dev/shakedown/qemu"
)

// Impairment is what a link or a pair of machines suffers: loss, delay
// with jitter, rate limit, duplication, reordering, corruption.
type Impairment = network.Impairment

// NetworkOptions configure a network. The zero value is a switch with a
// 1500-byte MTU and no capture.
type NetworkOptions struct {
	// MTU is the largest frame payload; 0 means 1500. Jumbo frames are
	// allowed.
	MTU int
	// Capture writes every frame entering the switch to NAME.pcap in the
	// artifacts directory (kept when the test fails), for Wireshark or
	// tshark.
	Capture bool
	// Seed makes impairments reproducible.
	Seed uint64
}

// Network is an isolated L2 network (a VLAN in NixOS terms): an
// in-process switch that the machines joining it are plugged into. A
// machine on network v gets 192.168.v.n/24 and 2001:db8:v::n/64 on the
// interface of that network, n being its number; there is no route out.
type Network struct {
	tb   *Testbed
	name string
	sw   *network.Switch
	pcap *os.File

	// Faults name peers by Peer.peer(): *machine or *Host.
	mu     sync.Mutex
	ports  map[*machine]*network.Port // the current boot's port of each machine
	link   map[any]Impairment         // per peer, in both directions
	pair   map[[2]any]Impairment      // per ordered pair of peers
	groups [][]any                    // the partition, nil when healed

	hostsMu   sync.Mutex
	hosts     map[int]*hostEndpoint // host endpoints by host number (endpoint.go)
	declareMu sync.Mutex            // held while a Host is declared (host.go)
}

// Network declares a network; name must be unique. Calling it again with
// the same name returns the same network.
func (tb *Testbed) Network(name string, opts NetworkOptions) *Network {
	tb.t.Helper()
	n, err := tb.network(name, opts)
	if err != nil {
		tb.t.Fatalf("shakedown: %v", err)
	}
	return n
}

func (tb *Testbed) network(name string, opts NetworkOptions) (*Network, error) {
	if err := CheckName("network", name); err != nil {
		return nil, err
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if n, ok := tb.networks[name]; ok {
		return n, nil
	}
	if len(tb.networks) == 255 {
		return nil, fmt.Errorf("network %s: a testbed holds at most 255 networks", name)
	}
	n := &Network{tb: tb, name: name, ports: map[*machine]*network.Port{},
		link: map[any]Impairment{}, pair: map[[2]any]Impairment{}}
	cfg := network.Config{Name: name, MTU: opts.MTU, Seed: opts.Seed,
		Logf: func(format string, args ...any) { tb.logf("network %s: "+format, append([]any{name}, args...)...) }}
	if opts.Capture {
		f, err := os.Create(filepath.Join(tb.dir, name+".pcap"))
		if err != nil {
			return nil, fmt.Errorf("network %s: capture: %w", name, err)
		}
		n.pcap, cfg.Capture = f, f
	}
	sw, err := network.New(cfg)
	if err != nil {
		if n.pcap != nil {
			n.pcap.Close()
		}
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	n.sw = sw
	if tb.networks == nil {
		tb.networks = map[string]*Network{}
	}
	tb.networks[name] = n
	return n, nil
}

// Name returns the network's name.
func (n *Network) Name() string { return n.name }

// Number returns the network's number v, as in 192.168.v.n.
func (n *Network) Number() int { return n.tb.numberOf(netKind, n.name) }

// close stops the switch; machines are stopped already.
func (n *Network) close() {
	n.sw.Close()
	if n.pcap != nil {
		n.pcap.Close()
	}
}

// Numbers. Machines are numbered 1..254 and networks 1..255 in name order,
// as the NixOS driver numbers them. The order is fixed when the first
// machine starts (or a number is first asked for); anything declared later
// takes the next free number, so no running machine's address changes.
const (
	machineKind = "machine"
	netKind     = "network"
)

func (tb *Testbed) numberOf(kind, name string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.numbers == nil {
		tb.numbers = map[string]map[string]int{
			machineKind: {},
			netKind:     {},
		}
		for _, k := range []string{machineKind, netKind} {
			var names []string
			if k == machineKind {
				for n := range tb.machines {
					names = append(names, n)
				}
			} else {
				for n := range tb.networks {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			for i, n := range names {
				tb.numbers[k][n] = i + 1
			}
		}
	}
	if num, ok := tb.numbers[kind][name]; ok {
		return num
	}
	num := len(tb.numbers[kind]) + 1
	tb.numbers[kind][name] = num
	return num
}

// nic is one of a machine's network interfaces for one boot.
type nic struct {
	net  *Network
	port *network.Port
	id   string // QEMU's device id, e.g. nic0
}

// macAddress is 52:54:00:12:NET:HOST, the numbers in hex.
func macAddress(netNum, hostNum int) string {
	return fmt.Sprintf("52:54:00:12:%02x:%02x", netNum, hostNum)
}

// plug makes the machine's ports for one boot, and the QEMU arguments and
// kernel parameter that go with them.
func (m *machine) plug() (nics []nic, args []string, files []*os.File, param string, err error) {
	num := m.tb.numberOf(machineKind, m.name)
	var spec []string
	for i, name := range m.cfg.Networks {
		n := m.tb.lookupNetwork(name)
		n.hostsMu.Lock()
		_, clash := n.hosts[num]
		n.hostsMu.Unlock()
		if clash {
			for _, c := range nics {
				c.port.Close()
			}
			return nil, nil, nil, "", fmt.Errorf("network %s: %s is a host endpoint's, declared before %s took number %d (give the host another HostOptions.Number)",
				name, n.address(num, false), m.name, num)
		}
		port, err := n.sw.AddPort(m.name)
		if err != nil {
			for _, c := range nics {
				c.port.Close()
			}
			return nil, nil, nil, "", fmt.Errorf("network %s: %w", name, err)
		}
		id := fmt.Sprintf("nic%d", i)
		args = append(args,
			"-netdev", port.Netdev(fmt.Sprintf("net%d", i), qemu.FirstExtraFD+len(files)),
			"-device", fmt.Sprintf("virtio-net-pci,id=%s,netdev=net%d,mac=%s", id, i, macAddress(n.Number(), num)))
		files = append(files, port.File())
		nics = append(nics, nic{net: n, port: port, id: id})
		if m.cfg.ManualAddresses {
			spec = append(spec, "-")
		} else {
			spec = append(spec, fmt.Sprintf("%d:%d", n.Number(), num))
		}
	}
	if len(spec) > 0 {
		param = "shakedown.net=" + strings.Join(spec, ",")
	}
	return nics, args, files, param, nil
}

func (tb *Testbed) lookupNetwork(name string) *Network {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.networks[name]
}

// attach records the boot's ports and applies the network's standing
// faults to them: a reboot gets new ports, not a clean slate.
func (m *machine) attach(nics []nic) {
	for _, c := range nics {
		n := c.net
		n.mu.Lock()
		n.ports[m] = c.port
		n.mu.Unlock()
		n.apply()
	}
	m.applyBlocks()
}

// apply pushes the network's partition and impairments to its switch.
func (n *Network) apply() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sw.ClearImpairments()
	for k, imp := range n.link {
		if id, ok := n.portOf(k); ok {
			n.sw.SetImpairment(id, imp)
		}
	}
	for k, imp := range n.pair {
		a, aok := n.portOf(k[0])
		b, bok := n.portOf(k[1])
		if aok && bok {
			n.sw.SetPairImpairment(a, b, imp)
		}
	}
	if n.groups == nil {
		n.sw.Heal()
		return
	}
	var groups [][]network.PortID
	for _, g := range n.groups {
		var ids []network.PortID
		for _, k := range g {
			if id, ok := n.portOf(k); ok {
				ids = append(ids, id)
			}
		}
		groups = append(groups, ids)
	}
	n.sw.Partition(groups...)
}

// portOf returns the switch port of a peer (Peer.peer()) on this network:
// a machine's current boot's, or a host's; false when it has none now.
// n.mu is held.
func (n *Network) portOf(k any) (network.PortID, bool) {
	switch k := k.(type) {
	case *machine:
		if p := n.ports[k]; p != nil {
			return p.ID(), true
		}
	case *Host:
		if k.n == n {
			return k.ep.port.ID(), true
		}
	}
	return 0, false
}

// Impair sets the impairment of a peer's link to this network, in both
// directions, replacing an earlier one; the zero Impairment clears it.
// The peer is a *Machine or a *Host.
func (n *Network) Impair(p Peer, imp Impairment) {
	n.tb.t.Helper()
	if err := n.checkPeers("impair", p); err != nil {
		n.tb.t.Fatalf("shakedown: %v", err)
	}
	n.mu.Lock()
	if imp.IsZero() {
		delete(n.link, p.peer())
	} else {
		n.link[p.peer()] = imp
	}
	n.mu.Unlock()
	n.apply()
}

// ImpairPair sets the impairment of frames from a to b on this network.
func (n *Network) ImpairPair(a, b Peer, imp Impairment) {
	n.tb.t.Helper()
	if err := n.checkPeers("impair pair", a, b); err != nil {
		n.tb.t.Fatalf("shakedown: %v", err)
	}
	n.mu.Lock()
	k := [2]any{a.peer(), b.peer()}
	if imp.IsZero() {
		delete(n.pair, k)
	} else {
		n.pair[k] = imp
	}
	n.mu.Unlock()
	n.apply()
}

// checkPeers says which of ps is not on this network.
func (n *Network) checkPeers(op string, ps ...Peer) error {
	for _, p := range ps {
		switch k := p.peer().(type) {
		case *machine:
			if !contains(k.cfg.Networks, n.name) {
				return fmt.Errorf("%s on network %s: machine %s is not on it (it joins %v)", op, n.name, k.name, k.cfg.Networks)
			}
		case *Host:
			if k.n != n {
				return fmt.Errorf("%s on network %s: host %s is on network %s", op, n.name, k.name, k.n.name)
			}
		}
	}
	return nil
}

// ClearImpairments removes every impairment of this network.
func (n *Network) ClearImpairments() {
	n.mu.Lock()
	n.link = map[any]Impairment{}
	n.pair = map[[2]any]Impairment{}
	n.mu.Unlock()
	n.apply()
}

// Partition splits the peers (machines and hosts) into groups that cannot
// reach each other on any network, until Heal; a peer in no group still
// reaches all. A host takes part on its own network.
func (tb *Testbed) Partition(groups ...[]Peer) {
	for _, n := range tb.allNetworks() {
		n.Partition(groups...)
	}
}

// Heal ends a partition on every network.
func (tb *Testbed) Heal() {
	for _, n := range tb.allNetworks() {
		n.Heal()
	}
}

// Partition splits the peers (machines and hosts) into groups that
// cannot reach each other on this network only, until Heal; a peer in no
// group, like a host endpoint used by Listen or Dial, still reaches all.
// It replaces an earlier partition of this network, and holds across
// reboots.
func (n *Network) Partition(groups ...[]Peer) {
	var gs [][]any
	for _, g := range groups {
		var ks []any
		for _, p := range g {
			ks = append(ks, p.peer())
		}
		gs = append(gs, ks)
	}
	n.mu.Lock()
	n.groups = gs
	n.mu.Unlock()
	n.apply()
}

// Heal ends this network's partition.
func (n *Network) Heal() {
	n.mu.Lock()
	n.groups = nil
	n.mu.Unlock()
	n.apply()
}

func (tb *Testbed) allNetworks() []*Network {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	ns := make([]*Network, 0, len(tb.networks))
	for _, n := range tb.networks {
		ns = append(ns, n)
	}
	return ns
}

// Block cuts the machine's links: to the networks named, or to all of its
// networks when none is named. The guest sees the carrier go down, and
// nothing passes either way, until Unblock.
func (m *Machine) Block(networks ...string) {
	m.t().Helper()
	if err := m.setBlocked(networks, true); err != nil {
		m.fatal(err)
	}
}

// Unblock restores links cut by Block.
func (m *Machine) Unblock(networks ...string) {
	m.t().Helper()
	if err := m.setBlocked(networks, false); err != nil {
		m.fatal(err)
	}
}

func (m *Machine) setBlocked(networks []string, blocked bool) error {
	if len(networks) == 0 {
		networks = m.cfg.Networks
	}
	for _, name := range networks {
		if !contains(m.cfg.Networks, name) {
			return fmt.Errorf("block: %s is not on network %q (it joins %v)", m.name, name, m.cfg.Networks)
		}
	}
	m.mu.Lock()
	if m.blocked == nil {
		m.blocked = map[string]bool{}
	}
	for _, name := range networks {
		m.blocked[name] = blocked
	}
	m.mu.Unlock()
	m.applyBlocks()
	return nil
}

// applyBlocks sets the links of the running boot as Block left them: in
// the switch, so nothing passes, and in QEMU, so the guest sees it.
func (m *machine) applyBlocks() {
	m.mu.Lock()
	proc, nics := m.proc, m.nics
	blocked := make(map[string]bool, len(m.blocked))
	for k, v := range m.blocked {
		blocked[k] = v
	}
	m.mu.Unlock()
	for _, c := range nics {
		up := !blocked[c.net.name]
		c.net.sw.SetLink(c.port.ID(), up)
		if proc != nil && !proc.Exited() {
			proc.QMP.SetLink(context.Background(), c.id, up)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hostsFile is /etc/hosts for every guest: each machine with a network,
// by its first address, as in the NixOS driver, then each Host.
func (tb *Testbed) hostsFile() []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n::1 localhost\n")
	for _, m := range tb.Machines() {
		if len(m.cfg.Networks) == 0 || m.cfg.ManualAddresses {
			continue
		}
		n := tb.lookupNetwork(m.cfg.Networks[0])
		num := tb.numberOf(machineKind, m.name)
		fmt.Fprintf(&b, "192.168.%d.%d %s\n", n.Number(), num, m.name)
		fmt.Fprintf(&b, "2001:db8:%d::%d %s\n", n.Number(), num, m.name)
	}
	for _, h := range tb.Hosts() {
		fmt.Fprintf(&b, "%s %s\n%s %s\n", h.Addr(), h.name, h.Addr6(), h.name)
	}
	return []byte(b.String())
}
