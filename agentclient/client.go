// Package agentclient is the host side of the guest agent: it does the
// handshake on the machine's virtio-serial connection and then speaks SSH to
// the agent — commands with separate output streams and exit status, files
// over SFTP, connections into the guest — and answers for the machine's
// units (Units: their status, and systemctl, from the agent's supervisor or
// the guest's systemd). It imports only internal/agentproto of shakedown's.
package agentclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// helloInterval is how often the handshake's Hello is repeated until the
// agent answers: an agent that has not yet noticed that the previous host
// went away swallows the first one into its dead SSH session.
const helloInterval = 500 * time.Millisecond

// ErrClosed is returned once the connection to the agent is gone.
var ErrClosed = errors.New("agent connection closed")

// Client is one SSH connection to an agent. Its methods are safe for
// concurrent use; SSH multiplexes them over the one port.
type Client struct {
	conn net.Conn
	ssh  *ssh.Client

	sftpOnce sync.Once
	sftp     *sftp.Client
	sftpErr  error
}

// Dial does the handshake on conn (a fresh connection to the machine's
// agent port) and starts SSH on it. It waits until ctx ends for an agent
// that is still booting. The caller owns conn only until Dial returns; after
// that Close closes it.
func Dial(ctx context.Context, conn net.Conn) (*Client, error) {
	nonceBytes := make([]byte, 8)
	rand.Read(nonceBytes)
	nonce := hex.EncodeToString(nonceBytes)

	// Closing conn is the only way to interrupt a blocked read on it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	helloDone := make(chan struct{})
	helloErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(helloInterval)
		defer t.Stop()
		for {
			if _, err := conn.Write(agentproto.Line(agentproto.Hello, nonce)); err != nil {
				helloErr <- err
				return
			}
			select {
			case <-helloDone:
				helloErr <- nil
				return
			case <-t.C:
			}
		}
	}()
	br := bufio.NewReaderSize(conn, 64<<10)
	_, err := agentproto.ScanFor(br, agentproto.Ready, nonce, nil)
	close(helloDone)
	if werr := <-helloErr; err == nil {
		err = werr
	}
	if err == nil {
		_, err = conn.Write(agentproto.Line(agentproto.Start, nonce))
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		conn.Close()
		return nil, fmt.Errorf("agent handshake: %w", err)
	}
	cfg := &ssh.ClientConfig{
		User: "root",
		// The port is a private line from this process to the QEMU it
		// started; whoever answers on it is the machine. There is no
		// third party to authenticate against.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	cfg.Ciphers = []string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"}
	bc := &bufConn{Conn: conn, r: br}
	c, chans, reqs, err := ssh.NewClientConn(bc, "agent", cfg)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		conn.Close()
		return nil, fmt.Errorf("agent ssh handshake: %w", err)
	}
	return &Client{conn: conn, ssh: ssh.NewClient(c, chans, reqs)}, nil
}

// bufConn reads through the handshake's buffer, which may already hold the
// start of the agent's SSH version line.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Close ends the SSH connection; running commands are killed by the agent.
func (c *Client) Close() error {
	if c.sftp != nil {
		c.sftp.Close()
	}
	return c.ssh.Close()
}

// Wait blocks until the connection ends and returns why.
func (c *Client) Wait() error { return c.ssh.Wait() }

// SSH exposes the underlying connection, e.g. to proxy sessions for an
// interactive user.
func (c *Client) SSH() *ssh.Client { return c.ssh }

// SFTP returns the connection's SFTP client, started on first use.
func (c *Client) SFTP() (*sftp.Client, error) {
	c.sftpOnce.Do(func() {
		c.sftp, c.sftpErr = sftp.NewClient(c.ssh, sftp.UseConcurrentWrites(true))
	})
	return c.sftp, c.sftpErr
}

// DialGuest connects to network ("tcp" or "unix") address addr as seen from
// inside the guest. A connection refused in the guest is an error here.
func (c *Client) DialGuest(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		var conn net.Conn
		var err error
		switch network {
		case "unix":
			conn, err = c.dialUnix(addr)
		default:
			conn, err = c.ssh.Dial(network, addr)
		}
		res <- result{conn, err}
	}()
	select {
	case r := <-res:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (c *Client) dialUnix(path string) (net.Conn, error) {
	ch, reqs, err := c.ssh.OpenChannel(agentproto.ChanStreamLocal, ssh.Marshal(struct {
		Path     string
		Reserved string
		R2       uint32
	}{Path: path}))
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return &chanConn{Channel: ch, addr: path}, nil
}

// chanConn is a channel as a net.Conn, enough for io.Copy users.
type chanConn struct {
	ssh.Channel
	addr string
}

func (c *chanConn) LocalAddr() net.Addr              { return unixAddr("agent") }
func (c *chanConn) RemoteAddr() net.Addr             { return unixAddr(c.addr) }
func (c *chanConn) SetDeadline(time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(time.Time) error { return nil }

type unixAddr string

func (a unixAddr) Network() string { return "unix" }
func (a unixAddr) String() string  { return string(a) }

// Poweroff asks the agent to stop the machine; it returns once the agent
// has acknowledged. The machine then goes down on its own.
func (c *Client) Poweroff(ctx context.Context) error { return c.global(ctx, agentproto.ReqPoweroff) }

// Reboot asks the agent to restart the machine.
func (c *Client) Reboot(ctx context.Context) error { return c.global(ctx, agentproto.ReqReboot) }

// SetClock sets the guest's wall clock to t.
func (c *Client) SetClock(ctx context.Context, t time.Time) error {
	return c.global(ctx, agentproto.ReqSetClock, ssh.Marshal(struct{ Nanos uint64 }{uint64(t.UnixNano())})...)
}

func (c *Client) global(ctx context.Context, req string, payload ...byte) error {
	errc := make(chan error, 1)
	go func() {
		ok, _, err := c.ssh.SendRequest(req, true, payload)
		if err == nil && !ok {
			err = fmt.Errorf("agent refused %s", req)
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
