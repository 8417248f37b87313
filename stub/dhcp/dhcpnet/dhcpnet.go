// Package dhcpnet puts a dhcpstub.Server on a shakedown testbed: as a
// named host on a network, which machines (ManualAddresses ones running a
// DHCP client) reach by broadcast on port 67, with a Config drawn from
// the testbed's address plan. It imports the root package shakedown,
// internal/addrplan and stub/dhcp; stub/dhcp itself imports nothing of
// shakedown's, so that it stays usable on its own.
//
//	cfg := dhcpnet.ForNetwork(lan)           // 192.168.v.0/24, server .250, pool .100-.199
//	cfg.StaticFunc = dhcpnet.Planned(lan)    // machines get their planned addresses
//	cfg.Logf = t.Logf
//	s := dhcpstub.New(cfg)
//	t.Cleanup(func() { s.Close() })
//	srv, err := dhcpnet.Attach(lan, "dhcp", s) // host 192.168.v.250, UDP port 67
//	web := tb.Machine("web", shakedown.MachineConfig{Networks: []string{"lan"}, ManualAddresses: true,
//		Files: []shakedown.File{dhcpnet.UdhcpcScript("/etc/udhcpc.script")}})
//	tb.StartAll()
//	web.Succeed("udhcpc -q -i eth0 -s /etc/udhcpc.script -x hostname:web") // busybox's client, once
//	ev, err := s.WaitForLease(ctx, dhcpstub.Match{Hostname: "web"})
//
// An initramfs machine has busybox's udhcpc and no script for it:
// UdhcpcScript is one. A Debian machine has systemd-networkd, with a
// .network file that asks for DHCP (see the package's guest tests).
//
// The host's socket takes the broadcasts clients send from 0.0.0.0:68 to
// 255.255.255.255:67, and its replies to 255.255.255.255:68 go out to the
// Ethernet broadcast address: see network/netstack's Host.ListenPacket.
package dhcpnet

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/addrplan"
	dhcpstub "github.com/shakedown-dev/shakedown/stub/dhcp"
)

// ServerNumber is the host number of the server ForNetwork configures,
// 192.168.v.250: clear of the machines (numbered from 1 up), of the pool
// (.100 to .199) and of the hosts Network.Host numbers itself (253 down),
// unless a network has four of those before the server.
const ServerNumber = 250

// ForNetwork is a Config for a server on network n, from the address
// plan: the subnet 192.168.v.0/24, the server at 192.168.v.250
// (ServerNumber), and the default pool, .100 to .199. Other fields are
// the zero Config's; set options (Router, DNS, ...) and StaticFunc
// (Planned) on it before dhcpstub.New.
func ForNetwork(n *shakedown.Network) dhcpstub.Config {
	return dhcpstub.Config{
		Subnet:   addrplan.Prefix4(n.Number()),
		ServerID: addrplan.IPv4(n.Number(), ServerNumber),
	}
}

// Planned is a Config.StaticFunc that gives each machine on network n the
// address the plan gives it, 192.168.v.n, by its MAC there,
// 52:54:00:12:vv:nn (QEMU's NIC of the machine on n): a machine with
// ManualAddresses that runs a DHCP client gets the address /etc/hosts
// would name it by. Other MACs get pool addresses.
func Planned(n *shakedown.Network) func(mac net.HardwareAddr) netip.Addr {
	v := n.Number()
	prefix := addrplan.MAC(v, 0)[:5]
	return func(mac net.HardwareAddr) netip.Addr {
		if len(mac) != 6 || !bytes.Equal(mac[:5], prefix) || mac[5] < 1 || int(mac[5]) > addrplan.MaxHost {
			return netip.Addr{}
		}
		return addrplan.IPv4(v, int(mac[5]))
	}
}

// Attach declares a host named name on network n at s's server
// identifier (Config.ServerID, from ForNetwork: 192.168.v.250) and serves
// s from it on UDP port 67 until the testbed ends (its hosts' listeners
// close then) or s is closed. The server identifier must be an address of
// n's plan, since clients send their renewals to it.
func Attach(n *shakedown.Network, name string, s *dhcpstub.Server) (*shakedown.Host, error) {
	id := s.Config().ServerID
	num, err := addrplan.Host(n.Number(), id)
	if err != nil || !id.Is4() {
		return nil, fmt.Errorf("attach dhcp stub as host %s: server identifier %s is no address of network %s (%s): build the Config with dhcpnet.ForNetwork",
			name, id, n.Name(), addrplan.Prefix4(n.Number()))
	}
	h, err := n.HostE(name, shakedown.HostOptions{Number: num})
	if err != nil {
		return nil, fmt.Errorf("attach dhcp stub: %w", err)
	}
	if err := Serve(h, s); err != nil {
		return nil, err
	}
	return h, nil
}

// Serve serves s from host h, declared by the caller, on UDP port 67 as
// Attach does. s's server identifier must be h's address.
func Serve(h *shakedown.Host, s *dhcpstub.Server) error {
	if id := s.Config().ServerID; id != h.Addr() {
		return fmt.Errorf("serve dhcp stub on host %s: server identifier %s is not the host's address %s: set Config.ServerID to it",
			h.Name(), id, h.Addr())
	}
	// A bad Config's error would be lost in the goroutine: check first.
	if err := s.Check(); err != nil {
		return fmt.Errorf("serve dhcp stub on host %s: %w", h.Name(), err)
	}
	pc, err := h.ListenPacket("udp4", ":67")
	if err != nil {
		return fmt.Errorf("serve dhcp stub on host %s: %w", h.Name(), err)
	}
	// Serve returns when the testbed closes the host's listeners, or when
	// s closes: the goroutine lives no longer than either.
	go s.Serve(pc)
	return nil
}
