package dhcpstub

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// Defaults of a zero Config.
const (
	// DefaultLeaseTime is the lease of a zero Config.LeaseTime: long
	// beside a test, so that no client renews unless the test asks for
	// short leases.
	DefaultLeaseTime = time.Hour
	// DefaultLogLimit is how many events the log keeps when
	// Config.LogLimit is 0: enough for any test's assertions, bounded so
	// that a client stuck retrying cannot grow it without end.
	DefaultLogLimit = eventlog.DefaultLimit
	// offerHold is how long an offer keeps its address from other
	// clients: the client's REQUEST comes within seconds, or it starts
	// over with a DISCOVER.
	offerHold = time.Minute
)

// DefaultSubnet is the subnet of a zero Config.Subnet: TEST-NET-1
// (RFC 5737), whose addresses are no real host's.
var DefaultSubnet = netip.MustParsePrefix("192.0.2.0/24")

// Config configures a Server. The zero value serves DefaultSubnet from a
// pool in its middle (192.0.2.100 to .199), as server 192.0.2.1, with
// DefaultLeaseTime leases and no options beyond the subnet mask.
type Config struct {
	// Subnet is the IPv4 subnet the leases are in, /30 or wider;
	// its mask goes to clients. Zero means DefaultSubnet.
	Subnet netip.Prefix
	// PoolStart and PoolEnd bound the addresses given to clients without
	// a static lease, both included. Zero (both) means the middle of the
	// subnet, .100 to .199 of a /24: clear of the low numbers routers and
	// the testbed's machines take, and of the high ones of its hosts.
	PoolStart, PoolEnd netip.Addr
	// ServerID is the server identifier clients see, and send their
	// renewals to: the address the server is reached at. Zero means the
	// subnet's first host address, .1.
	ServerID netip.Addr
	// LeaseTime is the lease given, whole seconds, at least one; zero
	// means DefaultLeaseTime. Short ones (a few seconds) make clients
	// renew (at half the lease) and rebind (at seven eighths) within a
	// test.
	LeaseTime time.Duration

	// Options sent with every OFFER and ACK (and INFORM's ACK), whether
	// asked for or not; zero values are left out.

	// Router is the default gateway (option 3).
	Router netip.Addr
	// DNS are the name servers (option 6).
	DNS []netip.Addr
	// Domain is the domain name (option 15).
	Domain string
	// Search is the domain search list (option 119, RFC 3397).
	Search []string
	// MTU is the interface MTU (option 26), 68 or more.
	MTU int
	// NTP are the time servers (option 42).
	NTP []netip.Addr

	// Static are static leases by MAC, as AddStatic adds them; New's
	// errors for them come back from Start and Serve.
	Static []Static
	// StaticFunc, if not nil, gives clients with no Static lease an
	// address of their own: the address for mac, or the zero Addr to
	// leave it to the pool. It serves a plan that derives addresses from
	// MACs, as the testbed's does (package dhcpnet). Its addresses must be
	// in the subnet and clear of the pool; the server does not check the
	// second, and gives a pool address away only if no client holds it.
	StaticFunc func(mac net.HardwareAddr) netip.Addr

	// ReplyToSender sends every reply to the address its message came
	// from, instead of where RFC 2131 4.1 sends it (255.255.255.255:68 to
	// a client with no address yet, ciaddr:68 to one renewing, giaddr:67
	// to a relay). Set it for clients on loopback (Start), which have an
	// address and port of their own and cannot take broadcasts.
	ReplyToSender bool

	// Logf, if not nil, gets a line per event (Event.String), and the
	// server's own troubles (pool exhausted, a reply that could not be
	// sent), e.g. t.Logf. With t.Logf, Close the server before the test
	// ends (t.Cleanup): testing panics on a log line after.
	Logf func(format string, args ...any)
	// LogLimit is how many events the log keeps, the oldest dropped
	// first; 0 means DefaultLogLimit.
	LogLimit int
}

// Static is a static lease: MAC always gets Addr.
type Static struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
}

// resolve fills the defaults into a copy of c and checks it.
func (c Config) resolve() (Config, error) {
	fail := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if !c.Subnet.IsValid() {
		c.Subnet = DefaultSubnet
	}
	if !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 30 {
		return fail("Subnet %s: want an IPv4 subnet of /30 or wider (192.168.1.0/24, say)", c.Subnet)
	}
	c.Subnet = c.Subnet.Masked()
	first, last := hostRange(c.Subnet)
	switch {
	case !c.PoolStart.IsValid() && !c.PoolEnd.IsValid():
		size := uint32(1) << (32 - c.Subnet.Bits()) // the subnet's addresses
		c.PoolStart = addrOf(max(first, base(c.Subnet)+size*100/256))
		c.PoolEnd = addrOf(min(last, base(c.Subnet)+size*200/256-1))
	case !c.PoolStart.IsValid() || !c.PoolEnd.IsValid():
		return fail("PoolStart %v, PoolEnd %v: set both, or neither for the middle of the subnet", c.PoolStart, c.PoolEnd)
	case !c.inHosts(c.PoolStart) || !c.inHosts(c.PoolEnd):
		return fail("pool %s-%s: want host addresses of the subnet %s (%s-%s)", c.PoolStart, c.PoolEnd, c.Subnet, addrOf(first), addrOf(last))
	case c.PoolEnd.Less(c.PoolStart):
		return fail("pool %s-%s: PoolEnd is below PoolStart", c.PoolStart, c.PoolEnd)
	}
	if !c.ServerID.IsValid() {
		c.ServerID = addrOf(first)
	} else if !c.ServerID.Is4() {
		return fail("ServerID %s: want an IPv4 address", c.ServerID)
	}
	switch {
	case c.LeaseTime == 0:
		c.LeaseTime = DefaultLeaseTime
	case c.LeaseTime < time.Second || c.LeaseTime%time.Second != 0:
		return fail("LeaseTime %v: want whole seconds, 1s or more (DHCP counts leases in seconds)", c.LeaseTime)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return fail("MTU %d: want 68 to 65535 (RFC 2132 5.1), or 0 to send none", c.MTU)
	}
	if c.Router.IsValid() && !c.Router.Is4() {
		return fail("Router %s: want an IPv4 address", c.Router)
	}
	for _, list := range []struct {
		name  string
		addrs []netip.Addr
	}{{"DNS", c.DNS}, {"NTP", c.NTP}} {
		for _, a := range list.addrs {
			if !a.Is4() {
				return fail("%s server %v: want an IPv4 address", list.name, a)
			}
		}
	}
	return c, nil
}

// inHosts reports whether a is a host address of the subnet: in it, and
// neither its network nor its broadcast address.
func (c Config) inHosts(a netip.Addr) bool {
	first, last := hostRange(c.Subnet)
	return a.Is4() && c.Subnet.Contains(a) && u32(a) >= first && u32(a) <= last
}

// checkStatic says what is wrong with a static lease on its own.
func (c Config) checkStatic(st Static) error {
	if len(st.MAC) != 6 {
		return fmt.Errorf("%w: MAC %q: want an Ethernet address of 6 bytes", ErrBadConfig, st.MAC)
	}
	if !c.inHosts(st.Addr.Unmap()) {
		first, last := hostRange(c.Subnet)
		return fmt.Errorf("%w: %v is not a host address of %s: give one of %s-%s, or widen Config.Subnet",
			ErrOutsideSubnet, st.Addr, c.Subnet, addrOf(first), addrOf(last))
	}
	if st.Addr.Unmap() == c.ServerID {
		return fmt.Errorf("%w: %s is the server's own (Config.ServerID): give another address", ErrAddressTaken, st.Addr)
	}
	return nil
}

// hostRange returns the first and last host addresses of an IPv4 subnet
// of /30 or wider.
func hostRange(p netip.Prefix) (first, last uint32) {
	b := base(p)
	return b + 1, b + 1<<(32-p.Bits()) - 2
}

func base(p netip.Prefix) uint32 { return u32(p.Masked().Addr()) }

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrOf(x uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}
