package dhcpstub_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	dhcpstub "github.com/shakedown-dev/shakedown/stub/dhcp"
)

// Timeouts of exchanges on loopback.
const (
	// exchangeTimeout bounds one exchange: far above its milliseconds,
	// for a loaded runner under -race.
	exchangeTimeout = 5 * time.Second
	// silenceTimeout is how long a test waits to be sure no answer comes:
	// answers on loopback take well under a millisecond.
	silenceTimeout = 200 * time.Millisecond
)

// subnet is the subnet of most tests.
var subnet = netip.MustParsePrefix("192.168.7.0/24")

// start starts a server on loopback replying to its clients' sockets,
// closed when the test ends.
func start(t *testing.T, cfg dhcpstub.Config) *dhcpstub.Server {
	t.Helper()
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = subnet
	}
	cfg.ReplyToSender = true
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	s := dhcpstub.New(cfg)
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// client is a DHCP client on loopback driven message by message: a UDP
// socket of its own, standing for a NIC with MAC mac.
type client struct {
	t      *testing.T
	conn   net.PacketConn
	server *net.UDPAddr
	mac    net.HardwareAddr
}

func newClient(t *testing.T, s *dhcpstub.Server, n byte) *client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	server, err := net.ResolveUDPAddr("udp4", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, conn: conn, server: server, mac: mac(n)}
}

// mac is a test MAC ending in n.
func mac(n byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, n} }

// send sends m and returns the answer, nil if none comes within wait.
func (c *client) send(m *dhcpv4.DHCPv4, wait time.Duration) *dhcpv4.DHCPv4 {
	c.t.Helper()
	if _, err := c.conn.WriteTo(m.ToBytes(), c.server); err != nil {
		c.t.Fatalf("send %s: %v", m.MessageType(), err)
	}
	buf := make([]byte, 1500)
	c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return nil
		}
		r, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			c.t.Fatalf("answer to %s: %v", m.MessageType(), err)
		}
		if r.TransactionID == m.TransactionID {
			return r
		}
		// A late answer to an earlier message (a Delay fault's).
	}
}

// exchange sends m and fails the test unless an answer of type want comes.
func (c *client) exchange(m *dhcpv4.DHCPv4, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	c.t.Helper()
	r := c.send(m, exchangeTimeout)
	if r == nil {
		c.t.Fatalf("%s: got no answer, want %s", m.MessageType(), want)
	}
	if r.MessageType() != want {
		c.t.Fatalf("%s: got %s (%s), want %s", m.MessageType(), r.MessageType(), r.Message(), want)
	}
	return r
}

// silent sends m and fails the test if an answer comes.
func (c *client) silent(m *dhcpv4.DHCPv4) {
	c.t.Helper()
	if r := c.send(m, silenceTimeout); r != nil {
		c.t.Fatalf("%s: got %s, want no answer", m.MessageType(), r.MessageType())
	}
}

func (c *client) discover(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	c.t.Helper()
	m, err := dhcpv4.NewDiscovery(c.mac, mods...)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *client) request(offer *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	c.t.Helper()
	m, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// lease runs DISCOVER, OFFER, REQUEST, ACK and returns the ACK.
func (c *client) lease(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	c.t.Helper()
	offer := c.exchange(c.discover(mods...), dhcpv4.MessageTypeOffer)
	return c.exchange(c.request(offer, mods...), dhcpv4.MessageTypeAck)
}

// renew is a renewal of ack's lease (RENEWING: ciaddr set, no server
// identifier, no requested address).
func (c *client) renew(ack *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	c.t.Helper()
	m, err := dhcpv4.NewRenewFromAck(ack)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// yiaddr is the address an answer gives.
func yiaddr(m *dhcpv4.DHCPv4) netip.Addr {
	a, _ := netip.AddrFromSlice(m.YourIPAddr.To4())
	return a
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
