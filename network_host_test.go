package shakedown_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
)

// hostIOTimeout bounds one exchange with a host endpoint in these tests:
// an ARP or neighbour resolution and a round trip, under TCG on a loaded
// runner.
const hostIOTimeout = 20 * time.Second

// newHostTestbed is a testbed for tests that boot nothing: it needs no
// QEMU (only starting a machine looks for it), so they run everywhere.
func newHostTestbed(t *testing.T) *shakedown.Testbed {
	t.Helper()
	return shakedown.New(t, shakedown.Options{})
}

// echo serves ln with connections that echo what they read, until ln
// closes.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// roundTrip writes msg on c and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(hostIOTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Errorf("got %q back, want %q", buf, msg)
	}
}

// TestHostEndpoints runs two host endpoints on one network, through the
// switch, with no machine booted: ARP and neighbour discovery, TCP and
// UDP over IPv4 and IPv6, and the errors of the API.
func TestHostEndpoints(t *testing.T) {
	tb := newHostTestbed(t)
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	tb.Machine("m", shakedown.MachineConfig{Networks: []string{"lan"}})
	for _, tc := range []struct{ network, listen, dial string }{
		{"tcp", "192.168.1.200:9000", "192.168.1.200:9000"},
		{"tcp6", "[2001:db8:1::200]:9000", "[2001:db8:1::200]:9000"},
		{"tcp4", ":9001", "192.168.1.254:9001"},
	} {
		t.Run(tc.network+" "+tc.listen, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(tb.Context(), hostIOTimeout)
			defer cancel()
			ln, err := lan.Listen(tc.network, tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go echo(ln)
			c, err := lan.Dial(ctx, tc.network, tc.dial)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, "through the switch\n")
		})
	}
	t.Run("udp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(tb.Context(), hostIOTimeout)
		defer cancel()
		pc, err := lan.ListenPacket("udp", "192.168.1.201:53")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
		c, err := lan.Dial(ctx, "udp", "192.168.1.201:53")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The first datagram may wait for ARP; a lost one is resent.
		for i := 0; ; i++ {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("datagram"))
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err == nil {
				if got := string(buf[:n]); got != "datagram" {
					t.Errorf("got %q, want datagram", got)
				}
				break
			}
			if i == 10 {
				t.Fatalf("no UDP echo after %d tries: %v", i+1, err)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(tb.Context(), hostIOTimeout)
		defer cancel()
		_, err := lan.Listen("tcp", "192.168.1.1:80")
		if !errors.Is(err, shakedown.ErrAddressInUse) || !strings.Contains(err.Error(), "machine m") {
			t.Errorf("listen at machine m's address: got %v, want ErrAddressInUse naming m", err)
		}
		for _, tc := range []struct{ network, addr, want string }{
			{"tcp", "10.0.0.1:80", "not on network lan"},
			{"tcp", "192.168.1.0:80", "host number 1 to 254"},
			{"tcp", "192.168.1.255:80", "host number 1 to 254"},
			{"udp", ":80", "want a tcp network"},
			{"sctp", ":80", `network "sctp"`},
			{"tcp", "192.168.1.10", "missing port"},
		} {
			if _, err := lan.Listen(tc.network, tc.addr); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Listen(%q, %q): got %v, want an error containing %q", tc.network, tc.addr, err, tc.want)
			}
		}
		for _, tc := range []struct{ addr, want string }{
			{"nobody:80", "neither an address of network lan nor a machine"},
			{"10.1.2.3:80", "not on network lan"},
		} {
			if _, err := lan.Dial(ctx, "tcp", tc.addr); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dial(%q): got %v, want an error containing %q", tc.addr, err, tc.want)
			}
		}
		// Nothing listens there: refused at once, not a timeout.
		if _, err := lan.Dial(ctx, "tcp", "192.168.1.200:1"); err == nil {
			t.Error("dial to a closed port succeeded")
		}
	})
	t.Run("numbers stay fixed", func(t *testing.T) {
		// lan's number was fixed by the endpoints above; a network
		// declared now takes the next, though its name sorts first.
		aaa := tb.Network("aaa", shakedown.NetworkOptions{})
		if lan.Number() != 1 || aaa.Number() != 2 {
			t.Errorf("got lan %d, aaa %d, want 1 and 2", lan.Number(), aaa.Number())
		}
		if _, err := aaa.Listen("tcp", "192.168.2.254:80"); err != nil {
			t.Errorf("listen on the late network: %v", err)
		}
	})
	t.Run("undeclared network", func(t *testing.T) {
		msg, _ := expectErr(t, func() error {
			return err2(tb.MachineE("x", shakedown.MachineConfig{Networks: []string{"wan"}}))
		})
		for _, want := range []string{"machine x", `network "wan" is not declared`, `tb.Network("wan"`} {
			if !strings.Contains(msg, want) {
				t.Errorf("got %q, want it to contain %q", msg, want)
			}
		}
	})
}

// TestHostEndpointMachines serves and calls machines from the test through
// host endpoints, measures impairments through them, and runs 802.1Q
// sub-interfaces across the switch.
func TestHostEndpointMachines(t *testing.T) {
	tb := newTestbed(t)
	lan := tb.Network("lan", shakedown.NetworkOptions{Seed: 1})
	cfg := shakedown.MachineConfig{Networks: []string{"lan"}, Modules: []string{"8021q"}}
	a := tb.Machine("a", cfg)
	b := tb.Machine("b", cfg)
	c := tb.Machine("c", cfg)
	web := lan.Host("web", shakedown.HostOptions{})
	tb.StartAll()
	ctx := tb.Context()

	t.Run("named hosts", func(t *testing.T) {
		a, b, c := a.WithT(t), b.WithT(t), c.WithT(t)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s here\n", r.Host)
		})}
		defer srv.Close()
		ln, err := web.Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		// web was declared before the machines booted, late after.
		late := lan.Host("late", shakedown.HostOptions{})
		ln, err = late.Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		hosts := c.Succeed("cat /etc/hosts")
		for _, want := range []string{"192.168.1.253 web\n", "2001:db8:1::253 web\n", "192.168.1.252 late\n"} {
			if !strings.Contains(hosts, want) {
				t.Errorf("/etc/hosts: got %q, want a line %q", hosts, want)
			}
		}
		for _, name := range []string{"web", "late"} {
			if got, want := a.Succeed("wget -q -O- http://"+name+"/"), name+" here\n"; got != want {
				t.Errorf("got %q from %s, want %q", got, name, want)
			}
		}

		// Faults reach a host as they reach a machine. (ping, not wget: a
		// SYN that is dropped would hold wget for minutes.)
		tb.Partition([]shakedown.Peer{a}, []shakedown.Peer{web})
		a.Fail(ping + "web")
		b.Succeed(ping + "web") // in no group
		// Once the fault ends, the guest's ARP entry may still be failing
		// for a second or two: recovery is waited for.
		tb.Heal()
		a.WithTimeout(30 * time.Second).WaitUntilSucceeds(ping + "web")
		lan.ImpairPair(web, c, shakedown.Impairment{LossPercent: 100})
		c.Fail(ping + "web")
		a.Succeed(ping + "web")
		lan.ClearImpairments()
		c.WithTimeout(30 * time.Second).WaitUntilSucceeds(ping + "web")

		// And a host calls machines by name.
		c.Succeed("nc -ll -p 7001 -e cat >/dev/null 2>&1 &")
		c.WaitForOpenPort(7001)
		dctx, cancel := context.WithTimeout(ctx, hostIOTimeout)
		defer cancel()
		conn, err := web.Dial(dctx, "tcp", "c:7001")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		roundTrip(t, conn, "from host web\n")
	})

	t.Run("guest fetches from the test", func(t *testing.T) {
		a := a.WithT(t)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s from the test\n", r.URL.Path[1:])
		})}
		defer srv.Close()
		for _, network := range []string{"tcp", "tcp6"} {
			ln, err := lan.Listen(network, ":80")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
		}
		// No -T: Debian 12's static busybox wget segfaults with it.
		if got := a.Succeed("wget -q -O- http://192.168.1.254/a"); got != "hello a from the test\n" {
			t.Errorf("got %q over IPv4, want hello a from the test", got)
		}
		if got := a.Succeed("wget -q -O- 'http://[2001:db8:1::254]/six'"); got != "hello six from the test\n" {
			t.Errorf("got %q over IPv6, want hello six from the test", got)
		}
	})
	t.Run("test dials a guest", func(t *testing.T) {
		b := b.WithT(t)
		b.Succeed("nc -ll -p 7000 -e cat >/dev/null 2>&1 &")
		b.WaitForOpenPort(7000)
		for _, tc := range []struct{ network, addr string }{
			{"tcp", "b:7000"},
			{"tcp6", "b:7000"},
			{"tcp", "192.168.1.2:7000"},
		} {
			dctx, cancel := context.WithTimeout(ctx, hostIOTimeout)
			conn, err := lan.Dial(dctx, tc.network, tc.addr)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, conn, "to the guest and back "+tc.network+"\n")
			conn.Close()
		}
	})
	t.Run("loss", func(t *testing.T) {
		a := a.WithT(t)
		if got := pingLoss(t, a, 200); got != 0 {
			t.Errorf("got %v%% of 200 pings lost without impairment, want none", got)
		}
		// The link's loss strikes the request and the reply on their own:
		// a ping comes back with probability (1-p)².
		const n, loss = 1000, 30.0
		lan.Impair(a, shakedown.Impairment{LossPercent: loss})
		got := pingLoss(t, a, n)
		lan.Impair(a, shakedown.Impairment{})
		want := 100 * (1 - (1-loss/100)*(1-loss/100))
		// One standard deviation is 1.6 points at n = 1000.
		t.Logf("lost %v%% of %d pings with %.0f%% loss each way", got, n, loss)
		if math.Abs(got-want) > 6 {
			t.Errorf("got %v%% of pings lost, want %.0f%% ± 6", got, want)
		}
	})
	t.Run("delay", func(t *testing.T) {
		a := a.WithT(t)
		base := avgRTT(t, a, "192.168.1.254")
		const delay = 40 * time.Millisecond
		lan.Impair(a, shakedown.Impairment{Delay: delay})
		slow := avgRTT(t, a, "192.168.1.254")
		lan.Impair(a, shakedown.Impairment{})
		// The link's delay holds frames both ways: the round trip grows
		// by twice it.
		added := slow - base
		t.Logf("round trip %v, %v with %v delay on the link", base, slow, delay)
		if want := 2 * delay; added < want-5*time.Millisecond || added > want+20*time.Millisecond {
			t.Errorf("got %v added to the round trip, want %v (-5 ms, +20 ms)", added, want)
		}
	})
	t.Run("vlan", func(t *testing.T) {
		a, b, c := a.WithT(t), b.WithT(t), c.WithT(t)
		vlan := func(m *shakedown.Machine, id, host int) {
			m.Succeed(fmt.Sprintf("ip link add link eth0 name eth0.%[1]d type vlan id %[1]d && "+
				"ip addr add 10.99.0.%[2]d/24 dev eth0.%[1]d && ip link set eth0.%[1]d up", id, host))
		}
		vlan(a, 5, 1)
		vlan(b, 5, 2)
		vlan(c, 6, 3) // same subnet, other VLAN
		a.WaitUntilSucceeds(ping + "10.99.0.2")
		b.Succeed(ping + "10.99.0.1")
		a.Fail(ping + "10.99.0.3")
		c.Fail(ping + "10.99.0.2")
		// The untagged network still works alongside.
		a.Succeed(ping + "c")
	})
	t.Run("bad conditions", func(t *testing.T) {
		if _, err := lan.Listen("tcp", "192.168.1.2:80"); !errors.Is(err, shakedown.ErrAddressInUse) {
			t.Errorf("listen at b's address: got %v, want ErrAddressInUse", err)
		}
		late := tb.Network("aaa-late", shakedown.NetworkOptions{})
		if late.Number() != 2 || lan.Number() != 1 {
			t.Errorf("got late %d, lan %d, want 2 and 1", late.Number(), lan.Number())
		}
		if got := a.WithT(t).Succeed("ip -o -4 addr show dev eth0"); !strings.Contains(got, "192.168.1.1/24") {
			t.Errorf("got %q, want a's address unchanged", got)
		}
	})
}

var lossRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`)

// pingLoss is the percentage of n pings from m to the default host
// endpoint that got no answer.
func pingLoss(t *testing.T, m *shakedown.Machine, n int) float64 {
	t.Helper()
	// -W bounds the wait for the last replies; ping's status is 1 when
	// some are lost, which is what is measured.
	out := m.Succeed(fmt.Sprintf("ping -q -c %d -i 0.01 -W 2 192.168.1.254 || true", n))
	match := lossRE.FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("no ping statistics in %q", out)
	}
	sent, _ := strconv.Atoi(match[1])
	got, _ := strconv.Atoi(match[2])
	if sent != n {
		t.Fatalf("ping sent %d, want %d: %q", sent, n, out)
	}
	return 100 * float64(sent-got) / float64(sent)
}

var rttRE = regexp.MustCompile(`min/avg/max = [0-9.]+/([0-9.]+)/`)

// avgRTT is the mean round trip of 20 pings from m to ip.
func avgRTT(t *testing.T, m *shakedown.Machine, ip string) time.Duration {
	t.Helper()
	out := m.Succeed("ping -c 20 -i 0.05 -W 2 " + ip)
	match := rttRE.FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("no round trip in %q", out)
	}
	ms, _ := strconv.ParseFloat(match[1], 64)
	return time.Duration(ms * float64(time.Millisecond))
}

// TestNamedHosts runs named host endpoints with no machine booted: their
// numbers, calls between them by name, the faults that reach them
// (partition, impairment, block) and the errors of the API.
func TestNamedHosts(t *testing.T) {
	tb := newHostTestbed(t)
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	wan := tb.Network("wan", shakedown.NetworkOptions{})
	tb.Machine("m", shakedown.MachineConfig{Networks: []string{"lan"}})
	api := lan.Host("api", shakedown.HostOptions{})
	db := lan.Host("db", shakedown.HostOptions{})
	fixed := lan.Host("fixed", shakedown.HostOptions{Number: 100})
	for _, tc := range []struct {
		h    *shakedown.Host
		want string
	}{{api, "192.168.1.253"}, {db, "192.168.1.252"}, {fixed, "192.168.1.100"}} {
		if got := tc.h.Addr().String(); got != tc.want {
			t.Errorf("host %s: got %s, want %s", tc.h.Name(), got, tc.want)
		}
	}
	if got := api.Addr6().String(); got != "2001:db8:1::253" {
		t.Errorf("host api: got %s, want 2001:db8:1::253", got)
	}
	if again := lan.Host("api", shakedown.HostOptions{}); again != api {
		t.Error("declaring api again: got another host, want the same")
	}
	for _, network := range []string{"tcp", "tcp6"} {
		ln, err := api.Listen(network, ":80")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go echo(ln)
	}

	// reach dials api from db and says whether a round trip went through
	// within wait.
	reach := func(network string, wait time.Duration) error {
		ctx, cancel := context.WithTimeout(tb.Context(), wait)
		defer cancel()
		c, err := db.Dial(ctx, network, "api:80")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, "ping"); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 4))
		return err
	}
	mustReach := func(what string) {
		t.Helper()
		for _, network := range []string{"tcp", "tcp6"} {
			if err := reach(network, hostIOTimeout); err != nil {
				t.Fatalf("%s: db to api over %s: %v", what, network, err)
			}
		}
	}
	mustNotReach := func(what string) {
		t.Helper()
		if err := reach("tcp", 2*time.Second); err == nil {
			t.Errorf("%s: db reached api, want it cut off", what)
		}
	}
	mustReach("by name")

	lan.Partition([]shakedown.Peer{api}, []shakedown.Peer{db})
	mustNotReach("partitioned")
	lan.Heal()
	mustReach("healed")

	lan.Impair(api, shakedown.Impairment{LossPercent: 100})
	mustNotReach("api's link losing everything")
	lan.Impair(api, shakedown.Impairment{})
	mustReach("impairment cleared")

	lan.ImpairPair(db, api, shakedown.Impairment{LossPercent: 100})
	mustNotReach("db to api losing everything")
	lan.ClearImpairments()
	mustReach("impairments cleared")

	api.Block()
	mustNotReach("api blocked")
	api.Unblock()
	mustReach("api unblocked")

	t.Run("errors", func(t *testing.T) {
		if _, err := api.Listen("tcp", "192.168.1.9:81"); err == nil || !strings.Contains(err.Error(), "host's own name or address") {
			t.Errorf("listen at another address: got %v, want an error naming the host's own", err)
		}
		if ln, err := api.Listen("tcp", "api:81"); err != nil {
			t.Errorf("listen by own name: %v", err)
		} else {
			ln.Close()
		}
		for _, tc := range []struct {
			name string
			f    func() error
			want []string
		}{
			{"machine named as a host", func() error { return err2(tb.MachineE("api", shakedown.MachineConfig{})) },
				[]string{"machine api", "host endpoint api on network lan", "different ones"}},
			{"host named as a machine", func() error { return err2(lan.HostE("m", shakedown.HostOptions{})) },
				[]string{"host m", "a machine has that name"}},
			{"host number taken by a host", func() error { return err2(lan.HostE("x", shakedown.HostOptions{Number: 253})) },
				[]string{"host x", "address in use", "host api's"}},
			{"host number taken by a machine", func() error { return err2(lan.HostE("y", shakedown.HostOptions{Number: 1})) },
				[]string{"host y", "address in use", "machine m's"}},
			{"host number out of range", func() error { return err2(lan.HostE("z", shakedown.HostOptions{Number: 300})) },
				[]string{"number 300", "want 1 to 254"}},
			{"same name on another network", func() error { return err2(wan.HostE("api", shakedown.HostOptions{})) },
				[]string{"host api", "declared already", "network lan"}},
			{"bad name", func() error { return err2(lan.HostE("Bad Name", shakedown.HostOptions{})) },
				[]string{"Bad Name"}},
			{"impair a host of another network", func() error { return wan.ImpairE(api, shakedown.Impairment{LossPercent: 1}) },
				[]string{"network wan", "host api is on network lan"}},
			{"impair a machine of another network", func() error {
				return wan.ImpairE(tb.Machine("m", shakedown.MachineConfig{}), shakedown.Impairment{LossPercent: 1})
			}, []string{"network wan", "machine m is not on it"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				msg, _ := expectErr(t, tc.f)
				for _, want := range tc.want {
					if !strings.Contains(msg, want) {
						t.Errorf("got %q, want it to contain %q", msg, want)
					}
				}
			})
		}
	})
}

// TestMachineAddr checks the addresses Machine.Addr and Addr6 give: those
// /etc/hosts names each machine by, on its first network; none without a
// network or with ManualAddresses. No machine boots.
func TestMachineAddr(t *testing.T) {
	tb := newHostTestbed(t)
	tb.Network("lan", shakedown.NetworkOptions{})
	tb.Network("dmz", shakedown.NetworkOptions{})
	cases := []struct {
		name     string
		cfg      shakedown.MachineConfig
		ip4, ip6 string
	}{
		// Machines in name order a 1, b 2, c 3, d 4; networks dmz 1, lan 2.
		{"a", shakedown.MachineConfig{Networks: []string{"lan", "dmz"}}, "192.168.2.1", "2001:db8:2::1"},
		{"b", shakedown.MachineConfig{Networks: []string{"dmz"}}, "192.168.1.2", "2001:db8:1::2"},
		{"c", shakedown.MachineConfig{Networks: []string{"lan"}, ManualAddresses: true}, "invalid IP", "invalid IP"},
		{"d", shakedown.MachineConfig{}, "invalid IP", "invalid IP"},
	}
	// All declared before the first address fixes the numbering.
	for _, tc := range cases {
		tb.Machine(tc.name, tc.cfg)
	}
	for _, tc := range cases {
		m := tb.Machine(tc.name, tc.cfg)
		if got := m.Addr().String(); got != tc.ip4 {
			t.Errorf("%s: Addr: got %s, want %s", tc.name, got, tc.ip4)
		}
		if got := m.Addr6().String(); got != tc.ip6 {
			t.Errorf("%s: Addr6: got %s, want %s", tc.name, got, tc.ip6)
		}
	}
}

// TestHostGateway: a host behind a router takes its address as gateway;
// one off the network is refused, naming the network's prefix.
func TestHostGateway(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	if _, err := lan.HostE("ns", shakedown.HostOptions{Gateway: netip.MustParseAddr("192.168.1.3")}); err != nil {
		t.Errorf("gateway on the network: %v", err)
	}
	_, err := lan.HostE("far", shakedown.HostOptions{Gateway: netip.MustParseAddr("10.0.0.1")})
	if err == nil || !strings.Contains(err.Error(), "host far: gateway 10.0.0.1: want an IPv4 address on the host's network, 192.168.1.0/24") {
		t.Errorf("gateway off the network: %v", err)
	}
}
