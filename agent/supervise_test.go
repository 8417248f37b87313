package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
	"github.com/shakedown-dev/shakedown/internal/agenttest"
)

// supervised runs an agent with svcs in this process, starts them, and
// stops them all when the test ends.
func supervised(t *testing.T, svcs ...agentproto.Service) (*agentclient.Client, *agenttest.Console) {
	t.Helper()
	return agenttest.Start(t, svcs...)
}

func unit(t *testing.T, c *agentclient.Client, action, name string) agentproto.UnitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := c.Unit(ctx, action, name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitState polls until name is in state, failing on a timeout with the
// last status seen.
func waitState(t *testing.T, c *agentclient.Client, name, state string, within time.Duration) agentproto.UnitStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := unit(t, c, agentproto.UnitStatusAction, name)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("unit %s: got state %s/%s (result %q, output %q) after %v, want %s", name, st.State, st.SubState, st.Result, st.Output, within, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServiceOrderAndReadiness(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	env := map[string]string{"LOG": log, "DIR": dir}
	// After guarantees that a service starts once its dependencies are
	// active, no more: a service without a readiness check is active as
	// soon as it is spawned, before it has run a line. So each service
	// here counts as active only once its line is in the log, which makes
	// the log's order the order the supervisor guarantees. a's readiness
	// also waits for a file the test creates, so that the test sees the
	// states before a is ready without racing a timer.
	c, out := supervised(t,
		// Declared out of order on purpose: After decides.
		agentproto.Service{Name: "c", Command: `echo c >> "$LOG"; exec sleep 60`, Env: env, After: []string{"b"},
			Ready: agentproto.Readiness{Command: `grep -qx c "$LOG"`}},
		agentproto.Service{Name: "b", Command: `echo b >> "$LOG"; exec sleep 60`, Env: env, After: []string{"a"},
			Ready: agentproto.Readiness{Command: `grep -qx b "$LOG"`}},
		agentproto.Service{Name: "a", Command: `echo hello from a; echo a >> "$LOG"; exec sleep 60`, Env: env,
			Ready: agentproto.Readiness{File: filepath.Join(dir, "go"), Command: `grep -qx a "$LOG"`}},
	)
	if st := unit(t, c, agentproto.UnitStatusAction, "b"); st.State != agentproto.StateInactive || st.Job != agentproto.JobStart {
		t.Errorf("b while a activates: got %s job %q, want inactive with a pending start", st.State, st.Job)
	}
	if st := unit(t, c, agentproto.UnitStatusAction, "a"); st.State != agentproto.StateActivating {
		t.Errorf("a before it is ready: got %s, want activating", st.State)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "c", agentproto.StateActive, 5*time.Second)
	got, _ := os.ReadFile(log)
	if string(got) != "a\nb\nc\n" {
		t.Errorf("got start order %q, want %q", got, "a\nb\nc\n")
	}
	// Output is copied as it comes, independently of the states.
	var st agentproto.UnitStatus
	ok := eventually(5*time.Second, func() bool {
		st = unit(t, c, agentproto.UnitStatusAction, "a")
		return len(st.Output) == 1 && strings.Contains(out.String(), "[a] hello from a\n")
	})
	if !ok {
		t.Errorf("got a's output %q and console %q, want the line %q in both", st.Output, out.String(), "[a] hello from a")
	}
	if st.State != agentproto.StateActive || st.SubState != agentproto.SubRunning || st.PID == 0 {
		t.Errorf("got a %+v, want active/running with a pid", st)
	}
}

// TestServiceLongLine: a service that prints a line longer than any buffer
// must not lose its output reader (and die of SIGPIPE).
func TestServiceLongLine(t *testing.T) {
	c, out := supervised(t, agentproto.Service{Name: "s", Command: `head -c 100000 /dev/zero | tr '\0' x; echo; echo after; exec sleep 60`})
	if !eventually(5*time.Second, func() bool { return strings.Contains(out.String(), "[s] after\n") }) {
		t.Errorf("console got %q, want the line after the long one", clip(out.String()))
	}
	if st := unit(t, c, agentproto.UnitStatusAction, "s"); st.State != agentproto.StateActive {
		t.Errorf("got %s (result %q), want active", st.State, st.Result)
	}
}

func TestServiceReadinessByPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c, _ := supervised(t, agentproto.Service{Name: "web", Command: "exec sleep 60", Ready: agentproto.Readiness{Port: port}})
	time.Sleep(150 * time.Millisecond)
	if st := unit(t, c, agentproto.UnitStatusAction, "web"); st.State != agentproto.StateActivating {
		t.Fatalf("got %s with nothing on port %d, want activating", st.State, port)
	}
	ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	waitState(t, c, "web", agentproto.StateActive, 3*time.Second)
}

func TestServiceRestartPolicy(t *testing.T) {
	// Fails on its first two runs, then stays up.
	flaky := `n=$(cat "$DIR/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$DIR/n"; echo run $n; [ $n -ge 3 ] || exit 1; exec sleep 60`
	tests := []struct {
		name, restart, cmd string
		state              string
		restarts           int
		result             string
	}{
		{"on-failure recovers", "on-failure", flaky, agentproto.StateActive, 2, "exit status 1"},
		{"no restart fails", "no", flaky, agentproto.StateFailed, 0, "exit status 1"},
		{"on-failure leaves success alone", "on-failure", "echo done", agentproto.StateInactive, 0, "exit status 0"},
		{"always crash loop hits the start limit", "always", "exit 0", agentproto.StateFailed, 4, "start limit hit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"DIR": t.TempDir()}
			c, _ := supervised(t, agentproto.Service{Name: "s", Command: tt.cmd, Env: env, Restart: tt.restart})
			began := time.Now()
			var st agentproto.UnitStatus
			for time.Since(began) < 8*time.Second {
				st = unit(t, c, agentproto.UnitStatusAction, "s")
				if st.State == tt.state && st.Job == "" && st.Restarts == tt.restarts {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if st.State != tt.state || st.Restarts != tt.restarts || !strings.HasPrefix(st.Result, tt.result) {
				t.Errorf("got %s after %d restarts (result %q), want %s after %d (%q)", st.State, st.Restarts, st.Result, tt.state, tt.restarts, tt.result)
			}
		})
	}
}

func TestServiceFailedStateAndDependents(t *testing.T) {
	c, _ := supervised(t,
		// Without a readiness check db would count as active at once (as
		// systemd's Type=simple) and app would start.
		agentproto.Service{Name: "db", Command: "echo cannot open data; exit 3", Ready: agentproto.Readiness{Port: 1}},
		agentproto.Service{Name: "app", Command: "exec sleep 60", After: []string{"db"}},
	)
	st := waitState(t, c, "db", agentproto.StateFailed, 3*time.Second)
	if st.Result != "exit status 3" || len(st.Output) == 0 || st.Output[len(st.Output)-1] != "cannot open data" {
		t.Errorf("got result %q output %q, want exit status 3 and the last line", st.Result, st.Output)
	}
	st = waitState(t, c, "app", agentproto.StateFailed, 3*time.Second)
	if st.Result != "dependency db failed" {
		t.Errorf("got app result %q, want the failed dependency", st.Result)
	}
}

func TestServiceReadinessTimeout(t *testing.T) {
	c, _ := supervised(t, agentproto.Service{Name: "slow", Command: "exec sleep 60",
		Ready: agentproto.Readiness{File: "/nonexistent/ready", TimeoutMS: 300}})
	st := waitState(t, c, "slow", agentproto.StateFailed, 3*time.Second)
	if !strings.Contains(st.Result, "not ready within 300ms") || st.PID != 0 {
		t.Errorf("got result %q pid %d, want a readiness timeout and no process", st.Result, st.PID)
	}
}

func TestServiceStartStopRestart(t *testing.T) {
	// top is active once its TERM trap is set: a stop that came sooner
	// would kill it before the trap could say bye. The test removes the
	// file when top is stopped, so that each run makes its own.
	up := filepath.Join(t.TempDir(), "up")
	c, _ := supervised(t,
		agentproto.Service{Name: "base", Command: "exec sleep 60"},
		agentproto.Service{Name: "top", Command: `trap 'echo bye; exit 0' TERM; echo up; touch "$UP"; while :; do sleep 0.05; done`,
			Env: map[string]string{"UP": up}, After: []string{"base"}, Ready: agentproto.Readiness{File: up}},
	)
	first := waitState(t, c, "top", agentproto.StateActive, 3*time.Second)
	if st := unit(t, c, agentproto.UnitStop, "top"); st.State != agentproto.StateInactive || st.PID != 0 {
		t.Fatalf("after stop got %s pid %d, want inactive without a process", st.State, st.PID)
	}
	if err := os.Remove(up); err != nil {
		t.Fatal(err)
	}
	if st := unit(t, c, agentproto.UnitStop, "base"); st.State != agentproto.StateInactive {
		t.Fatalf("after stop got %s, want inactive", st.State)
	}
	// Starting top pulls in base again.
	unit(t, c, agentproto.UnitStart, "top")
	waitState(t, c, "base", agentproto.StateActive, 3*time.Second)
	second := waitState(t, c, "top", agentproto.StateActive, 3*time.Second)
	if second.PID == first.PID {
		t.Errorf("start reused pid %d", first.PID)
	}
	st := unit(t, c, agentproto.UnitRestart, "top")
	if st.PID == second.PID || (st.State != agentproto.StateActive && st.State != agentproto.StateActivating) {
		t.Errorf("after restart got %s pid %d (was %d), want a new run", st.State, st.PID, second.PID)
	}
	if !strings.Contains(strings.Join(st.Output, "\n"), "bye") {
		t.Errorf("got output %q, want the TERM trap's line", st.Output)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Unit(ctx, agentproto.UnitStatusAction, "nope"); !errors.Is(err, agentclient.ErrUnknownUnit) || !strings.Contains(err.Error(), "unit nope not found (units: base, top)") {
		t.Errorf("got %v for an unknown unit, want ErrUnknownUnit, with the units listed", err)
	}
	if _, err := c.Unit(ctx, "reload", "top"); err == nil || errors.Is(err, agentclient.ErrUnknownUnit) {
		t.Errorf("got %v for an unknown action, want an error that is not ErrUnknownUnit", err)
	}
}

func TestNoServices(t *testing.T) {
	c := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Unit(ctx, agentproto.UnitStatusAction, "x"); !errors.Is(err, agentclient.ErrNoServices) {
		t.Errorf("got %v, want ErrNoServices", err)
	}
}

func TestValidateServices(t *testing.T) {
	svc := func(name string, after ...string) agentproto.Service {
		return agentproto.Service{Name: name, Command: "true", After: after}
	}
	tests := []struct {
		name string
		svcs []agentproto.Service
		want string // "" means valid
	}{
		{"ok", []agentproto.Service{svc("b", "a"), svc("a")}, ""},
		{"unknown dependency", []agentproto.Service{svc("a", "db")}, `service a: unknown dependency "db"`},
		{"cycle", []agentproto.Service{svc("a", "c"), svc("b", "a"), svc("c", "b")}, "dependency cycle a -> c -> b -> a"},
		{"self", []agentproto.Service{svc("a", "a")}, "dependency cycle a -> a"},
		{"twice", []agentproto.Service{svc("a"), svc("a")}, "declared twice"},
		{"no command", []agentproto.Service{{Name: "a"}}, "no command"},
		{"bad restart", []agentproto.Service{{Name: "a", Command: "x", Restart: "sometimes"}}, `restart policy "sometimes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agentproto.ValidateServices(tt.svcs)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}
