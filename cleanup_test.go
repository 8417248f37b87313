package shakedown_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/rundir"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// envHelper makes the test binary act as a test process that boots a
// machine and waits to be killed (TestHelperBootAndWait).
const envHelper = "SHAKEDOWN_TEST_HELPER"

// TestHelperBootAndWait is not a test: the cleanup tests run the test
// binary with it as a separate process, boot a machine in it and kill it.
func TestHelperBootAndWait(t *testing.T) {
	if os.Getenv(envHelper) == "" {
		t.Skip("helper process for the cleanup tests")
	}
	tb := shakedown.New(t, shakedown.Options{QuietConsole: true})
	m := tb.Machine("victim", shakedown.MachineConfig{})
	m.Start()
	fmt.Printf("READY pid=%d dir=%s\n", m.PID(), tb.OutputDir())
	time.Sleep(2 * time.Minute)
}

// startVictim runs TestHelperBootAndWait in a child process with its
// artifacts under out, and returns it with its QEMU's pid and run dir.
func startVictim(t *testing.T, out string) (*exec.Cmd, int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBootAndWait$")
	cmd.Env = append(os.Environ(), envHelper+"=1", shakedown.EnvOutput+"="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the helper process ended before its machine was up")
			}
			var pid int
			var dir string
			if _, err := fmt.Sscanf(l, "READY pid=%d dir=%s", &pid, &dir); err == nil {
				go func() {
					for range lines {
					}
				}()
				return cmd, pid, dir
			}
		case <-timeout:
			t.Fatal("the helper process's machine was not up within 3 minutes")
		}
	}
}

// gone waits until pid no longer runs (a zombie waiting for a reaper
// counts as gone: it holds no resources but its pid).
func gone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func TestSIGKILLLeavesNothing(t *testing.T) {
	testenv.NeedVM(t)
	out := t.TempDir()
	cmd, pid, dir := startVictim(t, out)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !gone(pid, 5*time.Second) {
		t.Fatalf("QEMU (pid %d) still runs 5s after its test process was killed with SIGKILL", pid)
	}
	// The killed process could not remove its run directory; the next
	// testbed's sweep does, because nobody holds its lock any more.
	if removed := rundir.Sweep(out); len(removed) != 1 || removed[0] != dir {
		t.Errorf("sweep removed %v, want [%s]", removed, dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir %s still there after the sweep: %v", dir, err)
	}
}

func TestSIGINTCleansUp(t *testing.T) {
	testenv.NeedVM(t)
	out := t.TempDir()
	cmd, pid, dir := startVictim(t, out)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the test process did not stop within 10s of SIGINT")
	}
	if !gone(pid, 5*time.Second) {
		t.Errorf("QEMU (pid %d) still runs after SIGINT", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir %s left behind after SIGINT: %v", dir, err)
	}
}

func TestGlobalTimeout(t *testing.T) {
	testenv.NeedVM(t)
	// Registered first, so it runs after the testbed's own cleanup.
	var pid int
	t.Cleanup(func() {
		if pid != 0 && !gone(pid, 5*time.Second) {
			t.Errorf("QEMU %d outlived the testbed", pid)
		}
	})
	tb := shakedown.New(t, shakedown.Options{Timeout: 20 * time.Second})
	m := tb.Machine("late", shakedown.MachineConfig{})
	m.Start()
	pid = m.PID()
	msg, _ := expectErr(t, func() error { return err2(m.SucceedE("sleep 600")) })
	if !strings.Contains(msg, "global timeout") || !strings.Contains(msg, "Options.Timeout") {
		t.Errorf("got %q, want the global timeout named with its fix", msg)
	}
}

func TestSetupErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	tests := []struct {
		name string
		env  map[string]string
		opts shakedown.Options
		// atStart: New works, and the first machine's start fails (QEMU
		// and the accelerator are looked for then).
		atStart bool
		want    []string
	}{
		{"no qemu", map[string]string{"PATH": t.TempDir()}, shakedown.Options{}, true, []string{"qemu-system-x86_64 not found", "apt-get install qemu-system-x86"}},
		{"cache unusable", nil, shakedown.Options{CacheDir: filepath.Join(notDir, "cache")}, false, []string{"SHAKEDOWN_CACHE"}},
		{"bad accel", nil, shakedown.Options{Accel: "hvf"}, true, []string{"hvf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.name != "no qemu" {
				testenv.NeedVM(t)
			}
			msg, _ := expectErr(t, func() error {
				tb, err := shakedown.NewE(t, tt.opts)
				if err != nil || !tt.atStart {
					return err
				}
				return tb.Machine("m", shakedown.MachineConfig{}).StartE()
			})
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("got %q, want it to contain %q", msg, w)
				}
			}
		})
	}
}

func TestNoAptLists(t *testing.T) {
	testenv.NeedVM(t)
	// An apt configuration whose lists are empty stands for a fresh host
	// where apt-get update never ran.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lists", "partial"), 0o755)
	conf := filepath.Join(dir, "apt.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("Dir::State::Lists %q;\nDir::Cache %q;\n", filepath.Join(dir, "lists"), dir)), 0o644)
	t.Setenv("APT_CONFIG", conf)
	tb := shakedown.New(t, shakedown.Options{CacheDir: t.TempDir()})
	m := tb.Machine("nokernel", shakedown.MachineConfig{})
	msg, _ := expectErr(t, func() error { return m.StartE() })
	if !strings.Contains(msg, "apt-get update") {
		t.Errorf("got %q, want it to say to run apt-get update", msg)
	}
}
