package dhcpstub

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestDestination sends replies where RFC 2131 4.1 says.
func TestDestination(t *testing.T) {
	from := netip.MustParseAddrPort("0.0.0.0:68")
	for _, tc := range []struct {
		desc           string
		ciaddr, giaddr string
		reply          dhcpv4.MessageType
		toSender       bool
		want           string
	}{
		{"no address yet", "", "", dhcpv4.MessageTypeOffer, false, "255.255.255.255:68"},
		{"renewing", "192.168.7.100", "", dhcpv4.MessageTypeAck, false, "192.168.7.100:68"},
		{"NAK to a renewing client", "192.168.7.100", "", dhcpv4.MessageTypeNak, false, "255.255.255.255:68"},
		{"through a relay", "", "10.0.0.1", dhcpv4.MessageTypeOffer, false, "10.0.0.1:67"},
		{"ReplyToSender", "192.168.7.100", "", dhcpv4.MessageTypeAck, true, "0.0.0.0:68"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := &Server{cfg: Config{ReplyToSender: tc.toSender}}
			req, _ := dhcpv4.New(dhcpv4.WithClientIP(net.ParseIP(tc.ciaddr)), dhcpv4.WithGatewayIP(net.ParseIP(tc.giaddr)))
			resp, _ := dhcpv4.New(dhcpv4.WithMessageType(tc.reply))
			if got := s.destination(req, resp, from); got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestDefaultPool picks the middle of subnets of each size.
func TestDefaultPool(t *testing.T) {
	for _, tc := range []struct{ subnet, start, end string }{
		{"192.168.1.0/24", "192.168.1.100", "192.168.1.199"},
		{"10.0.0.0/16", "10.0.100.0", "10.0.199.255"},
		{"192.168.1.0/28", "192.168.1.6", "192.168.1.11"},
		{"192.168.1.0/30", "192.168.1.1", "192.168.1.2"},
	} {
		c, err := Config{Subnet: netip.MustParsePrefix(tc.subnet)}.resolve()
		if err != nil {
			t.Fatal(err)
		}
		if c.PoolStart.String() != tc.start || c.PoolEnd.String() != tc.end {
			t.Errorf("%s: got %s-%s, want %s-%s", tc.subnet, c.PoolStart, c.PoolEnd, tc.start, tc.end)
		}
	}
}
