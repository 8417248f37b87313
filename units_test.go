package shakedown_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
)

func TestServices(t *testing.T) {
	tb := newTestbed(t)
	m := tb.Machine("svc", shakedown.MachineConfig{
		Files: []shakedown.File{{Guest: "/srv/index.html", Data: []byte("served\n")}},
		Services: []shakedown.Service{
			{Name: "web", Command: "echo web starting; exec httpd -f -p 8080 -h /srv",
				Ready: shakedown.Readiness{Port: 8080}},
			{Name: "client", Command: "wget -qO- http://127.0.0.1:8080/ && exec sleep 1000", After: []string{"web"}},
			// With a readiness check, start and restart wait for the outcome.
			{Name: "broken", Command: "echo reading config; echo fatal: no config in /etc/broken >&2; exit 2",
				Ready: shakedown.Readiness{Port: 9999}},
		},
	})
	m.WaitForUnit("web")
	m.WaitForUnit("client.service")
	if got := m.UnitState("web"); got != "active" {
		t.Errorf("UnitState(web): got %q, want active", got)
	}
	if got := m.Succeed("wget -qO- http://127.0.0.1:8080/"); got != "served\n" {
		t.Errorf("got %q from the service, want %q", got, "served\n")
	}
	// Service output lands on the console, prefixed.
	m.WithTimeout(5 * time.Second).WaitForConsoleText(`\[client\] served`)

	msg, took := expectErr(t, func() error { return m.WithTimeout(time.Minute).WaitForUnitE("broken") })
	if took > 10*time.Second || !strings.Contains(msg, `unit broken reached state "failed" (exit status 2)`) || !strings.Contains(msg, "[broken] fatal: no config in /etc/broken") {
		t.Errorf("WaitForUnit(broken) failed after %v with %q, want a fast failure naming the unit, its status and its output", took, msg)
	}
	if err := m.WaitForUnitE("broken"); !errors.Is(err, shakedown.ErrUnitFailed) {
		t.Errorf("WaitForUnitE(broken): got %v, want ErrUnitFailed", err)
	}
	msg, _ = expectErr(t, func() error { return m.WaitForUnitE("nope") })
	if !strings.Contains(msg, "unit nope not found (units: web, client, broken)") {
		t.Errorf("WaitForUnit(nope): got %q, want the known units", msg)
	}
	if _, err := m.UnitStateE("nope"); !errors.Is(err, shakedown.ErrUnknownUnit) {
		t.Errorf("UnitStateE(nope): got %v, want ErrUnknownUnit", err)
	}
	if _, _, err := m.SystemctlE("reload web"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SystemctlE(reload web): got %v, want errors.ErrUnsupported", err)
	}

	if status, out := m.Systemctl("is-active web"); status != 0 || out != "active\n" {
		t.Errorf("is-active web: got %d %q, want 0 active", status, out)
	}
	if status, out := m.Systemctl("stop web"); status != 0 {
		t.Errorf("stop web: got %d %q, want 0", status, out)
	}
	m.WaitForClosedPort(8080)
	if status, out := m.Systemctl("is-active web.service"); status != 3 || out != "inactive\n" {
		t.Errorf("is-active after stop: got %d %q, want 3 inactive", status, out)
	}
	if status, out := m.Systemctl("start web"); status != 0 {
		t.Errorf("start web: got %d %q, want 0", status, out)
	}
	m.WaitForOpenPort(8080)
	if status, out := m.Systemctl("status broken"); status != 3 || !strings.Contains(out, "Active: failed") || !strings.Contains(out, "[broken] reading config") {
		t.Errorf("status broken: got %d %q, want 3 with the state and output", status, out)
	}
	if status, out := m.Systemctl("restart broken"); status != 1 || !strings.Contains(out, "Job for broken.service failed") {
		t.Errorf("restart broken: got %d %q, want 1 and the job failure", status, out)
	}
}
