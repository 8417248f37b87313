package acmenet_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/stub/acme/acmenet"
)

// TestAttachNeedsDNS: a CA with no DNS server to ask is refused before a
// host is declared, with the fix named.
func TestAttachNeedsDNS(t *testing.T) {
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	_, _, err := acmenet.Attach(lan, "acme", acmenet.Config{})
	if !errors.Is(err, acmenet.ErrNoDNS) || !strings.Contains(err.Error(), "dnsnet.Attach") {
		t.Errorf("Attach without DNS: %v, want ErrNoDNS naming dnsnet.Attach", err)
	}
	if len(tb.Hosts()) != 0 {
		t.Errorf("hosts %v declared by a refused Attach", tb.Hosts())
	}
}
