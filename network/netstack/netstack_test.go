package netstack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/network"
)

// TestTwoHosts runs TCP and UDP, over IPv4 and IPv6, between two hosts on
// one switch: everything a named host does, without a VM.
func TestTwoHosts(t *testing.T) {
	sw, err := network.New(network.Config{Name: "lan"})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	a, err := New(sw, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(sw, 3, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, v6 := range []bool{false, true} {
		ln, err := b.Listen(netip.AddrPortFrom(b.Addr(v6), 80))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}()
		c, err := a.Dial(ctx, "tcp", netip.AddrPortFrom(b.Addr(v6), 80))
		if err != nil {
			t.Fatalf("v6=%v: dial: %v", v6, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "ping")
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
			t.Errorf("v6=%v: tcp echo: got %q, %v; want ping", v6, got, err)
		}
		if ra := c.RemoteAddr().String(); ra != netip.AddrPortFrom(b.Addr(v6), 80).String() {
			t.Errorf("v6=%v: remote %s", v6, ra)
		}
		c.Close()
		ln.Close()

		pc, err := b.ListenPacket(netip.AddrPortFrom(b.Addr(v6), 53))
		if err != nil {
			t.Fatal(err)
		}
		uc, err := a.Dial(ctx, "udp", netip.AddrPortFrom(b.Addr(v6), 53))
		if err != nil {
			t.Fatal(err)
		}
		uc.Write([]byte("q"))
		pc.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 16)
		n, from, err := pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "q" {
			t.Fatalf("v6=%v: udp: got %q, %v", v6, buf[:n], err)
		}
		// A reply to the 16-byte form of an IPv4 address works too.
		ua := from.(*net.UDPAddr)
		if !v6 {
			ua = &net.UDPAddr{IP: ua.IP.To16(), Port: ua.Port}
		}
		if _, err := pc.WriteTo([]byte("a"), ua); err != nil {
			t.Fatalf("v6=%v: reply: %v", v6, err)
		}
		uc.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := uc.Read(buf); err != nil || string(buf[:n]) != "a" {
			t.Errorf("v6=%v: udp reply: got %q, %v", v6, buf[:n], err)
		}
		uc.Close()
		pc.Close()
	}
	if _, err := a.Dial(ctx, "sctp", netip.AddrPortFrom(b.Addr(false), 1)); err == nil {
		t.Error("dial sctp: got no error")
	}
	a.Close()
	a.Close() // twice is harmless
}

// TestBroadcast sends UDP to 255.255.255.255 and to the subnet's broadcast
// address between two hosts, as a DHCP client and server do, and checks
// that a socket at a host's address still takes its unicast datagrams and
// reports that address.
func TestBroadcast(t *testing.T) {
	sw, err := network.New(network.Config{Name: "lan"})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	server, err := New(sw, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := New(sw, 3, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Bystander: a third host whose socket at another port must not see
	// the datagrams.
	other, err := New(sw, 3, 30)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	listen := func(h *Host, port uint16) net.PacketConn {
		t.Helper()
		pc, err := h.ListenPacket(netip.AddrPortFrom(h.Addr(false), port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		if got, want := pc.LocalAddr().String(), netip.AddrPortFrom(h.Addr(false), port).String(); got != want {
			t.Errorf("LocalAddr: got %s, want %s", got, want)
		}
		return pc
	}
	srv, cli, bystander := listen(server, 67), listen(client, 68), listen(other, 69)

	// recv reads one datagram and checks it and its sender.
	recv := func(pc net.PacketConn, want string, from netip.AddrPort) {
		t.Helper()
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read %s: %v", want, err)
		}
		if string(buf[:n]) != want || addr.String() != from.String() {
			t.Errorf("got %q from %s, want %q from %s", buf[:n], addr, want, from)
		}
	}
	send := func(pc net.PacketConn, msg, to string) {
		t.Helper()
		if _, err := pc.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))); err != nil {
			t.Fatalf("send %s to %s: %v", msg, to, err)
		}
	}
	clientAddr := netip.AddrPortFrom(client.Addr(false), 68)
	serverAddr := netip.AddrPortFrom(server.Addr(false), 67)

	send(cli, "discover", "255.255.255.255:67")
	recv(srv, "discover", clientAddr)
	send(srv, "offer", "255.255.255.255:68")
	recv(cli, "offer", serverAddr)
	send(cli, "request", "192.168.3.255:67") // the subnet's broadcast address
	recv(srv, "request", clientAddr)
	send(srv, "ack", "192.168.3.20:68") // unicast still
	recv(cli, "ack", serverAddr)

	bystander.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, from, err := bystander.ReadFrom(make([]byte, 64)); err == nil {
		t.Errorf("a socket at another port got %d bytes from %s", n, from)
	}
}

// TestSetGateway: default routes through a router's address and its IPv6
// twin; addresses that cannot be a gateway are refused.
func TestSetGateway(t *testing.T) {
	sw, err := network.New(network.Config{Name: "lan"})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	h, err := New(sw, 3, 250)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tt := range []struct{ gw, want string }{
		{"192.168.4.1", "want an IPv4 address on the host's network, 192.168.3.0/24"},
		{"2001:db8:3::1", "want an IPv4 address"},
		{"192.168.3.250", "the host's own address"},
	} {
		if err := h.SetGateway(netip.MustParseAddr(tt.gw)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SetGateway(%s): %v, want an error with %q", tt.gw, err, tt.want)
		}
	}
	if err := h.SetGateway(netip.MustParseAddr("192.168.3.2")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range h.stack.GetRouteTable() {
		if r.Gateway.Len() > 0 {
			got = append(got, r.Destination.String()+" via "+r.Gateway.String())
		}
	}
	want := []string{"0.0.0.0/0 via 192.168.3.2", "::/0 via 2001:db8:3::2"}
	if !slices.Equal(got, want) {
		t.Errorf("routes %q, want %q", got, want)
	}
}
