// Package agent is the shakedown guest agent: it runs inside the machine,
// as PID 1 of an initramfs or as a service of a full system, and serves SSH
// (exec, PTY shells, SFTP, forwarding) on a virtio-serial port. It knows
// nothing of the host; it imports only internal/agentproto of shakedown's.
package agent

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// Config says where the agent listens.
type Config struct {
	// Port is the virtio-serial port name; "" means agentproto.PortName.
	Port string
	// PortWait bounds the search for the port after boot.
	PortWait time.Duration
	// Services are supervised by the agent once StartServices is called
	// (see supervise.go).
	Services []agentproto.Service
	// Console receives output lines that belong to no host session,
	// prefixed with their source: "[name] " for a service's, "[bg: cmd] "
	// for what a command's background jobs print after it has exited
	// (see commandOutput). Nil means stderr, the console of PID 1 and so
	// the machine's log.
	Console io.Writer
}

// Agent serves one host connection at a time on its port.
type Agent struct {
	cfg     Config
	reaper  *reaper
	ssh     *ssh.ServerConfig
	pid1    bool
	console *console
	sup     *supervisor // nil when there are no services
}

// New prepares an agent: a fresh host key (the port is a private line to
// the testbed that started the machine, so neither side authenticates the
// other; see agentclient) and the reaper for the commands it will run.
func New(cfg Config) (*Agent, error) {
	if cfg.Port == "" {
		cfg.Port = agentproto.PortName
	}
	if cfg.PortWait == 0 {
		cfg.PortWait = 60 * time.Second
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	sc := &ssh.ServerConfig{NoClientAuth: true}
	// AES-GCM first: with AES-NI (emulated by TCG too) it costs least.
	sc.Ciphers = []string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr"}
	sc.AddHostKey(signer)
	out := cfg.Console
	if out == nil {
		out = os.Stderr
	}
	a := &Agent{cfg: cfg, reaper: processReaper(), ssh: sc, pid1: os.Getpid() == 1, console: &console{w: out}}
	if len(cfg.Services) > 0 {
		if a.sup, err = newSupervisor(cfg.Services, a.reaper, a.baseEnv(), a.console); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Serve finds the port and serves host connections on it until ctx ends.
// A host that disconnects, or a session that breaks, only ends that session:
// the agent reopens the port and waits for the next handshake.
func (a *Agent) Serve(ctx context.Context) error {
	dev, err := a.findPort(ctx)
	if err != nil {
		return err
	}
	logf("serving on %s (port %s)", dev, a.cfg.Port)
	for ctx.Err() == nil {
		if err := a.serveOnce(ctx, dev); err != nil && err != io.EOF {
			logf("session: %v", err)
		}
	}
	return ctx.Err()
}

// findPort looks up the /dev node of the named virtio-serial port; drivers
// probe asynchronously, so it polls until PortWait.
func (a *Agent) findPort(ctx context.Context) (string, error) {
	deadline := time.Now().Add(a.cfg.PortWait)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err == nil && strings.TrimSpace(string(b)) == a.cfg.Port {
				dev := "/dev/" + filepath.Base(filepath.Dir(n))
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("virtio-serial port %q not found after %v (is virtio_console loaded and the port declared to QEMU?)", a.cfg.Port, a.cfg.PortWait)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// serveOnce opens the port and serves one session on it.
func (a *Agent) serveOnce(ctx context.Context, dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	return a.ServeSession(ctx, f)
}

// ServeSession does the handshake on f and serves one SSH connection until
// it ends; then it closes f. f is the port, or any stream that reads EOF
// while no host is attached (tests use a socketpair).
func (a *Agent) ServeSession(ctx context.Context, f *os.File) error {
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	pr := &portReader{f: f, waitForHost: true}
	pc := &portConn{r: bufio.NewReaderSize(pr, 64<<10), f: f}
	_, err := agentproto.ScanFor(pc.r, agentproto.Start, "", func(line string) error {
		if nonce, ok := strings.CutPrefix(line, agentproto.Hello); ok && nonce != "" {
			_, err := f.Write(agentproto.Line(agentproto.Ready, nonce))
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	// From here on an EOF means the host went away.
	pr.waitForHost = false
	conn, chans, reqs, err := ssh.NewServerConn(pc, a.ssh)
	if err != nil {
		return fmt.Errorf("ssh handshake: %w", err)
	}
	defer conn.Close()
	go a.globalRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			go a.handleSession(nc)
		case agentproto.ChanExec:
			go a.handleExec(nc)
		case "direct-tcpip":
			go a.forwardTCP(nc)
		case agentproto.ChanStreamLocal:
			go a.forwardUnix(nc)
		case agentproto.ChanUnit:
			go a.handleUnit(nc)
		default:
			nc.Reject(ssh.UnknownChannelType, "unknown channel type "+nc.ChannelType())
		}
	}
	return conn.Wait()
}

func (a *Agent) globalRequests(reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case agentproto.ReqPoweroff, agentproto.ReqReboot:
			req.Reply(true, nil)
			go a.halt(req.Type == agentproto.ReqReboot)
		case agentproto.ReqSetClock:
			req.Reply(setClock(req.Payload) == nil, nil)
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

func (a *Agent) forwardTCP(nc ssh.NewChannel) {
	var d struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &d); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad direct-tcpip payload")
		return
	}
	a.forward(nc, "tcp", net.JoinHostPort(d.Host, fmt.Sprint(d.Port)))
}

func (a *Agent) forwardUnix(nc ssh.NewChannel) {
	var d struct {
		Path     string
		Reserved string
		R2       uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &d); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad streamlocal payload")
		return
	}
	a.forward(nc, "unix", d.Path)
}

// forward connects a channel to addr in the guest. A refused connection is
// a rejected channel, which is how the host learns that a port is closed.
func (a *Agent) forward(nc ssh.NewChannel, network, addr string) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() { io.Copy(ch, c); ch.CloseWrite(); done <- struct{}{} }()
	go func() {
		io.Copy(c, ch)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
	ch.Close()
	c.Close()
}

func (a *Agent) baseEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/sh",
	}
}

// portReader reads the port. A virtio-serial port reads as EOF while the
// host side is closed; before the handshake that only means "nobody yet", so
// it waits and tries again, and after it, that the host went away.
type portReader struct {
	f           *os.File
	waitForHost bool
}

func (r *portReader) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 || err != io.EOF || !r.waitForHost {
			return n, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// portConn makes the port a net.Conn for the SSH server.
type portConn struct {
	r *bufio.Reader
	f *os.File
}

func (c *portConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *portConn) Write(p []byte) (int, error)        { return c.f.Write(p) }
func (c *portConn) Close() error                       { return c.f.Close() }
func (c *portConn) LocalAddr() net.Addr                { return portAddr{} }
func (c *portConn) RemoteAddr() net.Addr               { return portAddr{} }
func (c *portConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *portConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *portConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

type portAddr struct{}

func (portAddr) Network() string { return "virtio-serial" }
func (portAddr) String() string  { return agentproto.PortName }

// setClock sets the wall clock to a ReqSetClock payload.
func setClock(payload []byte) error {
	var t struct{ Nanos uint64 }
	if err := ssh.Unmarshal(payload, &t); err != nil {
		return err
	}
	ts := unix.NsecToTimespec(int64(t.Nanos))
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		logf("set clock: %v", err)
		return err
	}
	return nil
}
