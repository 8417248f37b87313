package dhcpnet_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/shakedown-dev/shakedown"
	dhcpstub "github.com/shakedown-dev/shakedown/stub/dhcp"
	"github.com/shakedown-dev/shakedown/stub/dhcp/dhcpnet"
)

// hostIOTimeout bounds one exchange between host endpoints through the
// in-process switch: ARP and a round trip, on a loaded runner under -race.
const hostIOTimeout = 20 * time.Second

// TestAttach serves a DHCP stub from a host of a testbed's network (no
// VM: a testbed of networks and hosts needs no QEMU) and leases from it
// with another host standing for a client. A host cannot send from
// 0.0.0.0 as a client with no address does; it sends from its own
// address, but to 255.255.255.255:67 as a client does, and takes the
// server's broadcast replies at 255.255.255.255:68.
func TestAttach(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	tb.Network("dmz", shakedown.NetworkOptions{})
	lan := tb.Network("lan", shakedown.NetworkOptions{}) // network 2
	cfg := dhcpnet.ForNetwork(lan)
	cfg.StaticFunc = dhcpnet.Planned(lan)
	cfg.Router = lan.Host("gw", shakedown.HostOptions{Number: 1}).Addr()
	cfg.Logf = t.Logf
	s := dhcpstub.New(cfg)
	t.Cleanup(func() { s.Close() })
	srv, err := dhcpnet.Attach(lan, "dhcp", s)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Addr().String(), "192.168.2.250"; got != want {
		t.Errorf("server host: got %s, want %s", got, want)
	}

	client := lan.Host("client", shakedown.HostOptions{})
	pc, err := client.ListenPacket("udp4", ":68")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	broadcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	exchange := func(m *dhcpv4.DHCPv4, to *net.UDPAddr, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
		t.Helper()
		if _, err := pc.WriteTo(m.ToBytes(), to); err != nil {
			t.Fatalf("send %s: %v", m.MessageType(), err)
		}
		pc.SetReadDeadline(time.Now().Add(hostIOTimeout))
		buf := make([]byte, 1500)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%s: %v", m.MessageType(), err)
		}
		r, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if r.MessageType() != want || from.String() != "192.168.2.250:67" {
			t.Fatalf("%s: got %s from %s, want %s from 192.168.2.250:67", m.MessageType(), r.MessageType(), from, want)
		}
		return r
	}

	for _, tc := range []struct {
		desc string
		mac  net.HardwareAddr
		want string
	}{
		{"a machine of the plan", net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x02, 0x05}, "192.168.2.5"},
		{"a MAC of another network", net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x01, 0x05}, "192.168.2.100"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			d, _ := dhcpv4.NewDiscovery(tc.mac, dhcpv4.WithOption(dhcpv4.OptHostName("web")))
			offer := exchange(d, broadcast, dhcpv4.MessageTypeOffer)
			if got := offer.YourIPAddr.String(); got != tc.want {
				t.Errorf("offer: got %s, want %s", got, tc.want)
			}
			if got := offer.Router(); len(got) != 1 || !got[0].Equal(net.IPv4(192, 168, 2, 1)) {
				t.Errorf("router: got %v, want 192.168.2.1", got)
			}
			r, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithOption(dhcpv4.OptHostName("web")))
			exchange(r, broadcast, dhcpv4.MessageTypeAck)
		})
	}
	// Unicast to the server's address reaches it too: an INIT-REBOOT
	// sent there, answered by broadcast.
	r, _ := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x02, 0x05}),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 2, 5))))
	exchange(r, &net.UDPAddr{IP: srv.Addr().AsSlice(), Port: 67}, dhcpv4.MessageTypeAck)

	ctx, cancel := context.WithTimeout(tb.Context(), hostIOTimeout)
	defer cancel()
	ev, err := s.WaitForLease(ctx, dhcpstub.Match{Hostname: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ev.From.String(), client.Addr().String()+":68"; got != want {
		t.Errorf("event from: got %s, want %s", got, want)
	}
	if got := len(s.Leases()); got != 2 {
		t.Errorf("leases: got %d, want 2: %+v", got, s.Leases())
	}
}

// TestAttachMismatch refuses a server whose identifier is not the host's.
func TestAttachMismatch(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	s := dhcpstub.New(dhcpstub.Config{})
	defer s.Close()
	if _, err := dhcpnet.Attach(lan, "dhcp", s); err == nil || !strings.Contains(err.Error(), "dhcpnet.ForNetwork") {
		t.Errorf("Attach with 192.0.2.1: got %v, want an error naming ForNetwork", err)
	}
	h := lan.Host("other", shakedown.HostOptions{})
	if err := dhcpnet.Serve(h, dhcpstub.New(dhcpnet.ForNetwork(lan))); err == nil || !strings.Contains(err.Error(), "set Config.ServerID") {
		t.Errorf("Serve on %s: got %v, want an error asking for its address", h.Addr(), err)
	}
}
