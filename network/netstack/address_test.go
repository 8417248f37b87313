package netstack

import "testing"

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		want          Address
		err           bool
	}{
		{"tcp", "web:80", Address{Transport: "tcp", Host: "web", Port: 80}, false},
		{"udp6", "[2001:db8:1::5]:53", Address{Transport: "udp", V6: true, Host: "2001:db8:1::5", Port: 53}, false},
		{"tcp4", ":8080", Address{Transport: "tcp", Port: 8080}, false},
		{"sctp", "a:1", Address{}, true},
		{"tcp", "no-port", Address{}, true},
		{"tcp", "a:70000", Address{}, true},
	} {
		got, err := ParseAddress(tc.network, tc.addr)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseAddress(%q, %q) = %+v, %v; want %+v, error %v", tc.network, tc.addr, got, err, tc.want, tc.err)
		}
	}
}
