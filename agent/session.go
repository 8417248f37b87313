package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// drainGrace bounds how long output is still collected for the host after
// a command has exited. A command that leaves a background job holding its
// stdout or stderr (`daemon >&2 &`, as NixOS tests start servers) would
// otherwise keep the session open as long as that job lives; the NixOS
// driver hangs there. Output written within this window goes to the host;
// after it the command's exit is reported and the agent keeps reading the
// pipes for the jobs, onto the console (see commandOutput).
const drainGrace = 250 * time.Millisecond

// session is one SSH "session" channel: at most one command, shell or
// subsystem, with its environment, working directory and terminal.
type session struct {
	a   *Agent
	ch  ssh.Channel
	env []string
	dir string
	pty *ptyReq
	// noStdin gives the command /dev/null instead of the channel's data.
	noStdin bool
	// script is the command's text, which marks its background jobs'
	// output on the console.
	script string

	mu      sync.Mutex
	started bool
	pid     int // process group of the running command, 0 when none
	exited  bool
}

type ptyReq struct {
	term       string
	cols, rows uint32
	ptmx       *os.File
}

func (a *Agent) handleSession(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	s := &session{a: a, ch: ch, env: a.baseEnv(), dir: "/"}
	s.serve(reqs)
}

// handleExec runs the command of an agentproto.ChanExec channel.
func (a *Agent) handleExec(nc ssh.NewChannel) {
	var req agentproto.ExecRequest
	if err := json.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(ssh.Prohibited, "bad exec request: "+err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	s := &session{a: a, ch: ch, env: a.baseEnv(), dir: "/", noStdin: req.NoStdin}
	for _, kv := range req.Env {
		name, value, _ := strings.Cut(kv, "=")
		s.env = setEnv(s.env, name, value)
	}
	if req.Dir != "" {
		s.dir = req.Dir
	}
	s.start([]string{"/bin/sh", "-c", req.Cmd}, req.Cmd)
	s.serve(reqs)
}

// serve answers the channel's requests until the client closes it.
func (s *session) serve(reqs <-chan *ssh.Request) {
	ch := s.ch
	for req := range reqs {
		ok := s.request(req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	// The client closed the channel (or the connection died): nothing may
	// keep running on its behalf.
	s.kill(unix.SIGKILL)
	ch.Close()
}

func (s *session) request(req *ssh.Request) bool {
	switch req.Type {
	case "env":
		var kv struct{ Name, Value string }
		if ssh.Unmarshal(req.Payload, &kv) != nil {
			return false
		}
		s.env = setEnv(s.env, kv.Name, kv.Value)
		return true
	case agentproto.ReqChdir:
		var d struct{ Dir string }
		if ssh.Unmarshal(req.Payload, &d) != nil {
			return false
		}
		s.dir = d.Dir
		return true
	case "pty-req":
		var p struct {
			Term                 string
			Cols, Rows, Wpx, Hpx uint32
			Modes                string
		}
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return false
		}
		s.pty = &ptyReq{term: p.Term, cols: p.Cols, rows: p.Rows}
		return true
	case "window-change":
		var w struct{ Cols, Rows, Wpx, Hpx uint32 }
		if ssh.Unmarshal(req.Payload, &w) != nil || s.pty == nil {
			return false
		}
		s.pty.cols, s.pty.rows = w.Cols, w.Rows
		if s.pty.ptmx != nil {
			pty.Setsize(s.pty.ptmx, &pty.Winsize{Cols: uint16(w.Cols), Rows: uint16(w.Rows)})
		}
		return true
	case "exec":
		var e struct{ Command string }
		if ssh.Unmarshal(req.Payload, &e) != nil {
			return false
		}
		return s.start([]string{"/bin/sh", "-c", e.Command}, e.Command)
	case "shell":
		return s.start([]string{"/bin/sh", "-l"}, "")
	case "subsystem":
		var sub struct{ Name string }
		if ssh.Unmarshal(req.Payload, &sub) != nil || sub.Name != "sftp" || !s.claim() {
			return false
		}
		go s.serveSFTP()
		return true
	case "signal":
		var sig struct{ Name string }
		if ssh.Unmarshal(req.Payload, &sig) != nil {
			return false
		}
		n := unix.SignalNum("SIG" + sig.Name)
		if n == 0 {
			return false
		}
		s.kill(n)
		return true
	}
	return false
}

// claim marks the session as used; SSH allows one program per session.
func (s *session) claim() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return false
	}
	s.started = true
	return true
}

func (s *session) kill(sig unix.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pid > 0 && !s.exited {
		unix.Kill(-s.pid, sig)
	}
}

func (s *session) serveSFTP() {
	srv, err := sftp.NewServer(s.ch)
	if err == nil {
		// Serve cleans up after itself; Close would close the channel
		// before exit can send the status that scp waits for.
		err = srv.Serve()
	}
	status := 0
	if err != nil && !errors.Is(err, io.EOF) {
		status = 1
	}
	s.exit(status, "")
}

// start launches argv for this session and returns whether it did; its
// output and exit status flow back on the channel from a goroutine. script
// is the command text when argv is `sh -c script`.
func (s *session) start(argv []string, script string) bool {
	if !s.claim() {
		return false
	}
	if s.pty != nil {
		return s.startPTY(argv)
	}
	if direct := simpleCommand(script, s.env); direct != nil {
		argv = direct
	}
	s.script = script
	s.mu.Lock()
	p, err := spawnPiped(s.a.reaper, argv, s.env, s.dir, s.noStdin)
	if err == nil {
		s.pid = p.pid
	}
	s.mu.Unlock()
	if err != nil {
		fmt.Fprintf(s.ch.Stderr(), "shakedown-agent: start %q: %v\n", argv, err)
		s.exit(127, "")
		return true
	}
	go s.run(p)
	return true
}

// piped is a started process whose stdio are pipes to the agent.
type piped struct {
	pid                int
	done               <-chan unix.WaitStatus
	stdin, out, errOut *os.File
}

// spawnPiped starts argv with pipes for stdin (or /dev/null), stdout and
// stderr.
func spawnPiped(r *reaper, argv, env []string, dir string, noStdin bool) (*piped, error) {
	var stdinR, stdinW *os.File
	var err1 error
	if noStdin {
		stdinR, err1 = os.Open(os.DevNull)
	} else {
		stdinR, stdinW, err1 = os.Pipe()
	}
	outR, outW, err2 := os.Pipe()
	errR, errW, err3 := os.Pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		for _, f := range []*os.File{stdinR, stdinW, outR, outW, errR, errW} {
			if f != nil {
				f.Close()
			}
		}
		return nil, fmt.Errorf("pipes: %w", err)
	}
	pid, done, err := r.start(argv, &os.ProcAttr{
		Dir: dir, Env: env, Files: []*os.File{stdinR, outW, errW},
	})
	stdinR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		outR.Close()
		errR.Close()
		return nil, err
	}
	return &piped{pid: pid, done: done, stdin: stdinW, out: outR, errOut: errR}, nil
}

// run connects p to the channel and reports its exit once the command
// has exited and its output has been read to the end, or drainGrace after
// the exit when background jobs still hold the output pipes: their output
// then goes on to the console until they close them.
func (s *session) run(p *piped) {
	if p.stdin != nil {
		go func() {
			// The client sends EOF when it has no (more) input for us.
			io.Copy(p.stdin, s.ch)
			p.stdin.Close()
		}()
	}
	prefix := bgPrefix(s.script)
	streams := []*commandOutput{
		newCommandOutput(p.out, s.ch, s.a.console, prefix),
		newCommandOutput(p.errOut, s.ch.Stderr(), s.a.console, prefix),
	}
	var left atomic.Int32
	left.Store(int32(len(streams)))
	copied := make(chan struct{})
	for _, o := range streams {
		go func() {
			o.copy()
			if left.Add(-1) == 0 {
				close(copied)
			}
		}()
	}
	ws := <-p.done
	s.mu.Lock()
	s.exited = true
	s.mu.Unlock()
	t := time.NewTimer(drainGrace)
	select {
	case <-copied:
	case <-t.C:
		// Background jobs hold the pipes. Closing them, as the agent once
		// did, killed each job with SIGPIPE on its next write; instead
		// they keep a reader for as long as they live.
		for _, o := range streams {
			o.detach()
		}
	}
	t.Stop()
	code, sig := exitCode(ws)
	s.exit(code, sig)
}

// commandOutput carries one output pipe of a command: to the SSH channel
// while the command runs, then, once detached, to the console as lines
// marked with the command. It reads until the last writer closes the pipe,
// whatever becomes of the channel, so that no writer ever dies of SIGPIPE
// or blocks on a full pipe; its goroutine ends with that EOF. Memory is
// bounded: one copy buffer, and one partial line of at most maxLine bytes.
type commandOutput struct {
	src      *os.File
	ch       io.Writer
	detached atomic.Bool
	// lines is used by the copy goroutine only, after detached is set.
	lines *lineSplitter
}

func newCommandOutput(src *os.File, ch io.Writer, c *console, prefix string) *commandOutput {
	return &commandOutput{src: src, ch: ch, lines: &lineSplitter{onLine: func(line []byte) { c.writeLine(prefix, line) }}}
}

// detach sends what is read from now on to the console. Output already
// being written to the channel still goes there.
func (o *commandOutput) detach() { o.detached.Store(true) }

// copy reads the pipe to its end and closes it.
func (o *commandOutput) copy() {
	defer o.src.Close()
	bp := copyBufs.Get().(*[]byte)
	b := *bp
	for {
		n, err := o.src.Read(b)
		if n > 0 {
			o.write(b[:n])
		}
		if err != nil {
			break
		}
		if bp != nil && o.detached.Load() {
			// A job may write for hours: it needs no large buffer.
			copyBufs.Put(bp)
			bp, b = nil, make([]byte, 4<<10)
		}
	}
	if bp != nil {
		copyBufs.Put(bp)
	}
	o.lines.Close()
}

func (o *commandOutput) write(b []byte) {
	if !o.detached.Load() {
		n, err := o.ch.Write(b)
		if err == nil {
			return
		}
		if !o.detached.Load() {
			// The host went away while the command runs: nobody wants
			// its output, and the command is killed with the session.
			return
		}
		// The channel closed after the exit was reported: the rest is
		// the background jobs' and goes to the console.
		b = b[n:]
	}
	o.lines.Write(b)
}

// shellOnly are words a shell must interpret even in a command that is
// otherwise plain: builtins with no program of the same name, keywords.
var shellOnly = map[string]bool{
	"cd": true, "export": true, "exit": true, "set": true, "unset": true, "exec": true,
	"eval": true, ".": true, "source": true, "alias": true, "read": true, "trap": true,
	"wait": true, "shift": true, "ulimit": true, "umask": true, "local": true,
	"return": true, "readonly": true, "type": true, "hash": true, "command": true,
	"jobs": true, "fg": true, "bg": true, "times": true, "getopts": true,
	"if": true, "then": true, "else": true, "elif": true, "fi": true, "for": true,
	"while": true, "until": true, "do": true, "done": true, "case": true, "esac": true,
	"function": true, "select": true, "!": true, "{": true, "}": true, "[[": true,
}

// simpleCommand returns the argv of a command that needs no shell, or nil.
//
// Under TCG a shell's start-up is a third of a command's round trip (about
// 2 of 6 ms, measured in the guest: `sh -c true` against `/bin/true`), and
// most commands a test sends are plain words. A command qualifies when it
// has only characters that no shell treats specially (no quotes, $, globs,
// redirections, separators, comments, ~, backslashes or newlines), does not
// start with an assignment or a shell-only word, and its program is found
// on PATH. It then runs exactly as the shell would have run it: same argv,
// environment, exit status and output. Anything else goes to /bin/sh -c.
func simpleCommand(script string, env []string) []string {
	if script == "" {
		return nil
	}
	for _, c := range script {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune(" _-./,:+@%=", c):
		default:
			return nil
		}
	}
	argv := strings.Fields(script)
	if len(argv) == 0 || shellOnly[argv[0]] || strings.Contains(argv[0], "=") {
		return nil
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		// Let the shell say "not found" in its own words.
		return nil
	}
	argv[0] = path
	return argv
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (s *session) startPTY(argv []string) bool {
	ptmx, tty, err := pty.Open()
	if err != nil {
		fmt.Fprintf(s.ch.Stderr(), "shakedown-agent: pty: %v\n", err)
		s.exit(127, "")
		return true
	}
	s.pty.ptmx = ptmx
	pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(s.pty.cols), Rows: uint16(s.pty.rows)})
	if s.pty.term != "" {
		s.env = setEnv(s.env, "TERM", s.pty.term)
	}
	s.mu.Lock()
	pid, done, err := s.a.reaper.start(argv, &os.ProcAttr{
		Dir: s.dir, Env: s.env, Files: []*os.File{tty, tty, tty},
		Sys: &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	s.pid = pid
	s.mu.Unlock()
	tty.Close()
	if err != nil {
		ptmx.Close()
		fmt.Fprintf(s.ch.Stderr(), "shakedown-agent: start %q: %v\n", argv, err)
		s.exit(127, "")
		return true
	}
	go io.Copy(ptmx, s.ch)
	copied := make(chan struct{})
	go func() { io.Copy(s.ch, ptmx); close(copied) }()
	go func() {
		ws := <-done
		s.mu.Lock()
		s.exited = true
		s.mu.Unlock()
		// The terminal reports EIO once the last holder of the tty is gone.
		select {
		case <-copied:
		case <-time.After(drainGrace):
		}
		ptmx.Close()
		code, sig := exitCode(ws)
		s.exit(code, sig)
	}()
	return true
}

// exit reports the status as RFC 4254 asks (exit-status, or exit-signal for
// a killed process) and closes the channel.
func (s *session) exit(code int, sig string) {
	if sig != "" {
		s.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Msg, Lang  string
		}{Signal: sig}))
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	s.ch.SendRequest("exit-status", false, b[:])
	s.ch.CloseWrite()
	s.ch.Close()
}

func setEnv(env []string, name, value string) []string {
	prefix := name + "="
	for i, kv := range env {
		if len(kv) >= len(prefix) && kv[:len(prefix)] == prefix {
			env[i] = prefix + value
			return env
		}
	}
	return append(env, prefix+value)
}

func logf(format string, args ...any) { log.Printf(format, args...) }
