// Package control serves a running testbed to other processes of the same
// user, and finds the testbeds that are running: the control socket behind
// `shakedown ls`, `ssh`, `proxy` and `web`. It imports internal/rundir and
// x/crypto/ssh; it knows machines only through the Config's functions, so
// the root package can use it without a cycle.
//
// Every testbed serves SSH on a Unix socket in its run
// directory, so that other processes of the same user can reach its running
// machines: `shakedown ssh`, and OpenSSH through `shakedown proxy` as a
// ProxyCommand. The SSH user name chooses the machine; each channel a client
// opens (sessions with PTYs, exec, shells and SFTP; direct-tcpip) is opened
// the same way on that machine's agent connection, and the two are spliced:
// data, stderr and requests both ways, exit status included. A connection
// that begins with an HTTP request instead goes to Config.HTTP: the
// testbed's record, which `shakedown web` shows.
//
// There is no authentication: the socket is mode 0600 in a directory only
// the user can enter, and a connection from another uid is dropped. A
// socket path longer than a sockaddr_un holds falls back to an abstract
// socket, which only the uid check guards; the state file names it either
// way.
package control

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/rundir"
)

const (
	// SocketName is the control socket's name in the run directory.
	SocketName = "control.sock"
	// StateFileName is the JSON file in the run directory that describes
	// a running testbed (State).
	StateFileName = "testbed.json"
	// Header, followed by a machine name and a newline, may precede
	// the SSH stream on the control socket: it names the machine when the
	// SSH user name cannot, as with OpenSSH's ProxyCommand, whose user is
	// the guest's (root@web). `shakedown proxy` sends it.
	Header = "shakedown-machine "
)

// Control socket timing.
const (
	// stateRefresh is how often the state file catches up with the
	// machines declared and started since.
	stateRefresh = time.Second
	// controlHandshake bounds a client's header and SSH handshake.
	controlHandshake = 10 * time.Second
	// controlCloseWait bounds how long the testbed's end waits for open
	// control connections to wind down before the machines stop (which
	// ends the rest).
	controlCloseWait = 3 * time.Second
	// maxSunPath is the longest path a sockaddr_un holds, without its NUL.
	maxSunPath = 107
)

// State is what the state file of a running testbed says.
type State struct {
	// Name is the testbed's test name; Dir its run directory, whose base
	// name also names it (`shakedown ssh DIR/MACHINE`).
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// PID is the process that runs the testbed.
	PID int `json:"pid"`
	// Socket is the control socket: a path, or "@name" for an abstract
	// socket.
	Socket string `json:"socket"`
	// Machines are the declared machines, in name order.
	Machines []Machine `json:"machines"`
}

// Machine is a machine of a running testbed.
type Machine struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
}

// Config is what a control server serves.
type Config struct {
	// Dir is the testbed's run directory: the socket and the state file
	// go there.
	Dir string
	// Name is the testbed's name (its test's).
	Name string
	// Machines returns the testbed's machines, in name order.
	Machines func() []Machine
	// Agent returns the SSH connection to a running machine's agent, or
	// an error saying why there is none (the machine is not running).
	Agent func(name string) (*ssh.Client, error)
	// HTTP, if set, serves the connections that begin with an HTTP
	// request instead of SSH: the testbed's record, for `shakedown web`.
	HTTP http.Handler
}

// Server is a testbed's control server. Close stops it; the testbed must
// call it before it stops its machines.
type Server struct {
	cfg    Config
	ln     net.Listener
	ssh    *ssh.ServerConfig
	socket string
	uid    int
	done   chan struct{}
	once   sync.Once // Close
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	state []byte // last written

	web   *http.Server // serves Config.HTTP on webLn
	webLn *connListener
}

// Serve starts the control server of the testbed that cfg describes: the
// socket and the state file in its run directory.
func Serve(cfg Config) (*Server, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("control: host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return nil, fmt.Errorf("control: host key: %w", err)
	}
	scfg := &ssh.ServerConfig{NoClientAuth: true, ServerVersion: "SSH-2.0-shakedown-control"}
	scfg.AddHostKey(signer)
	socket := filepath.Join(cfg.Dir, SocketName)
	if len(socket) > maxSunPath {
		socket = fmt.Sprintf("@shakedown-%d-%s", os.Getpid(), filepath.Base(cfg.Dir))
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if !strings.HasPrefix(socket, "@") {
		if err := os.Chmod(socket, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control: %w", err)
		}
	}
	c := &Server{cfg: cfg, ln: ln, ssh: scfg, socket: socket, uid: os.Getuid(),
		done: make(chan struct{}), conns: map[net.Conn]bool{}}
	if err := c.writeState(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: state file: %w", err)
	}
	c.wg.Add(2)
	go c.accept()
	go c.refresh()
	if cfg.HTTP != nil {
		c.webLn = &connListener{conns: make(chan net.Conn), done: c.done, addr: ln.Addr()}
		c.web = &http.Server{Handler: cfg.HTTP, ReadHeaderTimeout: controlHandshake}
		go c.web.Serve(c.webLn)
	}
	return c, nil
}

// Socket is where the server listens: a path, or "@name" for an abstract
// socket.
func (c *Server) Socket() string { return c.socket }

// Close stops the server, closes its connections (waiting briefly for
// them to wind down) and removes the state file. Closing twice does
// nothing.
func (c *Server) Close() { c.once.Do(c.close) }

func (c *Server) close() {
	close(c.done)
	c.ln.Close()
	if c.web != nil {
		// Streams end when the testbed's record does, which it has by
		// now; Shutdown waits for them to say so.
		ctx, cancel := context.WithTimeout(context.Background(), controlCloseWait)
		c.web.Shutdown(ctx)
		cancel()
		c.web.Close()
	}
	c.mu.Lock()
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	waited := make(chan struct{})
	go func() { c.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(controlCloseWait):
		// Channels still open on a machine's agent end when the machine
		// stops, which the testbed does next.
	}
	os.Remove(filepath.Join(c.cfg.Dir, StateFileName))
}

// accept serves connections until the listener closes.
func (c *Server) accept() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		select {
		case <-c.done:
			c.mu.Unlock()
			conn.Close()
			return
		default:
		}
		c.conns[conn] = true
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			c.serve(conn)
			c.mu.Lock()
			delete(c.conns, conn)
			c.mu.Unlock()
		}()
	}
}

// refresh rewrites the state file as machines are declared, started and
// stopped.
func (c *Server) refresh() {
	defer c.wg.Done()
	t := time.NewTicker(stateRefresh)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.writeState()
		}
	}
}

func (c *Server) currentState() State {
	st := State{Name: c.cfg.Name, Dir: c.cfg.Dir, PID: os.Getpid(), Socket: c.socket, Machines: c.cfg.Machines()}
	if st.Machines == nil {
		st.Machines = []Machine{}
	}
	return st
}

// writeState writes the state file if it changed, atomically, so that a
// reader never sees half of it.
func (c *Server) writeState() error {
	data, err := json.MarshalIndent(c.currentState(), "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(data) == string(c.state) {
		return nil
	}
	p := filepath.Join(c.cfg.Dir, StateFileName)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	c.state = data
	return nil
}

// serve runs one connection: HTTP (handed to Config.HTTP), or SSH after
// an optional Header line.
func (c *Server) serve(conn net.Conn) {
	handed := false // to the HTTP server, which closes it
	defer func() {
		if !handed {
			conn.Close()
		}
	}()
	if uid, err := peerUID(conn); err != nil || uid != c.uid {
		return
	}
	conn.SetDeadline(time.Now().Add(controlHandshake))
	br := bufio.NewReader(conn)
	var name string
	// An SSH client may send its short version line ("SSH-2.0-Go") and
	// wait for the server's: peek no further than "SSH-".
	p, err := br.Peek(4)
	if err != nil {
		return
	}
	if c.web != nil && isHTTP(p) {
		conn.SetDeadline(time.Time{})
		handed = true
		c.webLn.hand(&bufferedConn{Conn: conn, r: br})
		return
	}
	if string(p) != "SSH-" {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, Header) {
			return
		}
		name = strings.TrimSpace(strings.TrimPrefix(line, Header))
	}
	sconn, chans, reqs, err := ssh.NewServerConn(&bufferedConn{Conn: conn, r: br}, c.ssh)
	if err != nil {
		return
	}
	defer sconn.Close()
	conn.SetDeadline(time.Time{})
	if name == "" {
		name = sconn.User()
	}
	go ssh.DiscardRequests(reqs)
	var chWG sync.WaitGroup
	for nc := range chans {
		chWG.Add(1)
		go func() {
			defer chWG.Done()
			c.proxyChannel(name, nc)
		}()
	}
	chWG.Wait()
}

// Transport makes HTTP requests to the testbed whose control socket is
// socket (a path, or "@name" for an abstract socket, as State.Socket
// says), whatever the request's host; one connection per request.
func Transport(socket string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
}

// isHTTP reports whether a connection's first four bytes begin an HTTP
// request.
func isHTTP(p []byte) bool {
	switch string(p) {
	case "GET ", "HEAD", "POST", "PUT ", "DELE", "OPTI":
		return true
	}
	return false
}

// connListener hands the HTTP server the connections that serve sorted
// out; it closes with the control server.
type connListener struct {
	conns chan net.Conn
	done  <-chan struct{}
	addr  net.Addr
}

// hand passes conn to the HTTP server, which closes it; it returns when
// the server has it, or has stopped (and conn is closed).
func (l *connListener) hand(conn net.Conn) {
	select {
	case l.conns <- conn:
	case <-l.done:
		conn.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error   { return nil }
func (l *connListener) Addr() net.Addr { return l.addr }

// peerUID is the uid of the process at the other end of a Unix socket.
func peerUID(conn net.Conn) (int, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}

// bufferedConn reads through the reader that peeked at the header.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// proxyChannel opens nc's channel on the machine's agent and splices the
// two until either end closes.
func (c *Server) proxyChannel(name string, nc ssh.NewChannel) {
	agent, err := c.agent(name)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	guest, guestReqs, err := agent.OpenChannel(nc.ChannelType(), nc.ExtraData())
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			nc.Reject(oce.Reason, oce.Message)
		} else {
			nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("machine %s: %v", name, err))
		}
		return
	}
	client, clientReqs, err := nc.Accept()
	if err != nil {
		guest.Close()
		return
	}
	splice(client, clientReqs, guest, guestReqs)
}

// agent returns the agent connection of the machine named name.
func (c *Server) agent(name string) (*ssh.Client, error) {
	var names []string
	for _, m := range c.cfg.Machines() {
		if m.Name == name {
			return c.cfg.Agent(name)
		}
		names = append(names, m.Name)
	}
	return nil, fmt.Errorf("testbed %s has no machine %q (it has: %s)", filepath.Base(c.cfg.Dir), name, strings.Join(names, ", "))
}

// splice joins a client's channel to the same channel on the agent: input
// and requests go to the guest, output, stderr and requests come back. An
// exit status is passed on only after the output before it, so a client
// that stops reading at the exit status misses nothing. Either side
// closing closes the other.
func splice(client ssh.Channel, clientReqs <-chan *ssh.Request, guest ssh.Channel, guestReqs <-chan *ssh.Request) {
	var out sync.WaitGroup
	out.Add(2)
	go func() {
		io.Copy(guest, client)
		guest.CloseWrite()
	}()
	go func() {
		defer out.Done()
		io.Copy(client, guest)
	}()
	go func() {
		defer out.Done()
		io.Copy(client.Stderr(), guest.Stderr())
	}()
	// forwarding is held while a client request is with the guest and
	// until its reply is back with the client. A quick command's exit
	// status and close can overtake the reply to its "exec" on the way
	// back; without this the client would see its channel close before
	// its request was answered (EOF instead of the exit status).
	var forwarding sync.Mutex
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		for r := range clientReqs {
			forwarding.Lock()
			ok, err := guest.SendRequest(r.Type, r.WantReply, r.Payload)
			if err != nil {
				ok = false
			}
			r.Reply(ok, nil)
			forwarding.Unlock()
		}
		guest.Close()
	}()
	replied := func() { forwarding.Lock(); forwarding.Unlock() }
	for r := range guestReqs {
		if r.Type == "exit-status" || r.Type == "exit-signal" {
			// The output before the status goes first, and the reply
			// to the request that started it.
			out.Wait()
			replied()
		}
		ok, err := client.SendRequest(r.Type, r.WantReply, r.Payload)
		if err != nil {
			ok = false
		}
		r.Reply(ok, nil)
	}
	out.Wait()
	replied()
	client.CloseWrite()
	client.Close()
	<-clientDone
}

// Running lists the testbeds running under parent ("" means the default:
// $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown), from their state files, in
// the order of their run directories' names. A run directory whose lock
// nobody holds is not running and is left out.
func Running(parent string) ([]State, error) {
	dirs, err := rundir.Live(parent)
	if err != nil {
		return nil, err
	}
	var out []State
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, StateFileName))
		if err != nil {
			continue
		}
		var st State
		if err := json.Unmarshal(data, &st); err != nil {
			continue
		}
		st.Dir = dir
		out = append(out, st)
	}
	return out, nil
}
