package agentclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// killGrace is how long a command killed for its deadline gets to report
// its exit and last output before the channel is torn down anyway.
const killGrace = 2 * time.Second

// Command is one shell command to run in the guest.
type Command struct {
	// Cmd is run by the guest's /bin/sh -c.
	Cmd string
	// Env adds to the agent's base environment (PATH, HOME, ...).
	Env map[string]string
	// Dir is the working directory; "" means /.
	Dir string
	// Stdin feeds the command; nil means empty input (EOF at once), so a
	// command that reads stdin cannot wait forever for it.
	Stdin io.Reader
	// Stdout and Stderr, if set, also receive the output as it arrives,
	// e.g. to stream it into a log; Result keeps a copy either way.
	Stdout, Stderr io.Writer
}

// Result is what a command left behind.
type Result struct {
	// Status is the exit status; 128+n for a command killed by signal n.
	Status int
	// Signal names the signal that killed it (without "SIG"), or "".
	Signal string
	Stdout []byte
	Stderr []byte
}

// Outputs renders the stdout and stderr on indented lines, each under its
// name after label ("partial " for a killed command's), for a failure's
// message; "" when there were none.
func (r Result) Outputs(label string) string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		out  []byte
	}{{"stdout", r.Stdout}, {"stderr", r.Stderr}} {
		if len(s.out) > 0 {
			fmt.Fprintf(&b, "\n%s%s:\n%s", label, s.name, eventlog.Indent(string(s.out), "  "))
		}
	}
	return b.String()
}

// Exec runs cmd and waits for it to finish. When ctx ends first, the
// command's process group is killed in the guest and Exec returns the
// partial Result with an error wrapping ctx.Err().
//
// Exec costs one round trip to the guest: the command travels in the
// channel open request (agentproto.ChanExec), and the guest starts it while
// its confirmation travels back.
func (c *Client) Exec(ctx context.Context, cmd Command) (Result, error) {
	type opened struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	env := make([]string, 0, len(cmd.Env))
	for k, v := range cmd.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	payload, err := json.Marshal(agentproto.ExecRequest{Cmd: cmd.Cmd, Env: env, Dir: cmd.Dir, NoStdin: cmd.Stdin == nil})
	if err != nil {
		return Result{}, fmt.Errorf("start %q: %w", cmd.Cmd, err)
	}
	op := make(chan opened, 1)
	go func() {
		ch, reqs, err := c.ssh.OpenChannel(agentproto.ChanExec, payload)
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) && oce.Reason == ssh.UnknownChannelType {
			// An agent without the extension (one a user's image brings):
			// the standard session channel does the same in one more trip.
			ch, reqs, err = c.openSession(cmd)
		}
		op <- opened{ch, reqs, err}
	}()
	var o opened
	select {
	case o = <-op:
	case <-ctx.Done():
		go func() {
			if o := <-op; o.ch != nil {
				o.ch.Close()
			}
		}()
		return Result{}, fmt.Errorf("start %q: %w", cmd.Cmd, ctx.Err())
	}
	if o.err != nil {
		return Result{}, fmt.Errorf("start %q: %w", cmd.Cmd, o.err)
	}
	ch := o.ch
	defer ch.Close()
	if cmd.Stdin == nil {
		ch.CloseWrite()
	} else {
		go func() {
			io.Copy(ch, cmd.Stdin)
			ch.CloseWrite()
		}()
	}

	var stdout, stderr lockedBuffer
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); io.Copy(tee(&stdout, cmd.Stdout), ch) }()
	go func() { defer copies.Done(); io.Copy(tee(&stderr, cmd.Stderr), ch.Stderr()) }()

	var res Result
	status := -1
	done := make(chan struct{})
	go func() {
		for req := range o.reqs {
			switch req.Type {
			case "exit-status":
				if len(req.Payload) >= 4 {
					status = int(binary.BigEndian.Uint32(req.Payload))
				}
			case "exit-signal":
				var s struct {
					Signal     string
					CoreDumped bool
					Msg, Lang  string
				}
				if ssh.Unmarshal(req.Payload, &s) == nil {
					res.Signal = s.Signal
				}
			}
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
		copies.Wait()
		close(done)
	}()

	err = nil
	select {
	case <-done:
	case <-ctx.Done():
		ch.SendRequest("signal", false, ssh.Marshal(struct{ Name string }{"KILL"}))
		select {
		case <-done:
		case <-time.After(killGrace):
			ch.Close()
			<-done
		}
		err = fmt.Errorf("command %q killed: %w", cmd.Cmd, ctx.Err())
	}
	res.Status = status
	res.Stdout = stdout.Bytes()
	res.Stderr = stderr.Bytes()
	if err == nil && status < 0 {
		err = fmt.Errorf("command %q: connection to agent lost before its exit status: %w", cmd.Cmd, ErrClosed)
	}
	return res, err
}

// openSession starts cmd on a standard "session" channel: the
// environment, directory and command follow the open without waiting for
// replies, as RFC 4254 allows.
func (c *Client) openSession(cmd Command) (ssh.Channel, <-chan *ssh.Request, error) {
	ch, reqs, err := c.ssh.OpenChannel("session", nil)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]string, 0, len(cmd.Env))
	for k := range cmd.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := ch.SendRequest("env", false, ssh.Marshal(struct{ Name, Value string }{k, cmd.Env[k]})); err != nil {
			ch.Close()
			return nil, nil, err
		}
	}
	if cmd.Dir != "" {
		if _, err := ch.SendRequest(agentproto.ReqChdir, false, ssh.Marshal(struct{ Dir string }{cmd.Dir})); err != nil {
			ch.Close()
			return nil, nil, err
		}
	}
	if _, err := ch.SendRequest("exec", false, ssh.Marshal(struct{ Command string }{cmd.Cmd})); err != nil {
		ch.Close()
		return nil, nil, err
	}
	return ch, reqs, nil
}

func tee(buf *lockedBuffer, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}

// lockedBuffer may be read while a late copy still writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
