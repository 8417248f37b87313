package agent

import (
	"testing"
)

func TestParseNICs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string // addresses per NIC, "" for unaddressed
		wantErr bool
	}{
		{"", nil, false},
		{"1:2", []string{"192.168.1.2/24 2001:db8:1::2/64"}, false},
		{"1:2,-,12:254", []string{"192.168.1.2/24 2001:db8:1::2/64", "", "192.168.12.254/24 2001:db8:12::254/64"}, false},
		{"0:1", nil, true},
		{"1:255", nil, true},
		{"1", nil, true},
		{"a:b", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			nics, err := ParseNICs(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if len(nics) != len(tt.want) {
				t.Fatalf("got %d NICs, want %d", len(nics), len(tt.want))
			}
			for i, n := range nics {
				got := ""
				for j, a := range n.Addrs() {
					if j > 0 {
						got += " "
					}
					got += a.String()
				}
				if got != tt.want[i] || n.Name != "eth"+string(rune('0'+i)) {
					t.Errorf("NIC %d: got %s %q, want eth%d %q", i, n.Name, got, i, tt.want[i])
				}
			}
		})
	}
}
