package dhcpstub_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	dhcpstub "github.com/shakedown-dev/shakedown/stub/dhcp"
)

// TestExchange leases an address with insomniacslk's own client, which
// runs unprivileged over a loopback socket (nclient4.NewWithConn; its
// default raw socket needs CAP_NET_RAW), and checks the options the ACK
// carries and the log.
func TestExchange(t *testing.T) {
	s := start(t, dhcpstub.Config{
		Router:    addr("192.168.7.1"),
		DNS:       []netip.Addr{addr("192.168.7.53"), addr("192.168.7.54")},
		Domain:    "test",
		Search:    []string{"test", "corp.test"},
		MTU:       1400,
		NTP:       []netip.Addr{addr("192.168.7.123")},
		LeaseTime: 10 * time.Minute,
	})
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server, _ := net.ResolveUDPAddr("udp4", s.Addr())
	c, err := nclient4.NewWithConn(conn, mac(1), nclient4.WithServerAddr(server), nclient4.WithTimeout(exchangeTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*exchangeTimeout)
	defer cancel()
	lease, err := c.Request(ctx, dhcpv4.WithOption(dhcpv4.OptHostName("web")))
	if err != nil {
		t.Fatal(err)
	}
	ack := lease.ACK

	mtu := ack.GetOneOption(dhcpv4.OptionInterfaceMTU)
	for _, tc := range []struct {
		option    string
		got, want any
	}{
		{"address", yiaddr(ack), addr("192.168.7.100")}, // the pool's first
		{"subnet mask", net.IP(ack.SubnetMask()).String(), "255.255.255.0"},
		{"server identifier", ack.ServerIdentifier().String(), "192.168.7.1"},
		{"lease time", ack.IPAddressLeaseTime(0), 10 * time.Minute},
		{"renewal time", ack.IPAddressRenewalTime(0), 5 * time.Minute},
		{"rebinding time", ack.IPAddressRebindingTime(0), 10 * time.Minute * 7 / 8},
		{"router", fmt.Sprint(ack.Router()), "[192.168.7.1]"},
		{"dns", fmt.Sprint(ack.DNS()), "[192.168.7.53 192.168.7.54]"},
		{"domain", ack.DomainName(), "test"},
		{"search", fmt.Sprint(ack.DomainSearch().Labels), "[test corp.test]"},
		{"mtu", fmt.Sprint(mtu), fmt.Sprint([]byte{0x05, 0x78})},
		{"ntp", fmt.Sprint(ack.NTPServers()), "[192.168.7.123]"},
	} {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.option, tc.got, tc.want)
		}
	}

	ev, err := s.WaitForLease(ctx, dhcpstub.Match{MAC: mac(1)})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Addr != addr("192.168.7.100") || ev.Hostname != "web" {
		t.Errorf("lease event: got %s, want 192.168.7.100 for web", ev)
	}
	var types []string
	for _, e := range s.Log() {
		types = append(types, e.Type.String()+">"+e.Reply.String())
	}
	if got, want := strings.Join(types, " "), "DISCOVER>OFFER REQUEST>ACK"; got != want {
		t.Errorf("log: got %s, want %s", got, want)
	}
	leases := s.Leases()
	if len(leases) != 1 || leases[0].Addr != addr("192.168.7.100") || leases[0].Hostname != "web" || leases[0].Static {
		t.Errorf("leases: got %+v, want web's dynamic lease of 192.168.7.100", leases)
	}
}

// TestStatic gives static leases from the Config and from AddStatic, and
// keeps others' clients off their addresses.
func TestStatic(t *testing.T) {
	s := start(t, dhcpstub.Config{
		Static:    []dhcpstub.Static{{MAC: mac(1), Addr: addr("192.168.7.10")}},
		PoolStart: addr("192.168.7.11"), PoolEnd: addr("192.168.7.13"),
	})
	if err := s.AddStatic(mac(2), addr("192.168.7.11")); err != nil { // in the pool
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    byte
		want netip.Addr
	}{
		{1, addr("192.168.7.10")},
		{2, addr("192.168.7.11")},
		{3, addr("192.168.7.12")}, // the pool less 2's static address
	} {
		c := newClient(t, s, tc.n)
		if got := yiaddr(c.lease()); got != tc.want {
			t.Errorf("client %d: got %s, want %s", tc.n, got, tc.want)
		}
	}
	ls := s.Leases()
	if len(ls) != 3 || !ls[0].Static || !ls[1].Static || ls[2].Static {
		t.Errorf("leases: got %+v, want two static, one not", ls)
	}
	// A client asking for another's static address gets one of its own.
	c := newClient(t, s, 4)
	offer := c.exchange(c.discover(dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.7.11")))), dhcpv4.MessageTypeOffer)
	if got := yiaddr(offer); got != addr("192.168.7.13") {
		t.Errorf("client asking for 2's address: got %s, want 192.168.7.13", got)
	}
}

// TestStaticFunc gives addresses from a function of the MAC, as dhcpnet
// does from the address plan.
func TestStaticFunc(t *testing.T) {
	s := start(t, dhcpstub.Config{StaticFunc: func(m net.HardwareAddr) netip.Addr {
		if m[5] < 50 {
			return netip.AddrFrom4([4]byte{192, 168, 7, m[5]})
		}
		return netip.Addr{}
	}})
	if got := yiaddr(newClient(t, s, 5).lease()); got != addr("192.168.7.5") {
		t.Errorf("planned client: got %s, want 192.168.7.5", got)
	}
	if got := yiaddr(newClient(t, s, 60).lease()); got != addr("192.168.7.100") {
		t.Errorf("other client: got %s, want the pool's 192.168.7.100", got)
	}
}

// TestRenewal renews a lease (unicast, ciaddr set) and rebinds it, and
// refuses the renewal of an address that is not the client's.
func TestRenewal(t *testing.T) {
	s := start(t, dhcpstub.Config{LeaseTime: 4 * time.Second})
	c := newClient(t, s, 1)
	ack := c.lease()
	before := s.Leases()[0].Expires
	time.Sleep(10 * time.Millisecond)
	renewed := c.exchange(c.renew(ack), dhcpv4.MessageTypeAck)
	if yiaddr(renewed) != yiaddr(ack) {
		t.Errorf("renewal: got %s, want %s again", yiaddr(renewed), yiaddr(ack))
	}
	if after := s.Leases()[0].Expires; !after.After(before) {
		t.Errorf("renewal: expiry %v, want later than %v", after, before)
	}
	// Rebinding is the same message, broadcast: the server tells the two
	// apart only by where it came from, and answers both.
	c.exchange(c.renew(ack), dhcpv4.MessageTypeAck)

	// Another client renewing c's address is refused.
	other := newClient(t, s, 2)
	stolen, _ := dhcpv4.NewRenewFromAck(ack, dhcpv4.WithHwAddr(other.mac))
	other.exchange(stolen, dhcpv4.MessageTypeNak)

	// A lapsed lease is renewed if no one took the address meanwhile.
	s2 := start(t, dhcpstub.Config{LeaseTime: time.Second})
	c2 := newClient(t, s2, 1)
	ack2 := c2.lease()
	time.Sleep(1100 * time.Millisecond)
	if ls := s2.Leases(); len(ls) != 0 {
		t.Errorf("after the lease ran out: got leases %+v, want none", ls)
	}
	c2.exchange(c2.renew(ack2), dhcpv4.MessageTypeAck)
}

// TestNAK refuses requests for the wrong address, in each client state.
func TestNAK(t *testing.T) {
	wrong := dhcpv4.OptRequestedIPAddress(net.ParseIP("192.168.7.150"))
	for _, tc := range []struct {
		desc string
		msg  func(c *client) *dhcpv4.DHCPv4
		want dhcpv4.MessageType // MessageTypeNone: no answer
	}{
		{"selecting another address than offered", func(c *client) *dhcpv4.DHCPv4 {
			offer := c.exchange(c.discover(), dhcpv4.MessageTypeOffer)
			return c.request(offer, dhcpv4.WithOption(wrong))
		}, dhcpv4.MessageTypeNak},
		{"init-reboot with another address", func(c *client) *dhcpv4.DHCPv4 {
			c.lease()
			m, _ := dhcpv4.New(dhcpv4.WithHwAddr(c.mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithOption(wrong))
			return m
		}, dhcpv4.MessageTypeNak},
		{"init-reboot outside the subnet", func(c *client) *dhcpv4.DHCPv4 {
			m, _ := dhcpv4.New(dhcpv4.WithHwAddr(c.mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.5"))))
			return m
		}, dhcpv4.MessageTypeNak},
		{"init-reboot unknown to the server", func(c *client) *dhcpv4.DHCPv4 {
			m, _ := dhcpv4.New(dhcpv4.WithHwAddr(c.mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithOption(wrong))
			return m
		}, dhcpv4.MessageTypeNone},
		{"selecting another server", func(c *client) *dhcpv4.DHCPv4 {
			offer := c.exchange(c.discover(), dhcpv4.MessageTypeOffer)
			return c.request(offer, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("192.168.7.2"))))
		}, dhcpv4.MessageTypeNone},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := start(t, dhcpstub.Config{})
			c := newClient(t, s, 1)
			m := tc.msg(c)
			if tc.want == dhcpv4.MessageTypeNone {
				c.silent(m)
				return
			}
			r := c.exchange(m, tc.want)
			if r.Message() == "" {
				t.Error("NAK without a message saying why")
			}
		})
	}
}

// TestRelease gives a released address to the next client, and keeps a
// declined one from every client.
func TestRelease(t *testing.T) {
	s := start(t, dhcpstub.Config{PoolStart: addr("192.168.7.100"), PoolEnd: addr("192.168.7.101")})
	a := newClient(t, s, 1)
	ack := a.lease()
	rel, err := dhcpv4.NewReleaseFromACK(ack)
	if err != nil {
		t.Fatal(err)
	}
	a.silent(rel)
	if ls := s.Leases(); len(ls) != 0 {
		t.Fatalf("after RELEASE: got leases %+v, want none", ls)
	}
	b := newClient(t, s, 2)
	if got := yiaddr(b.lease()); got != addr("192.168.7.100") {
		t.Errorf("after RELEASE: next client got %s, want the released 192.168.7.100", got)
	}
	// a is offered .101, finds it in use and declines it: the pool is
	// empty then.
	offer := a.exchange(a.discover(), dhcpv4.MessageTypeOffer)
	decline, _ := dhcpv4.New(dhcpv4.WithHwAddr(a.mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
	a.silent(decline)
	a.silent(a.discover())
	if e := s.Log()[len(s.Log())-1]; !strings.Contains(e.Note, "pool exhausted") {
		t.Errorf("last event: got %s, want the pool exhausted", e)
	}
}

// TestPoolExhausted leaves a client without an offer once the pool is
// taken, says so in the log, and offers again once a lease ends.
func TestPoolExhausted(t *testing.T) {
	var lines []string
	s := start(t, dhcpstub.Config{PoolStart: addr("192.168.7.100"), PoolEnd: addr("192.168.7.101"),
		Logf: func(format string, args ...any) {
			lines = append(lines, fmt.Sprintf(format, args...))
			t.Logf(format, args...)
		}})
	newClient(t, s, 1).lease()
	newClient(t, s, 2).lease()
	c := newClient(t, s, 3)
	c.silent(c.discover())
	ev, err := s.WaitForEvent(context.Background(), dhcpstub.Match{MAC: c.mac, Type: dhcpv4.MessageTypeDiscover})
	if err != nil {
		t.Fatal(err)
	}
	want := "pool exhausted: all 2 addresses of 192.168.7.100-192.168.7.101 are leased, offered or declined: no offer"
	if ev.Note != want || ev.Reply != dhcpv4.MessageTypeNone {
		t.Errorf("event: got %s, want no answer and note %q", ev, want)
	}
	s.Close() // Logf's lines are all in
	if last := lines[len(lines)-1]; !strings.Contains(last, "pool exhausted") {
		t.Errorf("last log line: got %q, want the pool exhausted", last)
	}
}

// TestOutage silences the server: clients keep the leases they have, and
// renew once it is back.
func TestOutage(t *testing.T) {
	s := start(t, dhcpstub.Config{})
	c := newClient(t, s, 1)
	ack := c.lease()
	s.SetOutage(true)
	c.silent(c.renew(ack))
	c.silent(c.discover())
	if ls := s.Leases(); len(ls) != 1 || ls[0].Addr != yiaddr(ack) {
		t.Errorf("during the outage: got leases %+v, want the client's still", ls)
	}
	if e := s.Log()[len(s.Log())-1]; e.Note != "outage: no answer" {
		t.Errorf("during the outage: got event %s, want the outage noted", e)
	}
	s.SetOutage(false)
	c.exchange(c.renew(ack), dhcpv4.MessageTypeAck)
}

// TestFaults plays each kind of fault, counted down and cleared.
func TestFaults(t *testing.T) {
	t.Run("drop twice", func(t *testing.T) {
		s := start(t, dhcpstub.Config{})
		c := newClient(t, s, 1)
		if err := s.SetFault(dhcpstub.Fault{Drop: true, Times: 2}); err != nil {
			t.Fatal(err)
		}
		c.silent(c.discover())
		c.silent(c.discover())
		c.lease()
	})
	t.Run("NAK one client's request", func(t *testing.T) {
		s := start(t, dhcpstub.Config{})
		c, other := newClient(t, s, 1), newClient(t, s, 2)
		if err := s.SetFault(dhcpstub.Fault{NAK: true, MAC: c.mac, Times: 1}); err != nil {
			t.Fatal(err)
		}
		other.lease()
		offer := c.exchange(c.discover(), dhcpv4.MessageTypeOffer) // DISCOVERs pass
		c.exchange(c.request(offer), dhcpv4.MessageTypeNak)
		c.lease()
	})
	t.Run("delay", func(t *testing.T) {
		s := start(t, dhcpstub.Config{})
		c := newClient(t, s, 1)
		if err := s.SetFault(dhcpstub.Fault{Delay: 300 * time.Millisecond, Types: []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover}}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.exchange(c.discover(), dhcpv4.MessageTypeOffer)
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("delayed offer: came after %v, want 300ms or more", took)
		}
		s.ClearFault()
		c.exchange(c.discover(), dhcpv4.MessageTypeOffer)
	})
	t.Run("close cuts a delay short", func(t *testing.T) {
		s := start(t, dhcpstub.Config{})
		c := newClient(t, s, 1)
		s.SetFault(dhcpstub.Fault{Delay: time.Hour})
		c.silent(c.discover())
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(exchangeTimeout):
			t.Fatal("Close waited for a delayed answer")
		}
	})
	for _, f := range []dhcpstub.Fault{
		{},
		{Drop: true, NAK: true},
		{Drop: true, Delay: time.Second},
		{NAK: true, Types: []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover}},
		{Delay: -time.Second},
		{Drop: true, Times: -1},
	} {
		s := dhcpstub.New(dhcpstub.Config{})
		if err := s.SetFault(f); !errors.Is(err, dhcpstub.ErrBadFault) {
			t.Errorf("SetFault(%+v): got %v, want ErrBadFault", f, err)
		}
	}
}

// TestInform answers INFORM with the options and no lease.
func TestInform(t *testing.T) {
	s := start(t, dhcpstub.Config{Router: addr("192.168.7.1")})
	c := newClient(t, s, 1)
	m, err := dhcpv4.NewInform(c.mac, net.ParseIP("192.168.7.20"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.exchange(m, dhcpv4.MessageTypeAck)
	if !r.YourIPAddr.IsUnspecified() || r.IPAddressLeaseTime(0) != 0 || len(r.Router()) != 1 {
		t.Errorf("INFORM's ACK: got %s, want the router and no address or lease", r.Summary())
	}
	if len(s.Leases()) != 0 {
		t.Errorf("INFORM made a lease: %+v", s.Leases())
	}
}

// TestBadConfig refuses configurations and static leases that cannot
// work, with the sentinel and a message naming the fix.
func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		desc string
		cfg  dhcpstub.Config
		want error
		text string
	}{
		{"IPv6 subnet", dhcpstub.Config{Subnet: netip.MustParsePrefix("2001:db8::/64")}, dhcpstub.ErrBadConfig, "want an IPv4 subnet"},
		{"subnet too small", dhcpstub.Config{Subnet: netip.MustParsePrefix("192.168.7.0/31")}, dhcpstub.ErrBadConfig, "/30 or wider"},
		{"half a pool", dhcpstub.Config{Subnet: subnet, PoolStart: addr("192.168.7.10")}, dhcpstub.ErrBadConfig, "set both"},
		{"pool outside", dhcpstub.Config{Subnet: subnet, PoolStart: addr("192.168.7.10"), PoolEnd: addr("192.168.8.10")}, dhcpstub.ErrBadConfig, "host addresses of the subnet"},
		{"pool backwards", dhcpstub.Config{Subnet: subnet, PoolStart: addr("192.168.7.10"), PoolEnd: addr("192.168.7.9")}, dhcpstub.ErrBadConfig, "below PoolStart"},
		{"lease in milliseconds", dhcpstub.Config{LeaseTime: 1500 * time.Millisecond}, dhcpstub.ErrBadConfig, "whole seconds"},
		{"tiny MTU", dhcpstub.Config{MTU: 20}, dhcpstub.ErrBadConfig, "68 to 65535"},
		{"IPv6 DNS", dhcpstub.Config{DNS: []netip.Addr{addr("2001:db8::53")}}, dhcpstub.ErrBadConfig, "DNS server"},
		{"static outside", dhcpstub.Config{Subnet: subnet, Static: []dhcpstub.Static{{MAC: mac(1), Addr: addr("10.0.0.1")}}},
			dhcpstub.ErrOutsideSubnet, "or widen Config.Subnet"},
		{"static at the broadcast address", dhcpstub.Config{Subnet: subnet, Static: []dhcpstub.Static{{MAC: mac(1), Addr: addr("192.168.7.255")}}},
			dhcpstub.ErrOutsideSubnet, "192.168.7.1-192.168.7.254"},
		{"static at the server's", dhcpstub.Config{Subnet: subnet, Static: []dhcpstub.Static{{MAC: mac(1), Addr: addr("192.168.7.1")}}},
			dhcpstub.ErrAddressTaken, "the server's own"},
		{"static taken", dhcpstub.Config{Subnet: subnet, Static: []dhcpstub.Static{{MAC: mac(1), Addr: addr("192.168.7.5")}, {MAC: mac(2), Addr: addr("192.168.7.5")}}},
			dhcpstub.ErrAddressTaken, "RemoveStatic(02:00:00:00:00:01) first"},
		{"MAC twice", dhcpstub.Config{Subnet: subnet, Static: []dhcpstub.Static{{MAC: mac(1), Addr: addr("192.168.7.5")}, {MAC: mac(1), Addr: addr("192.168.7.6")}}},
			dhcpstub.ErrDuplicateMAC, "RemoveStatic it first"},
		{"short MAC", dhcpstub.Config{Subnet: subnet, Static: []dhcpstub.Static{{MAC: net.HardwareAddr{1, 2}, Addr: addr("192.168.7.5")}}},
			dhcpstub.ErrBadConfig, "6 bytes"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := dhcpstub.New(tc.cfg)
			defer s.Close()
			err := s.Start("")
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("got %v, want %v saying %q", err, tc.want, tc.text)
			}
		})
	}
	s := dhcpstub.New(dhcpstub.Config{})
	if err := s.RemoveStatic(mac(1)); !errors.Is(err, dhcpstub.ErrNoStatic) {
		t.Errorf("RemoveStatic of none: got %v, want ErrNoStatic", err)
	}
}

// TestWaitForLeaseTimeout says what it waited for and what came.
func TestWaitForLeaseTimeout(t *testing.T) {
	s := start(t, dhcpstub.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.WaitForLease(ctx, dhcpstub.Match{MAC: mac(9)})
	if !errors.Is(err, dhcpstub.ErrNoEvent) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "no message came at all") {
		t.Errorf("with an empty log: got %v", err)
	}

	c := newClient(t, s, 1)
	c.lease()
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = s.WaitForLease(ctx, dhcpstub.Match{MAC: mac(9)})
	for _, want := range []string{
		"wait for a REQUEST from 02:00:00:00:00:09 answered ACK: no matching dhcp event after",
		"2 messages came, none matching; the last 2:",
		"DISCOVER 02:00:00:00:00:01: OFFER 192.168.7.100 to 127.0.0.1:",
		"REQUEST 02:00:00:00:00:01 wants 192.168.7.100: ACK 192.168.7.100 to 127.0.0.1:",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to say %q", err, want)
		}
	}
}
