package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// Supervision budgets. They follow systemd's defaults where systemd has
// one (RestartSec=100ms, StartLimitBurst=5 in StartLimitIntervalSec=10s),
// so a crash loop ends in the failed state within seconds, which is what
// lets WaitForUnit fail fast instead of timing out.
const (
	// defaultReadyTimeout bounds activation when Readiness says nothing
	// (systemd's TimeoutStartSec is 90 s).
	defaultReadyTimeout = 90 * time.Second
	// stopTimeout is how long a stopped service has between SIGTERM and
	// SIGKILL.
	stopTimeout = 10 * time.Second
	// restartBase doubles with each restart up to restartMax.
	restartBase = 100 * time.Millisecond
	restartMax  = 5 * time.Second
	// A unit started more than startLimitBurst times within
	// startLimitInterval fails instead of restarting again.
	startLimitBurst    = 5
	startLimitInterval = 10 * time.Second
	// readyPollMax caps the interval of readiness checks, which start at
	// 20 ms and double.
	readyPollMax = 250 * time.Millisecond
	// readyCommandTimeout bounds one run of a readiness command.
	readyCommandTimeout = 5 * time.Second
	// outputTail is how many output lines a unit keeps for its status.
	outputTail = 30
	// outputGrace bounds how long the end of a run waits for the run's
	// output to be read to its end before the new state is recorded, so
	// that a status that says "failed" has the lines that say why. Only
	// a child left holding the output pipe makes it wait that long.
	outputGrace = 250 * time.Millisecond
)

// LoadServices reads the service definitions at path (normally
// agentproto.ServicesFile); a missing file means none.
func LoadServices(path string) ([]agentproto.Service, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	var svcs []agentproto.Service
	if err := json.Unmarshal(b, &svcs); err != nil {
		return nil, fmt.Errorf("services %s: %w", path, err)
	}
	return svcs, nil
}

// supervisor runs the declared services: in dependency order, restarted
// per policy with a backoff, their output on the console with a [name]
// prefix, their states tracked as systemd tracks ActiveState.
type supervisor struct {
	reaper  *reaper
	env     []string
	console *console

	mu     sync.Mutex
	units  map[string]*unit
	order  []string
	halted bool
}

// unit is one service and its state; all fields are guarded by
// supervisor.mu.
type unit struct {
	spec     agentproto.Service
	state    string
	sub      string
	since    time.Time
	job      bool // a start is pending: dependencies or backoff
	pid      int
	gen      int // counts launches; stale timers and checks compare it
	restarts int
	result   string
	exitedOK bool   // the last run ended with status 0 (a finished one-shot)
	failNext string // the run being stopped fails with this result
	starts   []time.Time
	tail     []string
	changed  chan struct{} // closed and replaced on every state change
}

func newSupervisor(svcs []agentproto.Service, r *reaper, env []string, c *console) (*supervisor, error) {
	order, err := agentproto.ValidateServices(svcs)
	if err != nil {
		return nil, err
	}
	s := &supervisor{reaper: r, env: env, console: c, units: map[string]*unit{}, order: order}
	for _, sv := range svcs {
		s.units[sv.Name] = &unit{spec: sv, state: agentproto.StateInactive, sub: agentproto.SubDead, since: time.Now(), changed: make(chan struct{})}
	}
	return s, nil
}

// startAll queues every service; each starts once its dependencies are
// active (or have run to a successful exit).
func (s *supervisor) startAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range s.order {
		s.units[name].job = true
	}
	s.kick()
}

// halt stops restarts: the machine is going down.
func (s *supervisor) halt() {
	s.mu.Lock()
	s.halted = true
	s.mu.Unlock()
}

func (s *supervisor) set(u *unit, state, sub string) {
	if u.state == state && u.sub == sub {
		return
	}
	u.state, u.sub, u.since = state, sub, time.Now()
	close(u.changed)
	u.changed = make(chan struct{})
}

// kick starts every queued unit whose dependencies are satisfied and fails
// those with a failed dependency. It is called under mu after every state
// change, so a chain of dependencies resolves as its links come up.
func (s *supervisor) kick() {
	if s.halted {
		return
	}
	for changed := true; changed; {
		changed = false
		for _, name := range s.order {
			u := s.units[name]
			if !u.job || u.sub == agentproto.SubAutoRestart || u.state == agentproto.StateActive || u.state == agentproto.StateActivating || u.state == agentproto.StateDeactivating {
				continue
			}
			ready := true
			for _, d := range u.spec.After {
				du := s.units[d]
				switch {
				case du.state == agentproto.StateActive, du.state == agentproto.StateInactive && du.exitedOK && !du.job:
				case du.state == agentproto.StateFailed && !du.job:
					u.job = false
					u.result = "dependency " + d + " failed"
					logf("service %s: %s", name, u.result)
					s.set(u, agentproto.StateFailed, agentproto.SubFailed)
					ready, changed = false, true
				default:
					ready = false
				}
				if !ready {
					break
				}
			}
			if ready && u.job {
				s.launch(u)
				changed = true
			}
		}
	}
}

// launch starts u's process; mu is held.
func (s *supervisor) launch(u *unit) {
	name := u.spec.Name
	u.job = false
	u.gen++
	u.exitedOK = false
	u.failNext = ""
	now := time.Now()
	u.starts = append(u.starts, now)
	env := append([]string(nil), s.env...)
	keys := make([]string, 0, len(u.spec.Env))
	for k := range u.spec.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = setEnv(env, k, u.spec.Env[k])
	}
	devnull, err1 := os.Open(os.DevNull)
	pr, pw, err2 := os.Pipe()
	var pid int
	var done <-chan unix.WaitStatus
	err := errors.Join(err1, err2)
	if err == nil {
		// One pipe for stdout and stderr keeps their lines in order.
		pid, done, err = s.reaper.start([]string{"/bin/sh", "-c", u.spec.Command}, &os.ProcAttr{
			Dir: "/", Env: env, Files: []*os.File{devnull, pw, pw},
		})
	}
	for _, f := range []*os.File{devnull, pw} {
		if f != nil {
			f.Close()
		}
	}
	if err != nil {
		if pr != nil {
			pr.Close()
		}
		u.result = "start: " + err.Error()
		logf("service %s: %s", name, u.result)
		s.set(u, agentproto.StateFailed, agentproto.SubFailed)
		return
	}
	u.pid = pid
	logf("service %s: started (pid %d)", name, pid)
	copied := make(chan struct{})
	go func() { s.copyOutput(u, pr); close(copied) }()
	go s.wait(u, u.gen, done, copied)
	r := u.spec.Ready
	if r.Port == 0 && r.File == "" && r.Command == "" {
		s.set(u, agentproto.StateActive, agentproto.SubRunning)
		return
	}
	s.set(u, agentproto.StateActivating, agentproto.SubStart)
	go s.awaitReady(u, u.gen)
}

// copyOutput puts the service's lines on the console, prefixed with its
// name, and keeps the last ones for its status. It reads until every
// writer has closed the pipe: a service must never die of SIGPIPE because
// of what it prints (an overlong line is cut, not fatal).
func (s *supervisor) copyOutput(u *unit, r *os.File) {
	defer r.Close()
	prefix := "[" + u.spec.Name + "] "
	lines := &lineSplitter{onLine: func(line []byte) {
		s.console.writeLine(prefix, line)
		s.mu.Lock()
		u.tail = append(u.tail, string(line))
		if len(u.tail) > outputTail {
			u.tail = slices.Delete(u.tail, 0, len(u.tail)-outputTail)
		}
		s.mu.Unlock()
	}}
	copyAll(lines, r)
	lines.Close()
}

// wait handles the exit of run gen of u: restart, fail, or rest. copied
// is closed when the run's output has been read to its end.
func (s *supervisor) wait(u *unit, gen int, done <-chan unix.WaitStatus, copied <-chan struct{}) {
	ws := <-done
	t := time.NewTimer(outputGrace)
	select {
	case <-copied:
	case <-t.C:
	}
	t.Stop()
	code, sig := exitCode(ws)
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.gen != gen {
		return
	}
	u.pid = 0
	result := "exit status " + strconv.Itoa(code)
	if sig != "" {
		result = "signal " + sig
	}
	failure := code != 0
	name := u.spec.Name
	switch {
	case u.failNext != "":
		u.result = u.failNext
		logf("service %s: failed: %s", name, u.result)
		s.set(u, agentproto.StateFailed, agentproto.SubFailed)
	case u.state == agentproto.StateDeactivating || s.halted:
		u.result = result
		s.set(u, agentproto.StateInactive, agentproto.SubDead)
	case u.spec.Restart == "always" || u.spec.Restart == "on-failure" && failure:
		now := time.Now()
		u.starts = slices.DeleteFunc(u.starts, func(t time.Time) bool { return now.Sub(t) > startLimitInterval })
		if len(u.starts) >= startLimitBurst {
			u.result = fmt.Sprintf("start limit hit: %d starts within %v, last %s", len(u.starts), startLimitInterval, result)
			logf("service %s: failed: %s", name, u.result)
			s.set(u, agentproto.StateFailed, agentproto.SubFailed)
			break
		}
		delay := min(restartBase<<min(u.restarts, 16), restartMax)
		u.result = result
		u.job = true
		logf("service %s: %s; restarting in %v", name, result, delay)
		s.set(u, agentproto.StateActivating, agentproto.SubAutoRestart)
		time.AfterFunc(delay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if u.gen != gen || u.sub != agentproto.SubAutoRestart || !u.job || s.halted {
				return
			}
			u.restarts++
			s.set(u, agentproto.StateInactive, agentproto.SubDead)
			s.kick()
		})
		return
	case failure:
		u.result = result
		logf("service %s: failed: %s", name, result)
		s.set(u, agentproto.StateFailed, agentproto.SubFailed)
	default:
		u.result = result
		u.exitedOK = true
		logf("service %s: exited: %s", name, result)
		s.set(u, agentproto.StateInactive, agentproto.SubDead)
	}
	s.kick()
}

// awaitReady polls u's readiness check until it passes, u's run ends, or
// the readiness timeout passes (then u is stopped and fails).
func (s *supervisor) awaitReady(u *unit, gen int) {
	r := u.spec.Ready
	timeout := defaultReadyTimeout
	if r.TimeoutMS > 0 {
		timeout = time.Duration(r.TimeoutMS) * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	interval := 20 * time.Millisecond
	for {
		s.mu.Lock()
		current := u.gen == gen && u.state == agentproto.StateActivating && u.sub == agentproto.SubStart
		s.mu.Unlock()
		if !current {
			return
		}
		if s.ready(r) {
			s.mu.Lock()
			if u.gen == gen && u.state == agentproto.StateActivating && u.sub == agentproto.SubStart {
				logf("service %s: active", u.spec.Name)
				s.set(u, agentproto.StateActive, agentproto.SubRunning)
				s.kick()
			}
			s.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			if u.gen == gen && u.state == agentproto.StateActivating && u.pid > 0 {
				u.failNext = fmt.Sprintf("not ready within %v (%s)", timeout, describeReady(r))
				s.terminate(u)
			}
			s.mu.Unlock()
			return
		}
		time.Sleep(interval)
		interval = min(interval*2, readyPollMax)
	}
}

func describeReady(r agentproto.Readiness) string {
	var w []string
	if r.Port != 0 {
		w = append(w, fmt.Sprintf("port %d", r.Port))
	}
	if r.File != "" {
		w = append(w, "file "+r.File)
	}
	if r.Command != "" {
		w = append(w, fmt.Sprintf("command %q", r.Command))
	}
	return strings.Join(w, ", ")
}

// ready runs the readiness checks once; all that are set must pass.
func (s *supervisor) ready(r agentproto.Readiness) bool {
	if r.Port != 0 {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)), time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	if r.File != "" {
		if _, err := os.Stat(r.File); err != nil {
			return false
		}
	}
	if r.Command != "" {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return false
		}
		pid, done, err := s.reaper.start([]string{"/bin/sh", "-c", r.Command}, &os.ProcAttr{
			Dir: "/", Env: s.env, Files: []*os.File{devnull, devnull, devnull},
		})
		devnull.Close()
		if err != nil {
			return false
		}
		t := time.NewTimer(readyCommandTimeout)
		defer t.Stop()
		select {
		case ws := <-done:
			code, _ := exitCode(ws)
			return code == 0
		case <-t.C:
			unix.Kill(-pid, unix.SIGKILL)
			<-done
			return false
		}
	}
	return true
}

// terminate sends SIGTERM to u's process group, and SIGKILL after
// stopTimeout if that run is still there; mu is held.
func (s *supervisor) terminate(u *unit) {
	s.set(u, agentproto.StateDeactivating, agentproto.SubStop)
	pid, gen := u.pid, u.gen
	unix.Kill(-pid, unix.SIGTERM)
	time.AfterFunc(stopTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if u.gen == gen && u.pid == pid && pid > 0 {
			logf("service %s: still running %v after SIGTERM; killing it", u.spec.Name, stopTimeout)
			unix.Kill(-pid, unix.SIGKILL)
		}
	})
}

// do carries out a unit request and returns the unit's status after it.
func (s *supervisor) do(req agentproto.UnitRequest) agentproto.UnitStatus {
	if req.Action == agentproto.UnitList {
		s.mu.Lock()
		defer s.mu.Unlock()
		return agentproto.UnitStatus{Units: slices.Clone(s.order)}
	}
	s.mu.Lock()
	u := s.units[req.Name]
	s.mu.Unlock()
	if u == nil {
		return agentproto.UnitStatus{Name: req.Name, Code: agentproto.CodeUnknownUnit,
			Error: fmt.Sprintf("unit %s not found (units: %s)", req.Name, strings.Join(s.order, ", "))}
	}
	switch req.Action {
	case agentproto.UnitStatusAction:
	case agentproto.UnitStart:
		s.start(u)
	case agentproto.UnitStop:
		s.stop(u)
	case agentproto.UnitRestart:
		s.stop(u)
		s.start(u)
	default:
		return agentproto.UnitStatus{Name: req.Name, Code: agentproto.CodeUnknownAction, Error: fmt.Sprintf("unknown unit action %q", req.Action)}
	}
	return s.status(u)
}

// start queues u and whatever it needs that is not up; it returns at once
// (the host polls for the state).
func (s *supervisor) start(u *unit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var want func(u *unit)
	want = func(u *unit) {
		if u.state == agentproto.StateActive || u.state == agentproto.StateActivating || u.job {
			return
		}
		u.job = true
		// A start asked for by hand resets the start limit, as
		// systemctl reset-failed would.
		u.starts = nil
		for _, d := range u.spec.After {
			if du := s.units[d]; !(du.state == agentproto.StateInactive && du.exitedOK) {
				want(du)
			}
		}
	}
	want(u)
	s.kick()
}

// stop stops u and waits until its process is gone. Stopping a failed unit
// makes it inactive, as reset-failed would.
func (s *supervisor) stop(u *unit) {
	s.mu.Lock()
	u.job = false
	switch {
	case u.pid > 0 && u.state != agentproto.StateDeactivating:
		s.terminate(u)
	case u.pid == 0:
		// Not running: a pending restart or a failed unit.
		s.set(u, agentproto.StateInactive, agentproto.SubDead)
	}
	for u.state == agentproto.StateDeactivating {
		c := u.changed
		s.mu.Unlock()
		select {
		case <-c:
		case <-time.After(stopTimeout + 2*time.Second):
			// The SIGKILL did not end it (a process in D state): report
			// what is.
			return
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
}

func (s *supervisor) status(u *unit) agentproto.UnitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := agentproto.UnitStatus{
		Name: u.spec.Name, State: u.state, SubState: u.sub, Command: u.spec.Command,
		PID: u.pid, Restarts: u.restarts, Result: u.result, ExitedOK: u.exitedOK, SinceMS: u.since.UnixMilli(),
		Output: slices.Clone(u.tail),
	}
	if u.job {
		st.Job = agentproto.JobStart
	}
	return st
}
