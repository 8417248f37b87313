package addrplan

import (
	"errors"
	"net/netip"
	"testing"
)

// TestPlan pins the plan: these strings are what NixOS test scripts and
// every guest's /etc/hosts contain, so a change here breaks users.
func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		v, n             int
		ip4, ip6, mac    string
		prefix4, prefix6 string
	}{
		{1, 1, "192.168.1.1", "2001:db8:1::1", "52:54:00:12:01:01", "192.168.1.0/24", "2001:db8:1::/64"},
		{12, 34, "192.168.12.34", "2001:db8:12::34", "52:54:00:12:0c:22", "192.168.12.0/24", "2001:db8:12::/64"},
		{255, 254, "192.168.255.254", "2001:db8:255::254", "52:54:00:12:ff:fe", "192.168.255.0/24", "2001:db8:255::/64"},
	} {
		if got := IPv4(tc.v, tc.n).String(); got != tc.ip4 {
			t.Errorf("IPv4(%d, %d) = %s, want %s", tc.v, tc.n, got, tc.ip4)
		}
		if got := IPv6(tc.v, tc.n).String(); got != tc.ip6 {
			t.Errorf("IPv6(%d, %d) = %s, want %s", tc.v, tc.n, got, tc.ip6)
		}
		if got := MAC(tc.v, tc.n).String(); got != tc.mac {
			t.Errorf("MAC(%d, %d) = %s, want %s", tc.v, tc.n, got, tc.mac)
		}
		if got := Prefix4(tc.v).String(); got != tc.prefix4 {
			t.Errorf("Prefix4(%d) = %s, want %s", tc.v, got, tc.prefix4)
		}
		if got := Prefix6(tc.v).String(); got != tc.prefix6 {
			t.Errorf("Prefix6(%d) = %s, want %s", tc.v, got, tc.prefix6)
		}
		for _, ip := range []netip.Addr{IPv4(tc.v, tc.n), IPv6(tc.v, tc.n)} {
			if n, err := Host(tc.v, ip); err != nil || n != tc.n {
				t.Errorf("Host(%d, %s) = %d, %v; want %d", tc.v, ip, n, err, tc.n)
			}
		}
	}
}

func TestHostRejects(t *testing.T) {
	for _, ip := range []string{"192.168.2.5", "10.0.0.1", "192.168.1.0", "192.168.1.255", "2001:db8:1::a", "2001:db8:1:0:1::5", "2001:db8:2::5"} {
		if n, err := Host(1, netip.MustParseAddr(ip)); !errors.Is(err, ErrNotInPlan) {
			t.Errorf("Host(1, %s) = %d, %v; want ErrNotInPlan", ip, n, err)
		}
	}
}

func TestHostsFile(t *testing.T) {
	got := string(HostsFile([]Name{{"web", 1, 2}, {"api", 3, 253}}))
	want := "127.0.0.1 localhost\n::1 localhost\n" +
		"192.168.1.2 web\n2001:db8:1::2 web\n" +
		"192.168.3.253 api\n2001:db8:3::253 api\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
