package shakedown

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// The control socket. Every testbed serves SSH on a Unix socket in its run
// directory, so that other processes of the same user can reach its running
// machines: `shakedown ssh`, and OpenSSH through `shakedown proxy` as a
// ProxyCommand. The SSH user name chooses the machine; each channel a client
// opens (sessions with PTYs, exec, shells and SFTP; direct-tcpip) is opened
// the same way on that machine's agent connection, and the two are spliced:
// data, stderr and requests both ways, exit status included.
//
// There is no authentication: the socket is mode 0600 in a directory only
// the user can enter, and a connection from another uid is dropped. A
// socket path longer than a sockaddr_un holds falls back to an abstract
// socket, which only the uid check guards; the state file names it either
// way.
const (
	// ControlSocketName is the control socket's name in the run directory.
	ControlSocketName = "control.sock"
	// StateFileName is the JSON file in the run directory that describes
	// a running testbed (TestbedState).
	StateFileName = "testbed.json"
	// ControlHeader, followed by a machine name and a newline, may precede
	// the SSH stream on the control socket: it names the machine when the
	// SSH user name cannot, as with OpenSSH's ProxyCommand, whose user is
	// the guest's (root@web). `shakedown proxy` sends it.
	ControlHeader = "shakedown-machine "
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

// TestbedState is what the state file of a running testbed says.
type TestbedState struct {
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
	Machines []MachineState `json:"machines"`
}

// MachineState is a machine of a running testbed.
type MachineState struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
}

// control is a testbed's control server.
type control struct {
	tb     *Testbed
	ln     net.Listener
	cfg    *ssh.ServerConfig
	socket string
	uid    int
	done   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	state []byte // last written
}

// controls maps each testbed with a control server to it.
var controls sync.Map

// startControl starts tb's control server. A testbed without one still
// works, so a failure is only logged.
func startControl(tb *Testbed) {
	c, err := newControl(tb)
	if err != nil {
		tb.t.Logf("shakedown: control socket: %v (shakedown ls, ssh and proxy will not reach this testbed)", err)
		return
	}
	controls.Store(tb, c)
}

// stopControl stops tb's control server and removes its files.
func stopControl(tb *Testbed) {
	if v, ok := controls.LoadAndDelete(tb); ok {
		v.(*control).close()
	}
}

func newControl(tb *Testbed) (*control, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ServerConfig{NoClientAuth: true, ServerVersion: "SSH-2.0-shakedown-control"}
	cfg.AddHostKey(signer)
	socket := filepath.Join(tb.dir, ControlSocketName)
	if len(socket) > maxSunPath {
		socket = fmt.Sprintf("@shakedown-%d-%s", os.Getpid(), filepath.Base(tb.dir))
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(socket, "@") {
		if err := os.Chmod(socket, 0o600); err != nil {
			ln.Close()
			return nil, err
		}
	}
	c := &control{tb: tb, ln: ln, cfg: cfg, socket: socket, uid: os.Getuid(),
		done: make(chan struct{}), conns: map[net.Conn]bool{}}
	if err := c.writeState(); err != nil {
		ln.Close()
		return nil, err
	}
	c.wg.Add(2)
	go c.accept()
	go c.refresh()
	return c, nil
}

func (c *control) close() {
	close(c.done)
	c.ln.Close()
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
	os.Remove(filepath.Join(c.tb.dir, StateFileName))
}

// accept serves connections until the listener closes.
func (c *control) accept() {
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
func (c *control) refresh() {
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

func (c *control) currentState() TestbedState {
	st := TestbedState{Name: c.tb.t.Name(), Dir: c.tb.dir, PID: os.Getpid(), Socket: c.socket,
		Machines: []MachineState{}}
	for _, m := range c.tb.Machines() {
		st.Machines = append(st.Machines, MachineState{Name: m.name, Running: m.running()})
	}
	return st
}

// writeState writes the state file if it changed, atomically, so that a
// reader never sees half of it.
func (c *control) writeState() error {
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
	p := filepath.Join(c.tb.dir, StateFileName)
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

// serve runs one SSH connection: an optional ControlHeader line, then SSH.
func (c *control) serve(conn net.Conn) {
	defer conn.Close()
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
	if string(p) != "SSH-" {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, ControlHeader) {
			return
		}
		name = strings.TrimSpace(strings.TrimPrefix(line, ControlHeader))
	}
	sconn, chans, reqs, err := ssh.NewServerConn(&bufferedConn{Conn: conn, r: br}, c.cfg)
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
func (c *control) proxyChannel(name string, nc ssh.NewChannel) {
	m, err := c.lookup(name)
	if err != nil {
		nc.Reject(ssh.Prohibited, err.Error())
		return
	}
	m.mu.Lock()
	agent, run := m.agent, m.run
	m.mu.Unlock()
	if agent == nil || run == nil || run.Err() != nil {
		nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("machine %s is not running", name))
		return
	}
	guest, guestReqs, err := agent.SSH().OpenChannel(nc.ChannelType(), nc.ExtraData())
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

// lookup finds a machine of the testbed by name.
func (c *control) lookup(name string) (*machine, error) {
	tb := c.tb
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if m, ok := tb.machines[name]; ok {
		return m, nil
	}
	names := make([]string, 0, len(tb.machines))
	for n := range tb.machines {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("testbed %s has no machine %q (it has: %s)", filepath.Base(tb.dir), name, strings.Join(names, ", "))
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
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		for r := range clientReqs {
			ok, err := guest.SendRequest(r.Type, r.WantReply, r.Payload)
			if err != nil {
				ok = false
			}
			r.Reply(ok, nil)
		}
		guest.Close()
	}()
	for r := range guestReqs {
		if r.Type == "exit-status" || r.Type == "exit-signal" {
			// The output before the status goes first.
			out.Wait()
		}
		ok, err := client.SendRequest(r.Type, r.WantReply, r.Payload)
		if err != nil {
			ok = false
		}
		r.Reply(ok, nil)
	}
	out.Wait()
	client.CloseWrite()
	client.Close()
	<-clientDone
}

// RunningTestbeds lists the testbeds running under parent ("" means the
// default: $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown), from their state
// files, in the order of their run directories' names. A run directory
// whose lock nobody holds is not running and is left out.
func RunningTestbeds(parent string) ([]TestbedState, error) {
	parent = outputParent(parent)
	entries, err := os.ReadDir(parent)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []TestbedState
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if !lockHeld(dir) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, StateFileName))
		if err != nil {
			continue
		}
		var st TestbedState
		if err := json.Unmarshal(data, &st); err != nil {
			continue
		}
		st.Dir = dir
		out = append(out, st)
	}
	return out, nil
}

// lockHeld reports whether a live testbed holds dir's lock.
func lockHeld(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockName))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
