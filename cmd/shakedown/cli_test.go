package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// These tests run the shakedown command as a user does: built once, in a
// terminal (a pseudo-terminal) or not, interrupted with SIGINT.

var cli struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shakedown-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cli.path = filepath.Join(dir, "shakedown")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func shakedownCLI(t *testing.T) string {
	t.Helper()
	cli.once.Do(func() {
		out, err := exec.Command("go", "build", "-o", cli.path, ".").CombinedOutput()
		if err != nil {
			cli.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cli.err != nil {
		t.Fatal(cli.err)
	}
	return cli.path
}

// command is `shakedown args...` with SHAKEDOWN_OUTPUT=out and CI unset.
func command(t *testing.T, out string, args ...string) *exec.Cmd {
	cmd := exec.Command(shakedownCLI(t), args...)
	cmd.Env = append(os.Environ(), "SHAKEDOWN_OUTPUT="+out, "CI=", "NO_COLOR=1")
	return cmd
}

// scenarioFile writes a scenario into a temporary directory.
func scenarioFile(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sc.star")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// qemuChildren lists the QEMU processes whose parent is pid.
func qemuChildren(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(qemu-system") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// checkGone fails if any of pids still runs, or out still holds a run
// directory.
func checkGone(t *testing.T, pids []int, out string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("QEMU %d still runs", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("run directory %s is left in %s", e.Name(), out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until cond holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, output func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; output so far:\n%s", d, what, output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bootTimeout bounds a boot of a small machine under TCG on a loaded CI
// runner (about 5 s idle).
const bootTimeout = 2 * time.Minute

const webScenario = `web = machine("web", memory = "256M")

def test():
    web.succeed("true")
`

// TestInteractive drives `shakedown run --interactive` through a
// pseudo-terminal, and, while its machine is up, reaches it with shakedown
// ls, shakedown ssh and OpenSSH's ssh and scp through shakedown proxy.
func TestInteractive(t *testing.T) {
	testenv.NeedVM(t)
	out := t.TempDir()
	cmd := command(t, out, "run", "--interactive", scenarioFile(t, webScenario))
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var screen syncBuffer
	copied := make(chan struct{})
	go func() { io.Copy(&screen, ptmx); close(copied) }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()

	waitFor(t, bootTimeout, "the prompt", func() bool { return strings.Contains(screen.String(), ">>> ") }, screen.String)
	qemus := qemuChildren(cmd.Process.Pid)
	if len(qemus) != 1 {
		t.Errorf("got QEMU children %v, want one", qemus)
	}

	t.Run("ls", func(t *testing.T) {
		got, err := command(t, out, "ls").CombinedOutput()
		if err != nil || !strings.Contains(string(got), "web") || !strings.Contains(string(got), strconv.Itoa(cmd.Process.Pid)) {
			t.Errorf("shakedown ls: got %v and\n%s\nwant the testbed with web", err, got)
		}
	})
	t.Run("ssh", func(t *testing.T) {
		c := command(t, out, "ssh", "web", "hostname; echo oops >&2")
		var stderr bytes.Buffer
		c.Stderr = &stderr
		got, err := c.Output()
		if err != nil || string(got) != "web\n" || stderr.String() != "oops\n" {
			t.Errorf("shakedown ssh web hostname: got %v, stdout %q, stderr %q, want web and oops", err, got, stderr.String())
		}
		err = command(t, out, "ssh", "web", "exit 3").Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Errorf("shakedown ssh web 'exit 3': got %v, want exit status 3", err)
		}
		got, err = command(t, out, "ssh", "nosuch", "true").CombinedOutput()
		if err == nil || !strings.Contains(string(got), `no running testbed has a machine "nosuch"`) {
			t.Errorf("shakedown ssh nosuch: got %v, %q, want an error naming it", err, got)
		}
	})
	t.Run("openssh", func(t *testing.T) { openSSH(t, out) })

	// Tab completes web.succ to web.succeed.
	io.WriteString(ptmx, "web.succ\t")
	waitFor(t, 10*time.Second, "the completion", func() bool { return strings.Contains(screen.String(), "web.succeed") }, screen.String)
	io.WriteString(ptmx, "(\"hostname\")\r")
	waitFor(t, time.Minute, "the command's value", func() bool { return strings.Contains(screen.String(), `"web\n"`) }, screen.String)
	io.WriteString(ptmx, "x = 2\r")
	io.WriteString(ptmx, "x * 21\r")
	waitFor(t, 10*time.Second, "42", func() bool { return strings.Contains(screen.String(), "42") }, screen.String)
	io.WriteString(ptmx, "\x04")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("shakedown run --interactive: %v after Ctrl-D, want success; screen:\n%s", err, screen.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after Ctrl-D; screen:\n%s", screen.String())
	}
	ptmx.Close()
	<-copied
	checkGone(t, qemus, out)
}

// openSSH uses OpenSSH's ssh and scp through shakedown proxy.
func openSSH(t *testing.T, out string) {
	if _, err := exec.LookPath("ssh"); err != nil {
		if testenv.InCI() {
			t.Fatal("ssh not found and CI=true: install openssh-client")
		}
		t.Skip("ssh not found: apt-get install openssh-client to test shakedown proxy")
	}
	home := t.TempDir()
	opts := []string{
		"-F", "/dev/null",
		"-o", "ProxyCommand=" + shakedownCLI(t) + " proxy %h",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "BatchMode=yes",
	}
	run := func(name string, args ...string) string {
		t.Helper()
		c := exec.Command(name, args...)
		c.Env = append(os.Environ(), "SHAKEDOWN_OUTPUT="+out, "HOME="+home)
		got, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, got)
		}
		return string(got)
	}
	if got := run("ssh", append(opts, "root@web", "hostname; echo $USER")...); !strings.HasPrefix(got, "web\n") {
		t.Errorf("ssh root@web hostname: got %q, want web", got)
	}
	src := filepath.Join(home, "up.txt")
	os.WriteFile(src, []byte("through scp\n"), 0o644)
	run("scp", append(opts, src, "root@web:/tmp/up.txt")...)
	if got := run("ssh", append(opts, "root@web", "cat /tmp/up.txt")...); got != "through scp\n" {
		t.Errorf("after scp to web: got %q, want %q", got, "through scp\n")
	}
	back := filepath.Join(home, "down.txt")
	run("scp", append(opts, "root@web:/tmp/up.txt", back)...)
	if got, _ := os.ReadFile(back); string(got) != "through scp\n" {
		t.Errorf("after scp from web: got %q, want %q", got, "through scp\n")
	}
}

// interrupt starts `shakedown run` on src, waits until ready says so,
// sends SIGINT, and checks that it ends within seconds leaving nothing.
func interrupt(t *testing.T, src string, ready func(output string, qemus []int) bool) {
	t.Helper()
	out := t.TempDir()
	cmd := command(t, out, "run", scenarioFile(t, src))
	var output syncBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var qemus []int
	waitFor(t, bootTimeout, "the moment to interrupt", func() bool {
		if k := qemuChildren(cmd.Process.Pid); len(k) > 0 {
			qemus = k
		}
		return ready(output.String(), qemus)
	}, output.String)
	began := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Errorf("got %v after SIGINT, want a failure", err)
		}
	case <-time.After(interruptTimeout):
		cmd.Process.Kill()
		t.Fatalf("still running %v after SIGINT:\n%s", interruptTimeout, output.String())
	}
	t.Logf("ended %.1f s after SIGINT", time.Since(began).Seconds())
	if !strings.Contains(output.String(), "interrupt: stopped 1 testbed(s)") {
		t.Errorf("output lacks the interruption:\n%s", output.String())
	}
	checkGone(t, qemus, out)
}

// interruptTimeout is how soon Ctrl-C must have stopped everything.
const interruptTimeout = 10 * time.Second

func TestInterruptDuringBoot(t *testing.T) {
	testenv.NeedVM(t)
	interrupt(t, webScenario, func(_ string, qemus []int) bool { return len(qemus) > 0 })
}

func TestInterruptDuringStep(t *testing.T) {
	testenv.NeedVM(t)
	src := `web = machine("web", memory = "256M")
web.succeed("sleep 600")
`
	interrupt(t, src, func(output string, _ []int) bool {
		// The step's title comes before the boot it starts.
		return strings.Contains(output, `web: succeed "sleep 600"`) && strings.Contains(output, "web: up in ")
	})
}

// TestConcurrentRuns runs two scenarios at once in the same output
// directory: separate run directories, no fixed ports, both pass.
func TestConcurrentRuns(t *testing.T) {
	testenv.NeedVM(t)
	out := t.TempDir()
	src := scenarioFile(t, `web = machine("web", memory = "256M")

def test():
    web.succeed("httpd -p 80 -h /tmp")
    web.wait_for_open_port(80)
    addr = web.forward_port(80)
    log("forwarded to", addr)
`)
	var wg sync.WaitGroup
	outputs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := command(t, out, "run", src).CombinedOutput()
			outputs[i], errs[i] = string(got), err
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || !strings.Contains(outputs[i], "PASS ") {
			t.Errorf("run %d: got %v, want a pass:\n%s", i+1, errs[i], outputs[i])
		}
	}
	checkGone(t, nil, out)
}
