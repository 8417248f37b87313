package dhcpnet_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
	dhcpstub "github.com/shakedown-dev/shakedown/stub/dhcp"
	"github.com/shakedown-dev/shakedown/stub/dhcp/dhcpnet"
)

const (
	// exchangeTimeout bounds one lease taken by a guest's udhcpc: its
	// start, DISCOVER to ACK through the switch and its script, which take
	// well under a second on an idle host and several times that under
	// TCG on a loaded one.
	exchangeTimeout = 20 * time.Second
	// busyboxMinLease is the shortest lease busybox's udhcpc keeps: it
	// takes a shorter one for 30 s, and renews at half of that. The tests
	// that wait for a renewal give this lease, so that the stub's view and
	// the client's agree.
	busyboxMinLease = 30 * time.Second
	// scriptPath is where the guests have dhcpnet.UdhcpcScript.
	scriptPath = "/etc/udhcpc.script"
)

// udhcpcArgs are the udhcpc options every test uses: its script, and
// retries a second apart (-T 1, -A 1) rather than three and twenty, so
// that a lost or refused message costs the test seconds, not half a
// minute. A later -T overrides this one.
const udhcpcArgs = "-i eth0 -s " + scriptPath + " -t 5 -T 1 -A 1"

// dhcpBed is a testbed with a DHCP stub on network lan and one
// initramfs machine, client, on it with ManualAddresses: the agent leaves
// its eth0 without an address, for udhcpc to configure.
type dhcpBed struct {
	tb     *shakedown.Testbed
	lan    *shakedown.Network
	s      *dhcpstub.Server
	m      *shakedown.Machine
	mac    net.HardwareAddr // the client's on lan, read from the guest
	router netip.Addr
	dns    netip.Addr
}

// newDHCPBed starts the testbed; edit changes the stub's Config (from
// dhcpnet.ForNetwork, with a router, a name server, a domain, a search
// list and an MTU) before the stub is made.
func newDHCPBed(t *testing.T, edit func(*shakedown.Network, *dhcpstub.Config)) *dhcpBed {
	t.Helper()
	testenv.NeedVM(t)
	d := &dhcpBed{tb: shakedown.New(t, shakedown.Options{})}
	d.lan = d.tb.Network("lan", shakedown.NetworkOptions{})
	d.router = d.lan.Host("gw", shakedown.HostOptions{}).Addr()
	d.dns = d.lan.Host("ns", shakedown.HostOptions{}).Addr()
	cfg := dhcpnet.ForNetwork(d.lan)
	cfg.Router, cfg.DNS = d.router, []netip.Addr{d.dns}
	cfg.Domain, cfg.Search = "example.test", []string{"corp.test"}
	cfg.MTU = 1400
	cfg.Logf = t.Logf
	if edit != nil {
		edit(d.lan, &cfg)
	}
	d.s = dhcpstub.New(cfg)
	t.Cleanup(func() { d.s.Close() })
	if _, err := dhcpnet.Attach(d.lan, "dhcp", d.s); err != nil {
		t.Fatal(err)
	}
	d.m = d.tb.Machine("client", shakedown.MachineConfig{
		Networks:        []string{"lan"},
		ManualAddresses: true,
		Files:           []shakedown.File{dhcpnet.UdhcpcScript(scriptPath)},
	})
	d.tb.StartAll()
	mac, err := net.ParseMAC(strings.TrimSpace(d.m.Succeed("cat /sys/class/net/eth0/address")))
	if err != nil {
		t.Fatal(err)
	}
	d.mac = mac
	if got := d.addrs(t); len(got) != 0 {
		t.Fatalf("eth0 before udhcpc: got addresses %v, want none (ManualAddresses)", got)
	}
	return d
}

// ctx is the testbed's context with a deadline timeout from now.
func (d *dhcpBed) ctx(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(d.tb.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// addrs returns eth0's IPv4 addresses in the guest, with their prefix
// lengths ("192.168.1.1/24").
func (d *dhcpBed) addrs(t *testing.T) []string {
	t.Helper()
	var addrs []string
	for _, line := range strings.Split(d.m.Succeed("ip -4 -o addr show dev eth0"), "\n") {
		f := strings.Fields(line)
		for i := range f {
			if f[i] == "inet" && i+1 < len(f) {
				addrs = append(addrs, f[i+1])
			}
		}
	}
	return addrs
}

// wantAddr fails the test unless eth0 has addr/24 alone.
func (d *dhcpBed) wantAddr(t *testing.T, addr netip.Addr, when string) {
	t.Helper()
	if got, want := d.addrs(t), []string{addr.String() + "/24"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("eth0's addresses %s: got %v, want %v", when, got, want)
	}
}

// lease waits for an ACK to mac at since or after.
func (d *dhcpBed) lease(t *testing.T, mac net.HardwareAddr, since time.Time, timeout time.Duration) dhcpstub.Event {
	t.Helper()
	ev, err := d.s.WaitForLease(d.ctx(t, timeout), dhcpstub.Match{MAC: mac, Since: since})
	if err != nil {
		_, events := d.m.Execute("cat " + dhcpnet.UdhcpcEvents)
		t.Fatalf("%v\nudhcpc's events in the guest (%s):\n%s", err, dhcpnet.UdhcpcEvents, events)
	}
	return ev
}

// TestGuestLease has busybox's udhcpc in an initramfs machine take leases
// from the stub, one at a time (udhcpc -q: exit once bound): the planned
// address of the machine (dhcpnet.Planned), then a static lease added by
// MAC, then a pool address once the client's MAC is one the plan does
// not know. Each time eth0 has the address the stub logged and no other,
// the stub saw the whole exchange with the hostname sent, and the options
// arrive: the default route, resolv.conf and the MTU.
func TestGuestLease(t *testing.T) {
	d := newDHCPBed(t, func(lan *shakedown.Network, cfg *dhcpstub.Config) { cfg.StaticFunc = dhcpnet.Planned(lan) })

	// acquire runs udhcpc once in the guest, sending hostname, and
	// returns the lease the stub logged for mac.
	acquire := func(t *testing.T, mac net.HardwareAddr, hostname string) dhcpstub.Event {
		t.Helper()
		since := time.Now()
		d.m.Succeed("udhcpc -q -n " + udhcpcArgs + " -x hostname:" + hostname)
		ev := d.lease(t, mac, since, exchangeTimeout)
		if ev.Hostname != hostname {
			t.Errorf("lease's hostname: got %q, want %q", ev.Hostname, hostname)
		}
		// Before the REQUEST, a DISCOVER answered with an offer of the
		// same address.
		if _, err := d.s.WaitForEvent(d.ctx(t, time.Second), dhcpstub.Match{Type: dhcpv4.MessageTypeDiscover,
			Reply: dhcpv4.MessageTypeOffer, MAC: mac, Hostname: hostname, Addr: ev.Addr, Since: since}); err != nil {
			t.Error(err)
		}
		d.wantAddr(t, ev.Addr, "after udhcpc -q")
		return ev
	}

	t.Run("planned", func(t *testing.T) {
		ev := acquire(t, d.mac, "client")
		if want := netip.MustParseAddr("192.168.1.1"); ev.Addr != want {
			t.Errorf("leased %s, want %s: client is machine 1 of network 1", ev.Addr, want)
		}
		if out := d.m.Succeed("ip route"); !strings.Contains(out, "default via "+d.router.String()+" dev eth0") {
			t.Errorf("ip route: got\n%s\nwant a default route via %s (option 3)", out, d.router)
		}
		want := "search example.test corp.test\nnameserver " + d.dns.String() + "\n"
		if got := d.m.Succeed("cat /etc/resolv.conf"); got != want {
			t.Errorf("/etc/resolv.conf: got %q, want %q (options 15, 119, 6)", got, want)
		}
		if out := d.m.Succeed("ip link show dev eth0"); !strings.Contains(out, " mtu 1400 ") {
			t.Errorf("ip link show dev eth0: got\n%s\nwant mtu 1400 (option 26)", out)
		}
		// The address works on the wire: the stub's host answers a ping.
		d.m.Succeed("ping -c 1 -W 5 " + d.s.Config().ServerID.String())
	})
	t.Run("static", func(t *testing.T) {
		static := netip.MustParseAddr("192.168.1.42")
		if err := d.s.AddStatic(d.mac, static); err != nil {
			t.Fatal(err)
		}
		if ev := acquire(t, d.mac, "client"); ev.Addr != static {
			t.Errorf("leased %s after AddStatic, want %s", ev.Addr, static)
		}
		if err := d.s.RemoveStatic(d.mac); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("pool", func(t *testing.T) {
		// A MAC of no machine of the plan: Planned leaves it to the pool.
		mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
		d.m.Succeed("ip link set dev eth0 down && ip link set dev eth0 address " + mac.String() + " && ip link set dev eth0 up")
		if ev := acquire(t, mac, "other"); ev.Addr != d.s.Config().PoolStart {
			t.Errorf("leased %s to an unknown MAC, want the pool's first address %s", ev.Addr, d.s.Config().PoolStart)
		}
	})
}

// pidFile is where the guests' long-running udhcpc writes its PID, for
// kill -USR1 (renew now).
const pidFile = "/tmp/udhcpc.pid"

// run starts udhcpc in the guest in the background (its messages go to
// the console), with args after udhcpcArgs, and waits for its first
// lease, which it returns.
func (d *dhcpBed) run(t *testing.T, args string) dhcpstub.Event {
	t.Helper()
	since := time.Now()
	d.m.Succeed("udhcpc -f " + udhcpcArgs + " " + args + " -x hostname:client -p " + pidFile + " >&2 &")
	bound := d.lease(t, d.mac, since, exchangeTimeout)
	d.m.WaitUntilSucceeds("grep -q ' bound eth0 " + bound.Addr.String() + "$' " + dhcpnet.UdhcpcEvents)
	d.wantAddr(t, bound.Addr, "once bound")
	return bound
}

// events returns the events of the guest's UdhcpcEvents, in order.
func (d *dhcpBed) events(t *testing.T) []string {
	t.Helper()
	var evs []string
	for _, line := range strings.Split(strings.TrimSpace(d.m.Succeed("cat "+dhcpnet.UdhcpcEvents)), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			evs = append(evs, f[2])
		}
	}
	return evs
}

// renewalOf matches the REQUEST a bound client sends from its address to
// renew it (RENEWING: ciaddr set, unicast to the server).
func renewalOf(addr netip.Addr) func(dhcpstub.Event) bool {
	return func(e dhcpstub.Event) bool { return e.From.Addr() == addr }
}

// TestGuestRenewal has udhcpc keep its lease: it renews at half the lease
// on its own (unicast, from its address), and keeps its address while the
// stub is out (SetOutage) at the next renewal, renewing once it is back.
func TestGuestRenewal(t *testing.T) {
	d := newDHCPBed(t, func(_ *shakedown.Network, cfg *dhcpstub.Config) { cfg.LeaseTime = busyboxMinLease })
	// Renewals 3 s apart: busybox gives its address up after four
	// unanswered (see TestGuestLeaseLost), and the test, which checks
	// the address during the outage before it ends it, must not take
	// that long on a loaded host.
	bound := d.run(t, "-T 3")
	addr := bound.Addr
	renewal := dhcpstub.Match{MAC: d.mac, Func: renewalOf(addr), Desc: "comes from " + addr.String() + " (a renewal)"}

	t.Run("renewal", func(t *testing.T) {
		m := renewal
		m.Since = bound.Time
		ev, err := d.s.WaitForLease(d.ctx(t, busyboxMinLease/2+exchangeTimeout), m)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Requested != addr || ev.Addr != addr {
			t.Errorf("renewal: asked for %v, got %v; want %s both", ev.Requested, ev.Addr, addr)
		}
		// At T1, half the lease; a second early for the guest's clock.
		if after := ev.Time.Sub(bound.Time); after < busyboxMinLease/2-time.Second {
			t.Errorf("renewal %v after the lease, want half the lease, %v", after, busyboxMinLease/2)
		}
		d.m.WaitUntilSucceeds("grep -q ' renew eth0 " + addr.String() + "$' " + dhcpnet.UdhcpcEvents)
		d.wantAddr(t, addr, "after the renewal")
		bound = ev
	})
	t.Run("outage", func(t *testing.T) {
		d.s.SetOutage(true)
		// Only messages that came once the outage was on: a renewal's
		// retransmit answered just before (busybox resends a REQUEST
		// whose ACK was slow) is no renewal during the outage.
		m := renewal
		m.Since, m.Type = time.Now(), dhcpv4.MessageTypeRequest
		ev, err := d.s.WaitForEvent(d.ctx(t, busyboxMinLease/2+exchangeTimeout), m)
		if err != nil {
			d.s.SetOutage(false)
			t.Fatal(err)
		}
		if ev.Reply != dhcpv4.MessageTypeNone {
			t.Errorf("renewal during the outage: answered %s, want no answer", ev.Reply)
		}
		// Unanswered, the client goes on with its address: it has half
		// the lease left. (busybox gives up sooner: see TestGuestLeaseLost.)
		d.wantAddr(t, addr, "while the renewal goes unanswered")
		back := time.Now()
		d.s.SetOutage(false)
		m = renewal
		m.Since = back
		if _, err := d.s.WaitForLease(d.ctx(t, exchangeTimeout), m); err != nil {
			t.Fatal(err)
		}
		d.m.WaitUntilSucceeds("test $(grep -c ' renew eth0 " + addr.String() + "$' " + dhcpnet.UdhcpcEvents + ") -ge 2")
		d.wantAddr(t, addr, "after the outage")
	})
	if evs := d.events(t); strings.Count(strings.Join(evs, " "), "deconfig") != 1 {
		t.Errorf("udhcpc's events: got %v, want deconfig once, at its start: the address kept throughout", evs)
	}
}

// TestGuestLeaseLost has the stub take the client's lease away: a NAK to
// its renewal (a Fault), after which it starts over with a DISCOVER; and
// an outage through a whole renewal, after which busybox's udhcpc drops
// its address though the lease has most of an hour left (it gives up
// after a few REQUESTs, -T apart, whatever remains of the lease), and
// takes a lease again once the stub is back.
// kill -USR1 makes udhcpc renew at once.
func TestGuestLeaseLost(t *testing.T) {
	d := newDHCPBed(t, nil)
	bound := d.run(t, "")
	addr := bound.Addr
	renew := func(t *testing.T) {
		t.Helper()
		d.m.Succeed("kill -USR1 $(cat " + pidFile + ")")
	}

	t.Run("NAK", func(t *testing.T) {
		if err := d.s.SetFault(dhcpstub.Fault{NAK: true, Times: 1}); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		renew(t)
		nak, err := d.s.WaitForEvent(d.ctx(t, exchangeTimeout), dhcpstub.Match{Type: dhcpv4.MessageTypeRequest,
			Reply: dhcpv4.MessageTypeNak, MAC: d.mac, Since: since, Func: renewalOf(addr), Desc: "renews " + addr.String()})
		if err != nil {
			t.Fatal(err)
		}
		// udhcpc waits 3 s after a NAK, then starts over.
		if _, err := d.s.WaitForEvent(d.ctx(t, 3*time.Second+exchangeTimeout), dhcpstub.Match{Type: dhcpv4.MessageTypeDiscover,
			Reply: dhcpv4.MessageTypeOffer, MAC: d.mac, Since: nak.Time.Add(time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		ev := d.lease(t, d.mac, nak.Time.Add(time.Millisecond), exchangeTimeout)
		if ev.Addr != addr {
			t.Errorf("lease after the NAK: got %s, want %s again (the stub keeps a MAC's address)", ev.Addr, addr)
		}
		d.m.WaitUntilSucceeds("test $(grep -c ' bound eth0 " + addr.String() + "$' " + dhcpnet.UdhcpcEvents + ") -ge 2")
		want := "deconfig bound nak deconfig bound"
		if got := strings.Join(d.events(t), " "); got != want {
			t.Errorf("udhcpc's events: got %q, want %q", got, want)
		}
		d.wantAddr(t, addr, "after the NAK")
	})
	t.Run("outage", func(t *testing.T) {
		d.s.SetOutage(true)
		since := time.Now()
		renew(t)
		// udhcpc runs deconfig before its next DISCOVER: once that comes,
		// the address is gone.
		if _, err := d.s.WaitForEvent(d.ctx(t, exchangeTimeout), dhcpstub.Match{Type: dhcpv4.MessageTypeDiscover,
			MAC: d.mac, Since: since}); err != nil {
			d.s.SetOutage(false)
			t.Fatal(err)
		}
		// Renewals then rebinds, all from the client's address (ciaddr
		// set): four with busybox 1.35, a second apart (-T 1).
		var from []string
		for _, e := range d.s.Log() {
			if !e.Time.Before(since) && e.Type == dhcpv4.MessageTypeRequest {
				from = append(from, e.From.String())
			}
		}
		if len(from) < 2 || strings.Count(strings.Join(from, " "), addr.String()+":68") != len(from) {
			t.Errorf("REQUESTs during the outage came from %v, want several, each from %s:68", from, addr)
		}
		if got := d.addrs(t); len(got) != 0 {
			t.Errorf("eth0's addresses once udhcpc gave up: got %v, want none", got)
		}
		back := time.Now()
		d.s.SetOutage(false)
		if ev := d.lease(t, d.mac, back, exchangeTimeout); ev.Addr != addr {
			t.Errorf("lease after the outage: got %s, want %s again", ev.Addr, addr)
		}
		d.m.WaitUntilSucceeds("test $(grep -c ' bound eth0 " + addr.String() + "$' " + dhcpnet.UdhcpcEvents + ") -ge 3")
		d.wantAddr(t, addr, "after the outage")
	})
}

// networkdConfig has systemd-networkd configure eth0 by DHCPv4 alone,
// the MTU included (UseMTU is off by default).
const networkdConfig = `[Match]
Name=eth0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
UseMTU=yes
`

// TestGuestNetworkd has systemd-networkd in a Debian machine take the
// machine's planned address from the stub, with the options, and renew
// it at T1 (half of an 8 s lease: networkd keeps the server's timers,
// unlike busybox). Debian's base system has networkd, not enabled: the
// test starts it once the machine is up, as it would start udhcpc.
func TestGuestNetworkd(t *testing.T) {
	testenv.NeedDebian(t)
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	router := lan.Host("gw", shakedown.HostOptions{}).Addr()
	dns := lan.Host("ns", shakedown.HostOptions{}).Addr()
	cfg := dhcpnet.ForNetwork(lan)
	cfg.StaticFunc = dhcpnet.Planned(lan)
	cfg.Router, cfg.DNS, cfg.Domain, cfg.MTU = router, []netip.Addr{dns}, "example.test", 1400
	cfg.LeaseTime = 8 * time.Second
	cfg.Logf = t.Logf
	s := dhcpstub.New(cfg)
	t.Cleanup(func() { s.Close() })
	if _, err := dhcpnet.Attach(lan, "dhcp", s); err != nil {
		t.Fatal(err)
	}
	m := tb.Machine("deb", shakedown.MachineConfig{
		Networks:        []string{"lan"},
		ManualAddresses: true,
		Debian:          &shakedown.DebianSystem{},
		Files:           []shakedown.File{{Guest: "/etc/systemd/network/10-eth0.network", Data: []byte(networkdConfig)}},
	})
	m.Start()
	ctx := func(timeout time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(tb.Context(), timeout)
		t.Cleanup(cancel)
		return ctx
	}
	since := time.Now()
	m.Succeed("systemctl start systemd-networkd")
	want := netip.MustParseAddr("192.168.1.1")
	bound, err := s.WaitForLease(ctx(exchangeTimeout), dhcpstub.Match{Hostname: "deb", Addr: want, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitForEvent(ctx(time.Second), dhcpstub.Match{Type: dhcpv4.MessageTypeDiscover,
		Reply: dhcpv4.MessageTypeOffer, MAC: bound.MAC, Since: since}); err != nil {
		t.Error(err)
	}
	m.WaitUntilSucceeds("ip -4 -o addr show dev eth0 | grep -q 'inet " + want.String() + "/24 '")
	if out := m.Succeed("ip route"); !strings.Contains(out, "default via "+router.String()+" dev eth0") {
		t.Errorf("ip route: got\n%s\nwant a default route via %s (option 3)", out, router)
	}
	if out := m.Succeed("ip link show dev eth0"); !strings.Contains(out, " mtu 1400 ") {
		t.Errorf("ip link show dev eth0: got\n%s\nwant mtu 1400 (option 26)", out)
	}
	// networkd keeps the lease's options for resolved (not installed) in
	// its lease file.
	lease := m.Succeed("cat /run/systemd/netif/leases/*")
	for _, line := range []string{"ADDRESS=" + want.String(), "ROUTER=" + router.String(), "DNS=" + dns.String(), "DOMAINNAME=example.test"} {
		if !strings.Contains(lease, line+"\n") {
			t.Errorf("networkd's lease file: got\n%s\nwant a line %s", lease, line)
		}
	}
	renewal, err := s.WaitForLease(ctx(cfg.LeaseTime/2+exchangeTimeout), dhcpstub.Match{MAC: bound.MAC,
		Since: bound.Time.Add(time.Millisecond), Func: renewalOf(want), Desc: "comes from " + want.String() + " (a renewal)"})
	if err != nil {
		t.Fatal(err)
	}
	if after := renewal.Time.Sub(bound.Time); after < cfg.LeaseTime/2-time.Second {
		t.Errorf("renewal %v after the lease, want half the lease, %v", after, cfg.LeaseTime/2)
	}
	m.Succeed("ip -4 -o addr show dev eth0 | grep -q 'inet " + want.String() + "/24 '")
}
