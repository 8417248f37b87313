package shakedown

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// TestAgentReconnect drops the host's connection to a real guest's agent
// while a command runs, and connects again: the agent, PID 1 in the guest,
// must notice and serve the new connection.
func TestAgentReconnect(t *testing.T) {
	testenv.NeedVM(t)
	tb := New(t, Options{QuietConsole: true})
	m := tb.Machine("reconnect", MachineConfig{})
	m.Start()
	for i := 0; i < 3; i++ {
		v := m.current()
		go v.Agent().Exec(context.Background(), agentclient.Command{Cmd: "yes >/dev/null"})
		time.Sleep(200 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := v.Reconnect(ctx)
		cancel()
		if err != nil {
			t.Fatalf("reconnect %d: %v", i, err)
		}
		// The command of the dropped connection was killed with it.
		if out := m.Succeed("ps -o comm | grep -c '^yes$' || true"); strings.TrimSpace(out) != "0" {
			t.Errorf("reconnect %d: %s 'yes' processes survive their connection", i, strings.TrimSpace(out))
		}
	}
}

// TestUserKernelAndInitrd boots a kernel and an initramfs given by path, as
// a user who builds their own would: here Debian's bzImage (so the
// compressed-kernel boot path is covered too) and an initramfs built before.
func TestUserKernelAndInitrd(t *testing.T) {
	testenv.NeedVM(t)
	tb := New(t, Options{QuietConsole: true})
	k, err := kernel.Debian(tb.ctx, tb.cache, deb.Apt{})
	if err != nil {
		t.Fatal(err)
	}
	own := tb.Machine("own", MachineConfig{Kernel: k.BzImage, ModulesDir: k.ModulesDir})
	if got := own.Succeed("hostname"); got != "own\n" {
		t.Errorf("got hostname %q from the bzImage machine, want own", got)
	}
	bf, err := tb.bootFiles(tb.ctx, "m", MachineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ird := tb.Machine("ird", MachineConfig{Kernel: k.BzImage, Initrd: bf.Initrd})
	ird.Succeed("true")
	if _, err := tb.bootFiles(tb.ctx, "m", MachineConfig{Kernel: "/nonexistent/vmlinuz"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/vmlinuz") {
		t.Errorf("got %v for a missing kernel, want an error naming it", err)
	}
}
