package shakedown_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// expectErr runs f, the E form of a verb that must fail, and returns its
// error as the failing verb would print it (with the console lines) and
// how long f took.
func expectErr(t *testing.T, f func() error) (msg string, took time.Duration) {
	t.Helper()
	began := time.Now()
	err := f()
	took = time.Since(began)
	if err == nil {
		t.Fatalf("the call succeeded, want a failure")
	}
	var me *shakedown.MachineError
	if errors.As(err, &me) {
		return err.Error() + me.ConsoleText(), took
	}
	return err.Error(), took
}

// err2 and err3 keep the error of an E form's results.
func err2[A any](_ A, err error) error         { return err }
func err3[A, B any](_ A, _ B, err error) error { return err }

func newTestbed(t *testing.T) *shakedown.Testbed {
	t.Helper()
	testenv.NeedVM(t)
	return shakedown.New(t, shakedown.Options{})
}

func TestVerbs(t *testing.T) {
	tb := newTestbed(t)
	host := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(host, []byte("from the host\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	m := tb.Machine("m1", shakedown.MachineConfig{
		Files: []shakedown.File{
			{Guest: "/etc/motd", Data: []byte("built in\n")},
			{Guest: "/usr/bin/unixlisten", Host: buildStatic(t, "./testdata/unixlisten")},
		},
	})
	tb.StartAll()

	t.Run("succeed", func(t *testing.T) {
		m := m.WithT(t)
		if got := m.Succeed("hostname"); got != "m1\n" {
			t.Errorf("got hostname %q, want %q", got, "m1\n")
		}
		if got := m.Succeed("cat /etc/motd"); got != "built in\n" {
			t.Errorf("got %q from an image file, want %q", got, "built in\n")
		}
		if got := m.Succeed("uname -r"); !strings.HasSuffix(strings.TrimSpace(got), "-amd64") {
			t.Errorf("got kernel %q, want Debian's -amd64 kernel", got)
		}
		mounts := m.Succeed("cut -d' ' -f2,3 /proc/mounts")
		for _, want := range []string{"/proc proc", "/sys sysfs", "/dev devtmpfs", "/dev/pts devpts", "/run tmpfs", "/tmp tmpfs", "/sys/fs/cgroup cgroup2"} {
			if !strings.Contains(mounts, want+"\n") {
				t.Errorf("mount %q missing from %q", want, mounts)
			}
		}
		if got := m.Succeed("lsmod | cut -d' ' -f1 | sort | tr '\\n' ' '"); !strings.Contains(got, "virtio_console") || !strings.Contains(got, "virtio_pci ") {
			t.Errorf("got modules %q, want virtio_pci and virtio_console loaded", got)
		}
	})
	t.Run("reaps orphans", func(t *testing.T) {
		m := m.WithT(t)
		// Each subshell's child outlives it and is reparented to PID 1,
		// the agent, which must reap it when it exits.
		m.Succeed("for i in 1 2 3 4 5; do (sleep 0.2 &); done")
		m.WaitUntilSucceeds("! ps -o stat | grep -q '^Z'")
	})
	t.Run("execute", func(t *testing.T) {
		m := m.WithT(t)
		status, out := m.Execute("echo out; echo err >&2; exit 7")
		if status != 7 || out != "out\n" {
			t.Errorf("got %d %q, want 7 %q", status, out, "out\n")
		}
	})
	t.Run("fail", func(t *testing.T) {
		m := m.WithT(t)
		m.Fail("false")
		msg, _ := expectErr(t, func() error { return err2(m.FailE("true")) })
		if !strings.Contains(msg, `"true" succeeded`) {
			t.Errorf("got %q, want it to say the command succeeded", msg)
		}
		msg, _ = expectErr(t, func() error { return err2(m.SucceedE("echo nope >&2; exit 3")) })
		if !strings.Contains(msg, "status 3") || !strings.Contains(msg, "nope") {
			t.Errorf("got %q, want the status and stderr", msg)
		}
	})
	t.Run("exec", func(t *testing.T) {
		m := m.WithT(t)
		res, err := m.Exec(shakedown.Command{Cmd: "cat; pwd; echo $X", Dir: "/tmp", Env: map[string]string{"X": "y"}, Stdin: strings.NewReader("in\n")})
		if err != nil || string(res.Stdout) != "in\n/tmp\ny\n" {
			t.Errorf("got %q %v, want %q", res.Stdout, err, "in\n/tmp\ny\n")
		}
	})
	t.Run("wait until", func(t *testing.T) {
		m := m.WithT(t)
		m.Succeed("(sleep 1; touch /tmp/later) >/dev/null 2>&1 &")
		m.WaitUntilSucceeds("test -e /tmp/later")
		m.WaitUntilFails("test -e /tmp/never")
		m.WaitForFile("/tmp/later")
		msg, took := expectErr(t, func() error { return err2(m.WithTimeout(time.Second).WaitUntilSucceedsE("echo still-no; false")) })
		if !strings.Contains(msg, "waited") || !strings.Contains(msg, "still-no") || took > 10*time.Second {
			t.Errorf("got %q after %v, want a timeout naming the last output within seconds", msg, took)
		}
		msg, _ = expectErr(t, func() error { return m.WithTimeout(500 * time.Millisecond).WaitForFileE("/nonexistent") })
		if !strings.Contains(msg, "file /nonexistent") || !strings.Contains(msg, "last console lines") {
			t.Errorf("got %q, want the file and the console", msg)
		}
	})
	t.Run("ports", func(t *testing.T) {
		m := m.WithT(t)
		m.WaitForClosedPort(8080)
		m.Succeed("nc -ll -p 8080 -e cat >/dev/null 2>&1 & echo $! > /tmp/nc.pid")
		m.WaitForOpenPort(8080)
		m.Succeed("kill $(cat /tmp/nc.pid)")
		m.WaitForClosedPort(8080)
		msg, _ := expectErr(t, func() error { return m.WithTimeout(time.Second).WaitForOpenPortE(8081) })
		if !strings.Contains(msg, "127.0.0.1:8081") || !strings.Contains(msg, "refused") {
			t.Errorf("got %q, want the port and the last refusal", msg)
		}
		m.Succeed("nc -ll -p 8080 -e cat >/dev/null 2>&1 &")
		m.WaitForOpenPort(8080)
		conn, err := net.Dial("tcp", m.ForwardPort(8080))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(conn, "echo through the forward")
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if line != "echo through the forward\n" {
			t.Errorf("got %q %v through ForwardPort, want the echo", line, err)
		}
		m.Succeed("unixlisten /run/test.sock >/dev/null 2>&1 &")
		m.WaitForOpenUnixSocket("/run/test.sock")
	})
	t.Run("files", func(t *testing.T) {
		m := m.WithT(t)
		m.CopyTo(host, "/root/dir/payload")
		if got := m.Succeed("cat /root/dir/payload; stat -c %a /root/dir/payload"); got != "from the host\n640\n" {
			t.Errorf("got %q, want the content and mode 640", got)
		}
		m.Succeed("mkdir -p /tmp/tree/sub && echo a > /tmp/tree/sub/a && ln -s sub/a /tmp/tree/link")
		dst := m.CopyFrom("/tmp/tree", "tree")
		if b, err := os.ReadFile(filepath.Join(dst, "link")); err != nil || string(b) != "a\n" {
			t.Errorf("got %q %v through the copied symlink, want %q", b, err, "a\n")
		}
	})
	t.Run("console", func(t *testing.T) {
		m := m.WithT(t)
		m.Succeed("echo marker-$((6*7)) > /dev/console")
		if got := m.WaitForConsoleText(`marker-\d+`); got != "marker-42" {
			t.Errorf("got %q, want marker-42", got)
		}
	})
	t.Run("screenshot", func(t *testing.T) {
		m := m.WithT(t)
		p := m.Screenshot("screen")
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
			t.Errorf("got %d bytes %v at %s, want a PNG", len(b), err, p)
		}
	})
}

// buildStatic builds a static linux/amd64 program for a guest image.
func buildStatic(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestLifecycle(t *testing.T) {
	tb := newTestbed(t)
	m := tb.Machine("life", shakedown.MachineConfig{})
	m.Start()
	first := m.Succeed("cat /proc/sys/kernel/random/boot_id")
	m.Reboot()
	if second := m.Succeed("cat /proc/sys/kernel/random/boot_id"); second == first {
		t.Errorf("boot id %q unchanged across Reboot", first)
	}
	m.Shutdown()
	// A verb on a stopped machine boots it again, as in the NixOS driver.
	m.Succeed("true")
	m.Crash()
	m.Start()
	m.Succeed("true")
	m.Execute("poweroff -f >/dev/null 2>&1 &")
	m.WaitForShutdown()
}

func TestPanicFailsFast(t *testing.T) {
	tb := newTestbed(t)
	m := tb.Machine("panic", shakedown.MachineConfig{})
	m.Start()
	msg, took := expectErr(t, func() error { return err2(m.SucceedE("echo c > /proc/sysrq-trigger; sleep 600")) })
	if !strings.Contains(msg, "Kernel panic") || !strings.Contains(msg, "sysrq") {
		t.Errorf("got %q, want the panic text", msg)
	}
	if took > 20*time.Second {
		t.Errorf("failure took %v, want seconds", took)
	}
}

func TestAgentDeathAtBoot(t *testing.T) {
	tb := newTestbed(t)
	// Without the agent as init, init exits at once and the kernel panics.
	m := tb.Machine("noagent", shakedown.MachineConfig{KernelArgs: []string{"rdinit=/bin/false"}})
	msg, took := expectErr(t, func() error { return m.StartE() })
	if !strings.Contains(msg, "Attempted to kill init") {
		t.Errorf("got %q, want the panic of init's death", msg)
	}
	if took > 30*time.Second {
		t.Errorf("failure took %v, want seconds", took)
	}
}

func TestCommandTimeoutKillsAndReports(t *testing.T) {
	tb := newTestbed(t)
	m := tb.Machine("slow", shakedown.MachineConfig{})
	msg, took := expectErr(t, func() error {
		return err2(m.WithTimeout(2 * time.Second).SucceedE("echo begun; (sleep 5; touch /tmp/survivor) & sleep 600"))
	})
	if !strings.Contains(msg, "killed") || !strings.Contains(msg, "begun") {
		t.Errorf("got %q, want a kill with the partial output", msg)
	}
	if took > 10*time.Second {
		t.Errorf("failure took %v, want about 2s", took)
	}
	time.Sleep(4 * time.Second)
	m.Fail("test -e /tmp/survivor")
	// A command that detaches with stdout open returns at once.
	began := time.Now()
	m.Succeed("sleep 600 &")
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("detached command took %v", d)
	}
}
