package shakedown_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// needDebian skips (or fails in CI) a test that builds a Debian system
// where mmdebstrap cannot run.
func needDebian(t *testing.T) {
	t.Helper()
	testenv.NeedVM(t)
	why := ""
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		why = "mmdebstrap not found: apt-get install mmdebstrap"
	} else if os.Geteuid() != 0 {
		why = "mmdebstrap needs root to build a Debian system"
	}
	if why == "" {
		return
	}
	if testenv.InCI() {
		t.Fatal(why)
	}
	t.Skip(why)
}

// TestDebianSystem boots a full Debian system twice (the second boot is a
// Reboot): multi-user.target through the guest's systemd, a declared unit
// active, a failing one failing the wait at once, the agent's network
// setup as a service, and a file written to the root disk's overlay
// surviving Reboot.
func TestDebianSystem(t *testing.T) {
	needDebian(t)
	tb := newTestbed(t)
	tb.Network("lan", shakedown.NetworkOptions{})
	m := tb.Machine("deb", shakedown.MachineConfig{
		Networks: []string{"lan"},
		Files:    []shakedown.File{{Guest: "/etc/motd", Data: []byte("from the spec\n")}},
		Debian: &shakedown.DebianSystem{Units: map[string]string{
			"hello.service":  "[Service]\nExecStart=/bin/sh -c 'echo hello > /run/hello; exec sleep infinity'\n",
			"broken.service": "[Service]\nExecStart=/bin/sh -c 'echo fatal: no config in /etc/broken >&2; exit 3'\n",
		}},
	})
	began := time.Now()
	m.Start()
	t.Logf("booted to the agent in %v (%s)", time.Since(began).Round(time.Millisecond), tb.Accel())
	m.WaitForUnit("multi-user.target")
	t.Logf("multi-user.target after %v", time.Since(began).Round(time.Millisecond))
	m.WaitForUnit("hello")
	if got := m.UnitState("hello.service"); got != "active" {
		t.Errorf("UnitState(hello): got %q, want active", got)
	}
	if got := m.Succeed("cat /run/hello /etc/motd; hostname; test -d /lib/modules/$(uname -r)/kernel && echo modules"); got != "hello\nfrom the spec\ndeb\nmodules\n" {
		t.Errorf("got %q, want the unit's file, the spec's file, the hostname and the modules", got)
	}
	if got := m.Succeed("ip -4 -o addr show dev eth0 | awk '{print $4}'"); got != "192.168.1.1/24\n" {
		t.Errorf("eth0: got %q, want 192.168.1.1/24", got)
	}
	msg, took := expectFatal(t, func() { m.WithTimeout(time.Minute).WaitForUnit("broken") })
	if took > 15*time.Second || !strings.Contains(msg, `unit broken reached state "failed"`) || !strings.Contains(msg, "fatal: no config in /etc/broken") {
		t.Errorf("WaitForUnit(broken) failed after %v with %q, want a fast failure with the unit's output", took, msg)
	}

	m.Succeed("echo kept > /root/mark && sync")
	began = time.Now()
	m.Reboot()
	t.Logf("rebooted in %v", time.Since(began).Round(time.Millisecond))
	if got := m.Succeed("cat /root/mark"); got != "kept\n" {
		t.Errorf("after Reboot: got %q, want the file written before", got)
	}
}
