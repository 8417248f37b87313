package agentproto

import (
	"bufio"
	"strings"
	"testing"
)

func TestScanFor(t *testing.T) {
	tests := []struct {
		name, input, prefix, want, nonce string
		others                           []string
		wantErr                          bool
	}{
		{"plain", "SHAKEDOWN-HELLO n1\n", Hello, "", "n1", nil, false},
		{"junk first", "\x00\x17binary junk\nSSH-2.0-x\r\nSHAKEDOWN-START abc\n", Start, "", "abc", []string{"\x00\x17binary junk", "SSH-2.0-x"}, false},
		{"wrong nonce skipped", "SHAKEDOWN-READY old\nSHAKEDOWN-READY new\n", Ready, "new", "new", []string{"SHAKEDOWN-READY old"}, false},
		{"overlong junk", strings.Repeat("x", 1000) + "\nSHAKEDOWN-HELLO z\n", Hello, "", "z", nil, false},
		{"empty nonce is junk", "SHAKEDOWN-HELLO \n", Hello, "", "", nil, true},
		{"eof", "SHAKEDOWN-HEL", Hello, "", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var others []string
			got, err := ScanFor(bufio.NewReader(strings.NewReader(tt.input)), tt.prefix, tt.want, func(l string) error {
				others = append(others, l)
				return nil
			})
			if (err != nil) != tt.wantErr || got != tt.nonce {
				t.Fatalf("got %q %v, want %q (error %v)", got, err, tt.nonce, tt.wantErr)
			}
			if tt.others != nil && strings.Join(others, "|") != strings.Join(tt.others, "|") {
				t.Errorf("got other lines %q, want %q", others, tt.others)
			}
		})
	}
}
