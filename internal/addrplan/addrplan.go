// Package addrplan is the address plan of shakedown networks, the one
// place it is written down, shared by the host (switch, host endpoints,
// /etc/hosts) and the guest agent (interface addresses). It imports only
// the standard library.
//
// As in the NixOS test driver, so that scripts port over: host n (a
// machine, or a named host) on network v is 192.168.v.n/24 and
// 2001:db8:v::n/64, the numbers written in decimal digits in the IPv6
// address (network 12, host 34 is 2001:db8:12::34), with the MAC
// 52:54:00:12:vv:nn in hex. Networks are numbered 1..255, hosts 1..254.
package addrplan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Limits of the plan.
const (
	// MaxNetwork is the highest network number, v in 192.168.v.n.
	MaxNetwork = 255
	// MaxHost is the highest host number, n in 192.168.v.n.
	MaxHost = 254
	// Bits4 and Bits6 are the prefix lengths of a network.
	Bits4, Bits6 = 24, 64
)

// ErrNotInPlan is wrapped by errors for addresses outside a network's
// plan.
var ErrNotInPlan = errors.New("address not in the network's plan")

// IPv4 is host n's address on network v: 192.168.v.n.
func IPv4(v, n int) netip.Addr {
	return netip.AddrFrom4([4]byte{192, 168, byte(v), byte(n)})
}

// IPv6 is host n's address on network v: 2001:db8:v::n, v and n in
// decimal digits.
func IPv6(v, n int) netip.Addr {
	return netip.AddrFrom16([16]byte{
		0x20, 0x01, 0x0d, 0xb8,
		byte(decimalHex(v) >> 8), byte(decimalHex(v)),
		14: byte(decimalHex(n) >> 8), 15: byte(decimalHex(n)),
	})
}

// decimalHex reads x's decimal digits as hexadecimal: 34 is 0x34.
func decimalHex(x int) int {
	h, _ := strconv.ParseInt(strconv.Itoa(x), 16, 32)
	return int(h)
}

// Prefix4 and Prefix6 are network v's subnets.
func Prefix4(v int) netip.Prefix { return netip.PrefixFrom(IPv4(v, 0), Bits4) }

// Prefix6 is network v's IPv6 subnet, 2001:db8:v::/64.
func Prefix6(v int) netip.Prefix { return netip.PrefixFrom(IPv6(v, 0), Bits6) }

// MAC is host n's hardware address on network v: 52:54:00:12:vv:nn.
func MAC(v, n int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0x12, byte(v), byte(n)}
}

// Host returns the n of ip on network v: the inverse of IPv4 and IPv6.
// An address outside the network, or with a host part the plan does not
// make, is an error wrapping ErrNotInPlan.
func Host(v int, ip netip.Addr) (int, error) {
	ip = ip.Unmap()
	n := -1
	switch {
	case Prefix4(v).Contains(ip):
		n = int(ip.As4()[3])
	case Prefix6(v).Contains(ip):
		b := ip.As16()
		if b[8]|b[9]|b[10]|b[11]|b[12]|b[13] == 0 {
			// Decimal digits in a hexadecimal group (see IPv6).
			if d, err := strconv.Atoi(fmt.Sprintf("%x", int(b[14])<<8|int(b[15]))); err == nil {
				n = d
			}
		}
	default:
		return 0, fmt.Errorf("%w: %s is outside %s and %s", ErrNotInPlan, ip, Prefix4(v), Prefix6(v))
	}
	if n < 1 || n > MaxHost {
		return 0, fmt.Errorf("%w: %s: want a host number 1 to %d", ErrNotInPlan, ip, MaxHost)
	}
	return n, nil
}

// Name is a name in the plan: a machine's or a host's, with its numbers
// on the network that /etc/hosts names it by.
type Name struct {
	Name         string
	Network, Num int
}

// HostsFile is /etc/hosts for every guest: localhost, then each name by
// its IPv4 and IPv6 address, in the order given.
func HostsFile(names []Name) []byte {
	b := []byte("127.0.0.1 localhost\n::1 localhost\n")
	for _, n := range names {
		b = fmt.Appendf(b, "%s %s\n%s %s\n", IPv4(n.Network, n.Num), n.Name, IPv6(n.Network, n.Num), n.Name)
	}
	return b
}
