// Package dhcpstub is a stand-in DHCPv4 server for tests, usable on its
// own as net/http/httptest is: a subnet and a pool, static leases by MAC,
// the options a client configures itself from, faults and outages set at
// run time, and a log of what each client asked and got, to assert on.
//
// It owns the DHCP stand-in of shakedown's stub services: the lease table,
// answers (RFC 2131: DISCOVER, REQUEST in every client state, RELEASE,
// DECLINE, INFORM), faults and the event log. It serves any
// net.PacketConn: a loopback socket (Start), or a shakedown host's
// (package dhcpnet attaches a Server to a testbed's network). It imports
// the standard library, github.com/insomniacslk/dhcp and
// internal/eventlog, nothing of shakedown's API, so that it stays usable in any Go test.
//
//	s := dhcpstub.New(dhcpstub.Config{
//		Subnet: netip.MustParsePrefix("192.168.1.0/24"), // pool .100 to .199
//		Router: netip.MustParseAddr("192.168.1.1"),
//		DNS:    []netip.Addr{netip.MustParseAddr("192.168.1.253")},
//		Static: []dhcpstub.Static{{MAC: mac, Addr: netip.MustParseAddr("192.168.1.10")}},
//		Logf:   t.Logf,
//	})
//	t.Cleanup(func() { s.Close() })
//	err := s.Serve(pc)                                  // or Start("") on loopback
//	ev, err := s.WaitForLease(ctx, dhcpstub.Match{MAC: mac})
//	s.SetOutage(true)                                  // silent: clients keep their leases
//	err = s.SetFault(dhcpstub.Fault{NAK: true, Times: 1}) // the next REQUEST is refused
//
// The server loop is its own, over a net.PacketConn, rather than
// insomniacslk's server4.Server: that one binds a real interface (with
// SO_BINDTODEVICE), which a test has neither the privilege nor, on a
// testbed's gVisor hosts, the interface for. The messages are
// insomniacslk's dhcpv4 package's.
//
// Clients are told apart by their hardware address (chaddr), not by a
// client identifier option: the testbed's machines have one MAC per
// network and no other identity. Relay agents are answered at giaddr.
package dhcpstub
