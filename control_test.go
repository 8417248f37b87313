package shakedown_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/control"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// dialControl connects to a testbed's control socket as user (the
// machine's name).
func dialControl(t *testing.T, st control.State, user string) *ssh.Client {
	t.Helper()
	conn, err := net.Dial("unix", st.Socket)
	if err != nil {
		t.Fatalf("dial control socket: %v", err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, "control", &ssh.ClientConfig{
		User: user, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatalf("ssh over the control socket: %v", err)
	}
	c := ssh.NewClient(sc, chans, reqs)
	t.Cleanup(func() { c.Close() })
	return c
}

// findTestbed returns the state of the one testbed running under dir.
func findTestbed(t *testing.T, dir string) control.State {
	t.Helper()
	beds, err := control.Running(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(beds) != 1 {
		t.Fatalf("got %d running testbeds under %s, want 1: %+v", len(beds), dir, beds)
	}
	return beds[0]
}

func TestControlStateAndErrors(t *testing.T) {
	testenv.NeedVM(t)
	out := t.TempDir()
	tb := shakedown.New(t, shakedown.Options{OutputDir: out, Accel: "tcg"})
	tb.Machine("web", shakedown.MachineConfig{})
	st := findTestbed(t, out)
	if st.Dir != tb.OutputDir() || st.PID != os.Getpid() || st.Socket != filepath.Join(tb.OutputDir(), control.SocketName) {
		t.Errorf("got state %+v, want dir %s, pid %d and the socket in it", st, tb.OutputDir(), os.Getpid())
	}
	fi, err := os.Stat(st.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket: got %v, %v, want mode 0600", fi, err)
	}
	c := dialControl(t, st, "nosuch")
	_, err = c.NewSession()
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || !strings.Contains(oce.Message, `has no machine "nosuch"`) {
		t.Errorf("session on an unknown machine: got %v, want a rejection naming it", err)
	}
	c = dialControl(t, st, "web")
	if _, err = c.NewSession(); err == nil || !strings.Contains(err.Error(), "machine web is not running") {
		t.Errorf("session on a stopped machine: got %v, want \"machine web is not running\"", err)
	}
}

func TestControlSocketLongPath(t *testing.T) {
	testenv.NeedVM(t)
	// A run directory too deep for a sockaddr_un: the socket is abstract.
	out := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	tb := shakedown.New(t, shakedown.Options{OutputDir: out, Accel: "tcg"})
	st := findTestbed(t, out)
	if !strings.HasPrefix(st.Socket, "@shakedown-") {
		t.Fatalf("got socket %q for run dir %s, want an abstract one", st.Socket, tb.OutputDir())
	}
	dialControl(t, st, "web")
}

// TestControlChannels boots a machine and uses every kind of channel
// through the control socket, as ssh, scp and sftp clients would.
func TestControlChannels(t *testing.T) {
	testenv.NeedVM(t)
	out := t.TempDir()
	tb := shakedown.New(t, shakedown.Options{OutputDir: out})
	web := tb.Machine("web", shakedown.MachineConfig{MemoryMiB: 256})
	web.Start()
	c := dialControl(t, findTestbed(t, out), "web")

	t.Run("exec", func(t *testing.T) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var stdout, stderr bytes.Buffer
		s.Stdout, s.Stderr = &stdout, &stderr
		s.Stdin = strings.NewReader("from stdin\n")
		err = s.Run("hostname; cat; echo oops >&2; exit 7")
		var exit *ssh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 7 {
			t.Errorf("got %v, want exit status 7", err)
		}
		if got, want := stdout.String(), "web\nfrom stdin\n"; got != want {
			t.Errorf("got stdout %q, want %q", got, want)
		}
		if got, want := stderr.String(), "oops\n"; got != want {
			t.Errorf("got stderr %q, want %q", got, want)
		}
	})
	t.Run("pty", func(t *testing.T) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.RequestPty("xterm", 24, 132, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Output("tty; stty size")
		if err != nil {
			t.Fatalf("%v: %s", err, got)
		}
		if !strings.Contains(string(got), "/dev/pts/") || !strings.Contains(string(got), "24 132") {
			t.Errorf("got %q, want a /dev/pts tty of 24 rows and 132 columns", got)
		}
	})
	t.Run("sftp", func(t *testing.T) {
		sc, err := sftp.NewClient(c)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		f, err := sc.Create("/tmp/put")
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("over sftp\n"))
		f.Close()
		if got := web.Succeed("cat /tmp/put"); got != "over sftp\n" {
			t.Errorf("got %q, want %q", got, "over sftp\n")
		}
	})
	t.Run("direct-tcpip", func(t *testing.T) {
		web.Succeed("nc -ll -p 7 -e cat >/dev/null 2>&1 &")
		web.WaitForOpenPort(7)
		conn, err := c.Dial("tcp", "127.0.0.1:7")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("echo\n"))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "echo\n" {
			t.Errorf("got %q, %v, want the echo", buf, err)
		}
	})
}
