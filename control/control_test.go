package control

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown/internal/rundir"
)

// fakeAgent is an SSH server on a socketpair that answers exec requests
// with "ran: CMD" on stdout, "err" on stderr and exit status 3, as a
// guest agent would.
func fakeAgent(t *testing.T) *ssh.Client {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(signer)
	// A socket, not net.Pipe: both ends write their version line at once,
	// which an unbuffered pipe deadlocks on.
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		a, err := ln.Accept()
		if err != nil {
			return
		}
		_, chans, reqs, err := ssh.NewServerConn(a, cfg)
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go func() {
				for r := range creqs {
					if r.Type != "exec" {
						r.Reply(false, nil)
						continue
					}
					r.Reply(true, nil)
					cmd := string(r.Payload[4:])
					fmt.Fprintf(ch, "ran: %s\n", cmd)
					fmt.Fprint(ch.Stderr(), "err\n")
					status := make([]byte, 4)
					binary.BigEndian.PutUint32(status, 3)
					ch.SendRequest("exit-status", false, status)
					ch.Close()
				}
			}()
		}
	}()
	b, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(b, "agent", &ssh.ClientConfig{User: "root", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	c := ssh.NewClient(sc, chans, reqs)
	t.Cleanup(func() { c.Close() })
	return c
}

func serve(t *testing.T) (*Server, string) {
	t.Helper()
	parent := t.TempDir()
	dir, err := rundir.Make(parent, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Release(true) })
	web := fakeAgent(t)
	s, err := Serve(Config{
		Dir:  dir.Path,
		Name: t.Name(),
		Machines: func() []Machine {
			return []Machine{{Name: "db"}, {Name: "web", Running: true}}
		},
		Agent: func(name string) (*ssh.Client, error) {
			if name == "web" {
				return web, nil
			}
			return nil, fmt.Errorf("machine %s is not running", name)
		},
		// Every test runs with HTTP beside SSH, as testbeds do.
		HTTP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "http %s %s", r.Method, r.URL.Path)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, parent
}

func dial(t *testing.T, socket, user string) *ssh.Client {
	t.Helper()
	conn, err := net.Dial("unix", socket)
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

// TestHTTP checks that a connection beginning with an HTTP request reaches
// Config.HTTP, on the same socket as SSH.
func TestHTTP(t *testing.T) {
	s, _ := serve(t)
	client := &http.Client{Timeout: 10 * time.Second, Transport: Transport(s.Socket())}
	for _, method := range []string{"GET", "HEAD", "POST"} {
		req, _ := http.NewRequest(method, "http://testbed/api/view", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s over the control socket: %v", method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "http " + method + " /api/view"; method != "HEAD" && string(body) != want {
			t.Errorf("%s: got %q, want %q", method, body, want)
		}
	}
	// SSH still works on the same socket.
	sess, err := dial(t, s.Socket(), "web").NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := sess.Output("hostname")
	if string(out) != "ran: hostname\n" {
		t.Errorf("ssh beside http: %q", out)
	}
	s.Close()
	if _, err := client.Get("http://testbed/api/view"); err == nil {
		t.Error("http answered after Close")
	}
}

func TestStateAndRunning(t *testing.T) {
	s, parent := serve(t)
	beds, err := Running(parent)
	if err != nil || len(beds) != 1 {
		t.Fatalf("Running = %+v, %v; want one testbed", beds, err)
	}
	st := beds[0]
	if st.Name != t.Name() || st.PID != os.Getpid() || st.Socket != s.Socket() || filepath.Base(st.Socket) != SocketName {
		t.Errorf("got state %+v, want name %s, pid %d, socket %s", st, t.Name(), os.Getpid(), s.Socket())
	}
	if len(st.Machines) != 2 || st.Machines[1] != (Machine{Name: "web", Running: true}) {
		t.Errorf("got machines %+v, want db and a running web", st.Machines)
	}
	fi, err := os.Stat(st.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket: got %v, %v, want mode 0600", fi, err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(st.Dir, StateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after Close: %v, want it removed", err)
	}
}

func TestRejections(t *testing.T) {
	s, _ := serve(t)
	for _, tc := range []struct{ user, want string }{
		{"nosuch", `has no machine "nosuch" (it has: db, web)`},
		{"db", "machine db is not running"},
	} {
		_, err := dial(t, s.Socket(), tc.user).NewSession()
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) || !strings.Contains(oce.Message, tc.want) {
			t.Errorf("session on %s: got %v, want a rejection saying %q", tc.user, err, tc.want)
		}
	}
}

func TestExecSpliced(t *testing.T) {
	s, _ := serve(t)
	for _, viaHeader := range []bool{false, true} {
		var c *ssh.Client
		if viaHeader {
			// As `shakedown proxy` does: the header names the machine,
			// the SSH user is the guest's.
			conn, err := net.Dial("unix", s.Socket())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "%sweb\n", Header)
			sc, chans, reqs, err := ssh.NewClientConn(conn, "control", &ssh.ClientConfig{User: "root", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
			if err != nil {
				t.Fatal(err)
			}
			c = ssh.NewClient(sc, chans, reqs)
			defer c.Close()
		} else {
			c = dial(t, s.Socket(), "web")
		}
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		sess.Stderr = &stderr
		out, err := sess.Output("hostname")
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
			t.Errorf("header %v: got error %v, want exit status 3", viaHeader, err)
		}
		if string(out) != "ran: hostname\n" || stderr.String() != "err\n" {
			t.Errorf("header %v: got stdout %q stderr %q, want the agent's output in order", viaHeader, out, stderr.String())
		}
	}
}
