package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/agent"
	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// supervised runs an agent with svcs in this process, starts them, and
// stops them all when the test ends.
func supervised(t *testing.T, svcs ...agentproto.Service) (*agentclient.Client, *lockedBuf) {
	t.Helper()
	out := &lockedBuf{}
	a, err := agent.New(agent.Config{Services: svcs, ServiceOutput: out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := agentclient.Dial(ctx, pair(t, a))
	if err != nil {
		t.Fatal(err)
	}
	a.StartServices()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for _, s := range svcs {
			c.Unit(ctx, agentproto.UnitStop, s.Name)
		}
		c.Close()
	})
	return c, out
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
	c, out := supervised(t,
		// Declared out of order on purpose: After decides.
		agentproto.Service{Name: "c", Command: `echo c >> "$LOG"; exec sleep 60`, Env: env, After: []string{"b"},
			Ready: agentproto.Readiness{Command: `grep -q c "$LOG"`}},
		agentproto.Service{Name: "b", Command: `echo b >> "$LOG"; exec sleep 60`, Env: env, After: []string{"a"}},
		agentproto.Service{Name: "a", Command: `echo hello from a; sleep 0.3; echo a >> "$LOG"; touch "$DIR/a.ready"; exec sleep 60`, Env: env,
			Ready: agentproto.Readiness{File: filepath.Join(dir, "a.ready")}},
	)
	if st := unit(t, c, agentproto.UnitStatusAction, "b"); st.State != "inactive" || st.Job != "start" {
		t.Errorf("b while a activates: got %s job %q, want inactive with a pending start", st.State, st.Job)
	}
	if st := unit(t, c, agentproto.UnitStatusAction, "a"); st.State != "activating" {
		t.Errorf("a before its file: got %s, want activating", st.State)
	}
	waitState(t, c, "c", "active", 5*time.Second)
	got, _ := os.ReadFile(log)
	if string(got) != "a\nb\nc\n" {
		t.Errorf("got start order %q, want %q", got, "a\nb\nc\n")
	}
	if !strings.Contains(out.String(), "[a] hello from a\n") {
		t.Errorf("console got %q, want a line %q", out.String(), "[a] hello from a")
	}
	if st := unit(t, c, agentproto.UnitStatusAction, "a"); st.State != "active" || st.SubState != "running" || st.PID == 0 || len(st.Output) != 1 {
		t.Errorf("got a %+v, want active/running with a pid and one output line", st)
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
	if st := unit(t, c, agentproto.UnitStatusAction, "web"); st.State != "activating" {
		t.Fatalf("got %s with nothing on port %d, want activating", st.State, port)
	}
	ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	waitState(t, c, "web", "active", 3*time.Second)
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
		{"on-failure recovers", "on-failure", flaky, "active", 2, "exit status 1"},
		{"no restart fails", "no", flaky, "failed", 0, "exit status 1"},
		{"on-failure leaves success alone", "on-failure", "echo done", "inactive", 0, "exit status 0"},
		{"always crash loop hits the start limit", "always", "exit 0", "failed", 4, "start limit hit"},
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
	st := waitState(t, c, "db", "failed", 3*time.Second)
	if st.Result != "exit status 3" || len(st.Output) == 0 || st.Output[len(st.Output)-1] != "cannot open data" {
		t.Errorf("got result %q output %q, want exit status 3 and the last line", st.Result, st.Output)
	}
	st = waitState(t, c, "app", "failed", 3*time.Second)
	if st.Result != "dependency db failed" {
		t.Errorf("got app result %q, want the failed dependency", st.Result)
	}
}

func TestServiceReadinessTimeout(t *testing.T) {
	c, _ := supervised(t, agentproto.Service{Name: "slow", Command: "exec sleep 60",
		Ready: agentproto.Readiness{File: "/nonexistent/ready", TimeoutMS: 300}})
	st := waitState(t, c, "slow", "failed", 3*time.Second)
	if !strings.Contains(st.Result, "not ready within 300ms") || st.PID != 0 {
		t.Errorf("got result %q pid %d, want a readiness timeout and no process", st.Result, st.PID)
	}
}

func TestServiceStartStopRestart(t *testing.T) {
	c, _ := supervised(t,
		agentproto.Service{Name: "base", Command: "exec sleep 60"},
		agentproto.Service{Name: "top", Command: "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done", After: []string{"base"}},
	)
	first := waitState(t, c, "top", "active", 3*time.Second)
	if st := unit(t, c, agentproto.UnitStop, "top"); st.State != "inactive" || st.PID != 0 {
		t.Fatalf("after stop got %s pid %d, want inactive without a process", st.State, st.PID)
	}
	if st := unit(t, c, agentproto.UnitStop, "base"); st.State != "inactive" {
		t.Fatalf("after stop got %s, want inactive", st.State)
	}
	// Starting top pulls in base again.
	unit(t, c, agentproto.UnitStart, "top")
	waitState(t, c, "base", "active", 3*time.Second)
	second := waitState(t, c, "top", "active", 3*time.Second)
	if second.PID == first.PID {
		t.Errorf("start reused pid %d", first.PID)
	}
	st := unit(t, c, agentproto.UnitRestart, "top")
	if st.PID == second.PID || (st.State != "active" && st.State != "activating") {
		t.Errorf("after restart got %s pid %d (was %d), want a new run", st.State, st.PID, second.PID)
	}
	if !strings.Contains(strings.Join(st.Output, "\n"), "bye") {
		t.Errorf("got output %q, want the TERM trap's line", st.Output)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Unit(ctx, agentproto.UnitStatusAction, "nope"); err == nil || !strings.Contains(err.Error(), "unit nope not found (units: base, top)") {
		t.Errorf("got %v for an unknown unit, want one that lists the units", err)
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
