package agent

import (
	"fmt"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper owns every wait4 call in the agent. As PID 1 the agent inherits
// every orphan and must reap them, but a plain wait4(-1) loop would steal the
// exit status of the commands it runs itself; so one goroutine reaps all
// children and hands each status to whoever registered that pid. Nothing in
// the agent may use os/exec or Process.Wait, which would race with it.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan unix.WaitStatus
}

var (
	theReaperOnce sync.Once
	theReaper     *reaper
)

// processReaper returns the process's one reaper: two would steal each
// other's children.
func processReaper() *reaper {
	theReaperOnce.Do(func() { theReaper = newReaper() })
	return theReaper
}

func newReaper() *reaper {
	r := &reaper{waiting: make(map[int]chan unix.WaitStatus)}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGCHLD)
	go func() {
		for range sig {
			r.reap()
		}
	}()
	return r
}

// reap collects every exited child; signals coalesce, so one SIGCHLD may
// stand for many.
func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		// Taking the lock waits out a start() that forked this pid but
		// has not registered it yet.
		r.mu.Lock()
		c := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if c != nil {
			c <- ws
		}
	}
}

// start runs argv with attr and returns its pid and a channel that receives
// its wait status once. The child gets its own process group (unless attr
// asks for a session), so signals reach whatever it spawned too.
func (r *reaper) start(argv []string, attr *os.ProcAttr) (int, <-chan unix.WaitStatus, error) {
	path, err := lookPath(argv[0], attr.Env)
	if err != nil {
		return 0, nil, err
	}
	if attr.Sys == nil {
		attr.Sys = &unix.SysProcAttr{Setpgid: true}
	}
	done := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	r.waiting[p.Pid] = done
	pid := p.Pid
	// The status comes from the reaper; Release only drops the pidfd.
	p.Release()
	return pid, done, nil
}

// lookPath finds an executable along PATH of env, as a shell would.
func lookPath(name string, env []string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty command")
	}
	for _, c := range name {
		if c == '/' {
			return name, nil
		}
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if len(kv) > 5 && kv[:5] == "PATH=" {
			path = kv[5:]
		}
	}
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == ':' {
			dir := path[start:i]
			start = i + 1
			if dir == "" {
				dir = "."
			}
			p := dir + "/" + name
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s: command not found in PATH %s", name, path)
}

// exitCode maps a wait status to a shell-style exit code (128+signal for
// a killed process) and the signal name, if any, for SSH's exit-signal.
func exitCode(ws unix.WaitStatus) (int, string) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), sshSignalName(ws.Signal())
	}
	return ws.ExitStatus(), ""
}

// sshSignalName is RFC 4254's name of a signal: without the "SIG".
func sshSignalName(s unix.Signal) string {
	name := unix.SignalName(s)
	if len(name) > 3 {
		return name[3:]
	}
	return fmt.Sprint(int(s))
}
