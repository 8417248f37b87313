package shakedown

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/internal/addrplan"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
	"github.com/shakedown-dev/shakedown/network"
	"github.com/shakedown-dev/shakedown/network/netstack"
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
	pcap string // the capture's file name in the run directory; "" without

	// faults name peers by Peer.peer(): *machine or *Host.
	faults network.Faults
	mu     sync.Mutex
	ports  map[*machine]*network.Port // the current boot's port of each machine

	hostsMu   sync.Mutex
	hosts     map[int]*netstack.Host // host endpoints by host number (endpoint.go)
	declareMu sync.Mutex             // held while a Host is declared (host.go)
}

// Network declares a network; name must be unique. Calling it again with
// the same name returns the same network.
func (tb *Testbed) Network(name string, opts NetworkOptions) *Network {
	tb.t.Helper()
	n, err := tb.NetworkE(name, opts)
	tb.must(err)
	return n
}

// NetworkE is Network returning its error.
func (tb *Testbed) NetworkE(name string, opts NetworkOptions) (*Network, error) {
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
	n := &Network{tb: tb, name: name, ports: map[*machine]*network.Port{}}
	cfg := network.Config{Name: name, MTU: opts.MTU, Seed: opts.Seed,
		Logf: func(format string, args ...any) { tb.logf("network %s: "+format, append([]any{name}, args...)...) }}
	if opts.Capture {
		n.pcap = name + ".pcap"
		cfg.CapturePath = filepath.Join(tb.dir, n.pcap)
	}
	sw, err := network.New(cfg)
	if err != nil {
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
func (n *Network) Number() int {
	return n.tb.netNums.Of(n.name, func() []string {
		n.tb.mu.Lock()
		defer n.tb.mu.Unlock()
		return slices.Collect(maps.Keys(n.tb.networks))
	})
}

// close stops the switch; machines are stopped already.
func (n *Network) close() {
	n.sw.Close()
}

// machineNumber is the machine's n in 192.168.v.n: machines are numbered
// in name order when the first number is asked for (addrplan.Numbers).
func (tb *Testbed) machineNumber(name string) int {
	return tb.machineNums.Of(name, func() []string {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		return slices.Collect(maps.Keys(tb.machines))
	})
}

// nic is one of a machine's network interfaces for one boot.
type nic struct {
	net  *Network
	port *network.Port
	id   string // QEMU's device id, e.g. nic0
}

// plug makes the machine's ports for one boot, and the QEMU arguments and
// kernel parameter that go with them.
func (m *machine) plug() (nics []nic, args []string, files []*os.File, param string, err error) {
	num := m.tb.machineNumber(m.name)
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
			"-device", fmt.Sprintf("virtio-net-pci,id=%s,netdev=net%d,mac=%s", id, i, addrplan.MAC(n.Number(), num)))
		files = append(files, port.File())
		nics = append(nics, nic{net: n, port: port, id: id})
		if m.cfg.ManualAddresses {
			spec = append(spec, "-")
		} else {
			spec = append(spec, fmt.Sprintf("%d:%d", n.Number(), num))
		}
	}
	if len(spec) > 0 {
		param = agentproto.ParamNet + "=" + strings.Join(spec, ",")
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
func (m *machine) attach(nics []nic) error {
	var errs []error
	for _, c := range nics {
		n := c.net
		n.mu.Lock()
		n.ports[m] = c.port
		n.mu.Unlock()
		errs = append(errs, n.apply())
	}
	return errors.Join(append(errs, m.applyBlocks())...)
}

// detach takes a machine whose QEMU has exited off its networks, so that
// faults applied meanwhile leave it out until its next boot attaches it.
func (m *machine) detach() {
	m.mu.Lock()
	nics := m.nics
	m.nics = nil
	m.mu.Unlock()
	for _, c := range nics {
		c.port.Close()
		c.net.mu.Lock()
		if c.net.ports[m] == c.port {
			delete(c.net.ports, m)
		}
		c.net.mu.Unlock()
	}
}

// apply pushes the network's partition and impairments to its switch. The
// verbs validate what they store, so an error here is a port that went
// away, or a bug; it is returned all the same.
func (n *Network) apply() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faults.Apply(n.sw, n.portOf)
}

// portOf returns the switch port of a peer (Peer.peer()) on this network:
// a machine's current boot's, or a host's; false when it has none now.
// n.mu is held.
func (n *Network) portOf(k any) (network.PortID, bool) {
	switch k := k.(type) {
	case *machine:
		if p := n.ports[k]; p != nil && p.Err() == nil {
			return p.ID(), true
		}
	case *Host:
		if k.n == n {
			return k.ep.Port(), true
		}
	}
	return 0, false
}

// Impair sets the impairment of a peer's link to this network, in both
// directions, replacing an earlier one; the zero Impairment clears it.
// The peer is a *Machine or a *Host.
func (n *Network) Impair(p Peer, imp Impairment) {
	n.tb.t.Helper()
	n.tb.must(n.ImpairE(p, imp))
}

// ImpairE is Impair returning its error: a peer not on the network or an
// impairment out of range (ErrInvalid) changes nothing.
func (n *Network) ImpairE(p Peer, imp Impairment) error {
	if err := n.checkPeers("impair", p); err != nil {
		return err
	}
	if err := n.faults.SetLink(p.peer(), imp); err != nil {
		return fmt.Errorf("impair on network %s: %w: %w", n.name, ErrInvalid, err)
	}
	return n.applyOp("impair")
}

// ImpairPair sets the impairment of frames from a to b on this network.
func (n *Network) ImpairPair(a, b Peer, imp Impairment) {
	n.tb.t.Helper()
	n.tb.must(n.ImpairPairE(a, b, imp))
}

// ImpairPairE is ImpairPair returning its error, as ImpairE.
func (n *Network) ImpairPairE(a, b Peer, imp Impairment) error {
	if err := n.checkPeers("impair pair", a, b); err != nil {
		return err
	}
	if err := n.faults.SetPair(a.peer(), b.peer(), imp); err != nil {
		return fmt.Errorf("impair pair on network %s: %w: %w", n.name, ErrInvalid, err)
	}
	return n.applyOp("impair pair")
}

// applyOp is apply with the operation in its error.
func (n *Network) applyOp(op string) error {
	n.tb.rec.Event("", "network "+n.name+": "+op)
	if err := n.apply(); err != nil {
		return fmt.Errorf("%s on network %s: %w", op, n.name, err)
	}
	return nil
}

// checkPeers says which of ps is not on this network.
func (n *Network) checkPeers(op string, ps ...Peer) error {
	for _, p := range ps {
		switch k := p.peer().(type) {
		case *machine:
			if !slices.Contains(k.cfg.Networks, n.name) {
				return fmt.Errorf("%s on network %s: %w: machine %s is not on it (it joins %v)", op, n.name, ErrInvalid, k.name, k.cfg.Networks)
			}
		case *Host:
			if k.n != n {
				return fmt.Errorf("%s on network %s: %w: host %s is on network %s", op, n.name, ErrInvalid, k.name, k.n.name)
			}
		}
	}
	return nil
}

// ClearImpairments removes every impairment of this network.
func (n *Network) ClearImpairments() {
	n.tb.t.Helper()
	n.tb.must(n.ClearImpairmentsE())
}

// ClearImpairmentsE is ClearImpairments returning its error.
func (n *Network) ClearImpairmentsE() error {
	n.faults.ClearImpairments()
	return n.applyOp("clear impairments")
}

// Partition splits the peers (machines and hosts) into groups that cannot
// reach each other on any network, until Heal; a peer in no group still
// reaches all. A host takes part on its own network.
func (tb *Testbed) Partition(groups ...[]Peer) {
	tb.t.Helper()
	tb.must(tb.PartitionE(groups...))
}

// PartitionE is Partition returning its error: a peer in two groups
// (ErrInvalid) changes nothing.
func (tb *Testbed) PartitionE(groups ...[]Peer) error {
	if _, err := peerGroups(groups); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	var errs []error
	for _, n := range tb.allNetworks() {
		errs = append(errs, n.PartitionE(groups...))
	}
	return errors.Join(errs...)
}

// Heal ends a partition on every network.
func (tb *Testbed) Heal() {
	tb.t.Helper()
	tb.must(tb.HealE())
}

// HealE is Heal returning its error.
func (tb *Testbed) HealE() error {
	var errs []error
	for _, n := range tb.allNetworks() {
		errs = append(errs, n.HealE())
	}
	return errors.Join(errs...)
}

// peerGroups is a partition's groups by Peer.peer(); a peer in two
// groups is refused.
func peerGroups(groups [][]Peer) ([][]any, error) {
	gs := make([][]any, len(groups))
	in := map[any]int{}
	for g, ps := range groups {
		for _, p := range ps {
			if h, ok := in[p.peer()]; ok && h != g {
				return nil, fmt.Errorf("%w: %s is in groups %d and %d (a peer belongs to one group, or to none to reach all)", ErrInvalid, p.Name(), h+1, g+1)
			}
			in[p.peer()] = g
			gs[g] = append(gs[g], p.peer())
		}
	}
	return gs, nil
}

// Partition splits the peers (machines and hosts) into groups that
// cannot reach each other on this network only, until Heal; a peer in no
// group, like a host endpoint used by Listen or Dial, still reaches all.
// It replaces an earlier partition of this network, and holds across
// reboots.
func (n *Network) Partition(groups ...[]Peer) {
	n.tb.t.Helper()
	n.tb.must(n.PartitionE(groups...))
}

// PartitionE is Partition returning its error, as Testbed.PartitionE.
func (n *Network) PartitionE(groups ...[]Peer) error {
	gs, err := peerGroups(groups)
	if err != nil {
		return fmt.Errorf("partition network %s: %w", n.name, err)
	}
	n.faults.Partition(gs)
	return n.applyOp("partition")
}

// Heal ends this network's partition.
func (n *Network) Heal() {
	n.tb.t.Helper()
	n.tb.must(n.HealE())
}

// HealE is Heal returning its error.
func (n *Network) HealE() error {
	n.faults.Heal()
	return n.applyOp("heal")
}

// allNetworks returns the networks in name order.
func (tb *Testbed) allNetworks() []*Network {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.SortedFunc(maps.Values(tb.networks), func(a, b *Network) int { return strings.Compare(a.name, b.name) })
}

// Block cuts the machine's links: to the networks named, or to all of its
// networks when none is named. The guest sees the carrier go down, and
// nothing passes either way, until Unblock.
func (m *Machine) Block(networks ...string) {
	m.t().Helper()
	m.must(m.BlockE(networks...))
}

// BlockE is Block returning its error: a network the machine is not on
// (ErrInvalid) changes nothing.
func (m *Machine) BlockE(networks ...string) error {
	return m.wrap(m.setBlocked(networks, true))
}

// Unblock restores links cut by Block.
func (m *Machine) Unblock(networks ...string) {
	m.t().Helper()
	m.must(m.UnblockE(networks...))
}

// UnblockE is Unblock returning its error.
func (m *Machine) UnblockE(networks ...string) error {
	return m.wrap(m.setBlocked(networks, false))
}

func (m *Machine) setBlocked(networks []string, blocked bool) error {
	if len(networks) == 0 {
		networks = m.cfg.Networks
	}
	for _, name := range networks {
		if !slices.Contains(m.cfg.Networks, name) {
			return fmt.Errorf("block: %w: %s is not on network %q (it joins %v)", ErrInvalid, m.name, name, m.cfg.Networks)
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
	m.tb.rec.Event(m.name, map[bool]string{true: "block ", false: "unblock "}[blocked]+strings.Join(networks, " "))
	return m.applyBlocks()
}

// qmpLinkTimeout bounds QEMU's answer to a link change: a monitor command
// that QEMU answers in milliseconds, unless it is stuck.
const qmpLinkTimeout = 10 * time.Second

// applyBlocks sets the links of the running boot as Block left them: in
// the switch, so nothing passes, and in QEMU, so the guest sees it.
func (m *machine) applyBlocks() error {
	m.mu.Lock()
	v, nics := m.vm, m.nics
	blocked := make(map[string]bool, len(m.blocked))
	for k, v := range m.blocked {
		blocked[k] = v
	}
	m.mu.Unlock()
	var errs []error
	for _, c := range nics {
		up := !blocked[c.net.name]
		if err := c.net.sw.SetLink(c.port.ID(), up); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", c.net.name, err))
		}
		if v != nil && v.Running() {
			ctx, cancel := context.WithTimeout(m.tb.ctx, qmpLinkTimeout)
			err := v.Proc.QMP.SetLink(ctx, c.id, up)
			cancel()
			if err != nil && v.Running() {
				errs = append(errs, fmt.Errorf("network %s: qemu link %s: %w", c.net.name, c.id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// hostsFile is /etc/hosts for every guest: each machine with a network,
// by its first network's address, as in the NixOS driver, then each Host.
func (tb *Testbed) hostsFile() []byte {
	var names []addrplan.Name
	for _, m := range tb.Machines() {
		if name, ok := m.hostsName(); ok {
			names = append(names, name)
		}
	}
	for _, h := range tb.Hosts() {
		names = append(names, addrplan.Name{Name: h.name, Network: h.n.Number(), Num: h.num})
	}
	return addrplan.HostsFile(names)
}

// hostsName is the machine's line in /etc/hosts: its first network's
// address, as in the NixOS driver; false for a machine with no network,
// or with ManualAddresses, which /etc/hosts leaves out.
func (m *machine) hostsName() (addrplan.Name, bool) {
	if len(m.cfg.Networks) == 0 || m.cfg.ManualAddresses {
		return addrplan.Name{}, false
	}
	v := m.tb.lookupNetwork(m.cfg.Networks[0]).Number()
	return addrplan.Name{Name: m.name, Network: v, Num: m.tb.machineNumber(m.name)}, true
}

// Addr returns the machine's IPv4 address on its first network,
// 192.168.v.n: the one every guest's /etc/hosts names it by, for code that
// names machines elsewhere (a stand-in DNS server, say). It is the zero
// Addr for a machine with no network or with ManualAddresses. Asking fixes
// the numbering of machines, as starting one does: declare them all first.
func (m *Machine) Addr() netip.Addr { return m.firstAddr(addrplan.IPv4) }

// Addr6 is Addr for IPv6: 2001:db8:v::n on the first network.
func (m *Machine) Addr6() netip.Addr { return m.firstAddr(addrplan.IPv6) }

func (m *machine) firstAddr(addr func(v, n int) netip.Addr) netip.Addr {
	if name, ok := m.hostsName(); ok {
		return addr(name.Network, name.Num)
	}
	return netip.Addr{}
}
