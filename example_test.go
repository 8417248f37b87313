package shakedown_test

import (
	"testing"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// TestWeb is the README's example: keep the two in step.
func TestWeb(t *testing.T) {
	testenv.NeedVM(t)
	tb := shakedown.New(t, shakedown.Options{})
	web := tb.Machine("web", shakedown.MachineConfig{
		Files: []shakedown.File{{Guest: "/srv/index.html", Data: []byte("hi\n")}},
	})
	tb.StartAll()
	web.Succeed("httpd -p 80 -h /srv")
	web.WaitForOpenPort(80)
	if got := web.Succeed("wget -qO- http://127.0.0.1/"); got != "hi\n" {
		t.Errorf("got %q", got)
	}
}
