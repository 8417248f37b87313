package agent_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/agent"
	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/internal/agenttest"
)

func dial(t *testing.T) *agentclient.Client {
	t.Helper()
	c, _ := dialConsole(t)
	return c
}

// dialConsole is dial that also returns what the agent writes to its
// console.
func dialConsole(t *testing.T) (*agentclient.Client, *agenttest.Console) {
	t.Helper()
	return agenttest.Start(t)
}

// eventually polls cond until it holds or within passes; it is for
// effects that follow the call under test at a time nothing bounds.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func TestExec(t *testing.T) {
	c := dial(t)
	tests := []struct {
		name       string
		cmd        agentclient.Command
		status     int
		stdout     string
		stderr     string
		signalName string
	}{
		{"true", agentclient.Command{Cmd: "true"}, 0, "", "", ""},
		{"status", agentclient.Command{Cmd: "exit 3"}, 3, "", "", ""},
		{"streams", agentclient.Command{Cmd: "echo out; echo err >&2"}, 0, "out\n", "err\n", ""},
		{"env", agentclient.Command{Cmd: `echo "$A $B"`, Env: map[string]string{"A": "1", "B": "two words"}}, 0, "1 two words\n", "", ""},
		{"dir", agentclient.Command{Cmd: "pwd", Dir: "/tmp"}, 0, "/tmp\n", "", ""},
		{"stdin", agentclient.Command{Cmd: "tr a-z A-Z", Stdin: strings.NewReader("hello")}, 0, "HELLO", "", ""},
		{"no stdin is EOF", agentclient.Command{Cmd: "cat; echo done"}, 0, "done\n", "", ""},
		{"signal", agentclient.Command{Cmd: "kill -TERM $$"}, 128 + 15, "", "", "TERM"},
		{"not found", agentclient.Command{Cmd: "/nonexistent/x"}, 127, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := c.Exec(ctx, tt.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.status || string(res.Stdout) != tt.stdout || res.Signal != tt.signalName {
				t.Errorf("got status %d signal %q stdout %q, want %d %q %q", res.Status, res.Signal, res.Stdout, tt.status, tt.signalName, tt.stdout)
			}
			if tt.stderr != "" && string(res.Stderr) != tt.stderr {
				t.Errorf("got stderr %q, want %q", res.Stderr, tt.stderr)
			}
		})
	}
}

func TestExecTimeoutKillsWithPartialOutput(t *testing.T) {
	c := dial(t)
	marker := filepath.Join(t.TempDir(), "child-alive")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The background child shares the process group and must die too.
	res, err := c.Exec(ctx, agentclient.Command{Cmd: "echo partial; (sleep 2; touch " + marker + ") & sleep 30"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got err %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Exec returned after %v, want soon after the 500ms deadline", el)
	}
	if string(res.Stdout) != "partial\n" {
		t.Errorf("got stdout %q, want the partial output %q", res.Stdout, "partial\n")
	}
	if res.Signal != "KILL" {
		t.Errorf("got signal %q, want KILL", res.Signal)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Error("background child of the killed command survived and ran")
	}
}

func TestExecDetachedChildDoesNotHang(t *testing.T) {
	c := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res, err := c.Exec(ctx, agentclient.Command{Cmd: "sleep 60 & echo started"})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a command that left a child holding stdout took %v, want well under 2s", el)
	}
	if res.Status != 0 || string(res.Stdout) != "started\n" {
		t.Errorf("got status %d stdout %q, want 0 %q", res.Status, res.Stdout, "started\n")
	}
}

// TestBackgroundJobOutlivesCommand: a job that a command leaves running
// (`daemon >&2 &`, how NixOS tests start servers) must survive writing to
// the output it inherited after the command has returned, and what it
// writes must reach the console, marked as a background job's.
func TestBackgroundJobOutlivesCommand(t *testing.T) {
	tests := []struct {
		name string
		job  string // runs in the background, then touches $DIR/after
		want []string
	}{
		{"stdout and stderr", `echo late; echo late2 >&2`, []string{"late", "late2"}},
		{"stderr redirect", `echo daemon log >&2`, []string{"daemon log"}},
		// More than a pipe holds, without a newline: a reader must keep
		// up, and cut it into bounded lines.
		{"long line", `head -c 300000 /dev/zero | tr '\0' x`, []string{strings.Repeat("x", 8<<10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, console := dialConsole(t)
			dir := t.TempDir()
			// The job writes only once the test has the command's result,
			// which makes sure the output comes after the command's exit.
			// It gives up after 10 s, so that a failed test leaves nothing.
			cmd := `(n=0; while [ ! -e "$DIR/go" ] && [ $n -lt 500 ]; do sleep 0.02; n=$((n+1)); done; ` + tt.job + `; touch "$DIR/after") &`
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			res, err := c.Exec(ctx, agentclient.Command{Cmd: cmd, Env: map[string]string{"DIR": dir}})
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); res.Status != 0 || el > 2*time.Second {
				t.Fatalf("got status %d after %v, want 0 well before the job ends", res.Status, el)
			}
			if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			after := filepath.Join(dir, "after")
			if !eventually(5*time.Second, func() bool { _, err := os.Stat(after); return err == nil }) {
				t.Fatalf("%s never appeared: the job died after the command returned; console got %q", after, clip(console.String()))
			}
			prefix := "[bg: (n=0; while [ ! -e "
			for _, line := range tt.want {
				if !eventually(5*time.Second, func() bool { return hasLine(console.String(), prefix, line) }) {
					t.Errorf("console got %q, want a line %q after a prefix %q...", clip(console.String()), clip(line), prefix)
				}
			}
		})
	}
}

// clip shortens s for a failure message.
func clip(s string) string {
	if len(s) > 300 {
		return s[:150] + "..." + s[len(s)-150:]
	}
	return s
}

// hasLine reports whether out has a line that starts with prefix and ends
// with "] "+text.
func hasLine(out, prefix, text string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) && strings.HasSuffix(l, "] "+text) {
			return true
		}
	}
	return false
}

func TestSFTPAndForwarding(t *testing.T) {
	c := dial(t)
	sc, err := c.SFTP()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "f")
	f, err := sc.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "via sftp")
	f.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "via sftp" {
		t.Fatalf("got %q %v, want %q", b, err, "via sftp")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if conn, err := ln.Accept(); err == nil {
			io.WriteString(conn, "hi from guest port")
			conn.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.DialGuest(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if string(b) != "hi from guest port" {
		t.Errorf("got %q through direct-tcpip, want %q", b, "hi from guest port")
	}
	ln.Close()
	if conn, err := c.DialGuest(ctx, "tcp", ln.Addr().String()); err == nil {
		conn.Close()
		t.Error("dial to a closed port succeeded, want an error")
	}
}

// TestReconnect proves the agent outlives its host: after one host goes
// away mid-session, with bytes of that session still in flight, the next
// handshake on the same port starts a working session.
func TestReconnect(t *testing.T) {
	a, err := agent.New(agent.Config{Console: &agenttest.Console{}})
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A relay stands in for QEMU: the guest end stays open while host
	// connections come and go, like the chardev in front of the port.
	guest := os.NewFile(uintptr(fds[0]), "guest")
	relayF := os.NewFile(uintptr(fds[1]), "relay")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			g, _ := unix.Dup(int(guest.Fd()))
			a.ServeSession(ctx, os.NewFile(uintptr(g), "guest"))
		}
	}()
	// Like QEMU, the relay drops what the guest writes while no host is
	// attached, and hands each new host the stream from then on.
	var mu sync.Mutex
	var cur net.Conn
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := relayF.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			if cur != nil {
				cur.Write(buf[:n])
			}
			mu.Unlock()
		}
	}()
	for i := 0; i < 3; i++ {
		h, r := net.Pipe()
		mu.Lock()
		cur = r
		mu.Unlock()
		go io.Copy(relayF, r)
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := agentclient.Dial(dctx, h)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		res, err := c.Exec(dctx, agentclient.Command{Cmd: "echo ok"})
		if err != nil || string(res.Stdout) != "ok\n" {
			t.Fatalf("connection %d: got %q %v, want ok", i, res.Stdout, err)
		}
		// Leave a command running and drop the host without a goodbye.
		go c.Exec(dctx, agentclient.Command{Cmd: "yes"})
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		h.Close()
		r.Close()
		cur = nil
		mu.Unlock()
		dcancel()
	}
}

// TestStandardSession checks what OpenSSH clients use: the "session"
// channel with exec, environment, exit status and a terminal.
func TestStandardSession(t *testing.T) {
	c := dial(t)
	sess, err := c.SSH().NewSession()
	if err != nil {
		t.Fatal(err)
	}
	sess.Setenv("GREETING", "hi")
	out, err := sess.Output(`echo "$GREETING"; exit 4`)
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 4 || string(out) != "hi\n" {
		t.Errorf("got %q %v, want %q and exit status 4", out, err, "hi\n")
	}

	sess, err = c.SSH().NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out, err = sess.Output("tty; echo $TERM; stty size")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(string(out)), "\r", ""), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "/dev/pts/") || lines[1] != "xterm" || lines[2] != "24 80" {
		t.Errorf("got %q from a PTY session, want a /dev/pts tty, TERM=xterm and size 24 80", lines)
	}
}
