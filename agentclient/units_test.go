package agentclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
	"github.com/shakedown-dev/shakedown/internal/agenttest"
)

// dial runs an agent with svcs in this process on one end of a socketpair
// (standing in for the virtio-serial port), starts the services, and
// returns a client on the other end. Everything stops when the test ends.
func dial(t *testing.T, svcs ...agentproto.Service) *agentclient.Client {
	t.Helper()
	c, _ := agenttest.Start(t, svcs...)
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSystemctl(t *testing.T) {
	c := dial(t,
		agentproto.Service{Name: "web", Command: "exec sleep 60"},
		// With a readiness check, start and restart wait for the outcome.
		agentproto.Service{Name: "broken", Command: "echo reading config; echo fatal: no config >&2; exit 2",
			Ready: agentproto.Readiness{Port: 1}},
		// Without one, it would be active at once and inactive once it
		// exits, whenever that is.
		agentproto.Service{Name: "oneshot", Command: "echo done", After: []string{"web"},
			Ready: agentproto.Readiness{File: "/nonexistent/never"}},
	)
	u := &agentclient.Units{Agent: c}
	// The steps run in order on one machine: some change what later
	// ones see.
	steps := []struct {
		args   string
		status int
		out    string   // the whole output, if has is nil
		has    []string // parts of the output
	}{
		{args: "restart broken", status: 1, has: []string{"Job for broken.service failed: it is failed (exit status 2).\n", `See "systemctl status broken.service"`}},
		{args: "is-active web", status: 0, out: "active\n"},
		{args: "is-active web.service", status: 0, out: "active\n"},
		{args: "is-active web broken", status: 3, out: "active\nfailed\n"},
		{args: "is-active nope", status: 3, out: "inactive\n"},
		{args: "is-failed broken", status: 0, out: "failed\n"},
		{args: "is-failed web", status: 1, out: "active\n"},
		{args: "status web --no-pager", status: 0, has: []string{"● web.service\n", "Active: active (running) since ", "Command: exec sleep 60\n"}},
		{args: "status broken", status: 3, has: []string{"Active: failed (failed)", "; last: exit status 2", "[broken] reading config\n", "[broken] fatal: no config\n"}},
		{args: "status nope", status: 4, out: "Unit nope.service could not be found.\n"},
		{args: "--no-pager show web", status: 0, has: []string{"Id=web.service\n", "LoadState=loaded\n", "ActiveState=active\n", "SubState=running\n", "Result=success\n"}},
		{args: "show broken", status: 0, has: []string{"ActiveState=failed\n", "Result=exit status 2\n"}},
		{args: "show nope", status: 0, has: []string{"LoadState=not-found\n"}},
		{args: "start nope", status: 5, out: "Failed to start nope.service: Unit nope.service not found.\n"},
		{args: "stop nope.service", status: 5, out: "Failed to stop nope.service: Unit nope.service not found.\n"},
		{args: "start", status: 1, out: "Too few arguments.\n"},
		{args: "stop web", status: 0, out: ""},
		{args: "is-active web", status: 3, out: "inactive\n"},
		{args: "start web", status: 0, out: ""},
		{args: "is-active web", status: 0, out: "active\n"},
		// A one-shot that exits 0 has started successfully.
		{args: "restart oneshot", status: 0, out: ""},
		{args: "list-units", status: 0, out: "web.service loaded active running\nbroken.service loaded failed failed\noneshot.service loaded inactive dead\n"},
	}
	for _, s := range steps {
		status, out, err := u.Systemctl(testContext(t), s.args)
		if err != nil {
			t.Fatalf("systemctl %s: %v", s.args, err)
		}
		if status != s.status {
			t.Errorf("systemctl %s: got status %d (output %q), want %d", s.args, status, out, s.status)
		}
		if s.has == nil && out != s.out {
			t.Errorf("systemctl %s: got output %q, want %q", s.args, out, s.out)
		}
		for _, h := range s.has {
			if !strings.Contains(out, h) {
				t.Errorf("systemctl %s: got output %q, want it to contain %q", s.args, out, h)
			}
		}
	}

	if _, _, err := u.Systemctl(testContext(t), "reload web"); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "start, stop, restart") {
		t.Errorf("systemctl reload: got %v, want ErrUnsupported with the verbs that work", err)
	}
}

func TestUnitsStatus(t *testing.T) {
	c := dial(t, agentproto.Service{Name: "web", Command: "exec sleep 60"})
	u := &agentclient.Units{Agent: c}
	tests := []struct {
		name    string
		unit    string
		state   string
		wantErr error
	}{
		{"plain name", "web", agentproto.StateActive, nil},
		{"service suffix", "web.service", agentproto.StateActive, nil},
		{"unknown", "nope", "", agentclient.ErrUnknownUnit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := u.Status(testContext(t), tt.unit)
			if !errors.Is(err, tt.wantErr) || st.State != tt.state {
				t.Errorf("got %q, %v, want %q, %v", st.State, err, tt.state, tt.wantErr)
			}
			if tt.wantErr != nil && !strings.Contains(err.Error(), "unit nope not found (units: web)") {
				t.Errorf("got %q, want the agent's words with the known units", err)
			}
		})
	}
}

func TestUnitActive(t *testing.T) {
	many := make([]string, 20)
	for i := range many {
		many[i] = "line " + string(rune('a'+i))
	}
	tests := []struct {
		name    string
		st      agentproto.UnitStatus
		active  bool
		wantErr error
		msg     string // the whole message of an error
	}{
		{"active", agentproto.UnitStatus{Name: "w", State: agentproto.StateActive}, true, nil, ""},
		{"activating", agentproto.UnitStatus{Name: "w", State: agentproto.StateActivating}, false, nil, ""},
		{"inactive with a start pending", agentproto.UnitStatus{Name: "w", State: agentproto.StateInactive, Job: agentproto.JobStart}, false, nil, ""},
		{"failed", agentproto.UnitStatus{Name: "db", State: agentproto.StateFailed, Result: "exit status 3", Restarts: 2, Output: []string{"cannot open data"}},
			false, agentclient.ErrUnitFailed, "unit db reached state \"failed\" (exit status 3, after 2 restarts); its last output:\n  [db] cannot open data"},
		{"failed silently", agentproto.UnitStatus{Name: "db", State: agentproto.StateFailed},
			false, agentclient.ErrUnitFailed, "unit db reached state \"failed\"; it printed nothing"},
		{"inactive", agentproto.UnitStatus{Name: "w", State: agentproto.StateInactive, Result: "exit status 0"},
			false, agentclient.ErrUnitFailed, "unit w is inactive and has no pending start (exit status 0); it printed nothing"},
		{"last lines only", agentproto.UnitStatus{Name: "x", State: agentproto.StateFailed, Output: many},
			false, agentclient.ErrUnitFailed, "unit x reached state \"failed\"; its last output:\n  [x] " + strings.Join(many[5:], "\n  [x] ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			active, err := agentclient.UnitActive(tt.st)
			if active != tt.active || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("got %v, %v, want %v, %v", active, err, tt.active, tt.wantErr)
			}
			if err != nil && err.Error() != tt.msg {
				t.Errorf("got message %q, want %q", err, tt.msg)
			}
		})
	}
}

// fakeSystemd answers the commands Units sends to a guest's systemd.
type fakeSystemd struct {
	show, jobs, journal string
	status              int // of every command; 127 says there is no systemctl
	ran                 []string
}

func (f *fakeSystemd) exec(ctx context.Context, cmd agentclient.Command) (agentclient.Result, error) {
	f.ran = append(f.ran, cmd.Cmd)
	res := agentclient.Result{Status: f.status}
	switch {
	case strings.HasPrefix(cmd.Cmd, "systemctl show "):
		res.Stdout = []byte(f.show)
	case strings.HasPrefix(cmd.Cmd, "systemctl list-jobs "):
		res.Stdout = []byte(f.jobs)
	case strings.HasPrefix(cmd.Cmd, "journalctl "):
		res.Stdout = []byte(f.journal)
	case strings.HasPrefix(cmd.Cmd, "systemctl is-active "):
		res.Stdout = []byte("active\n")
	}
	return res, nil
}

// TestSystemdUnits checks the fallback to the guest's systemd on a machine
// whose agent supervises nothing.
func TestSystemdUnits(t *testing.T) {
	c := dial(t)
	tests := []struct {
		name    string
		unit    string
		fake    fakeSystemd
		want    agentproto.UnitStatus
		wantErr []error
	}{
		{"active", "hello", fakeSystemd{show: "LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nMainPID=42\nNRestarts=0\nExecMainStatus=0\n"},
			agentproto.UnitStatus{Name: "hello", State: agentproto.StateActive, SubState: agentproto.SubRunning, PID: 42}, nil},
		{"target", "multi-user.target", fakeSystemd{show: "LoadState=loaded\nActiveState=activating\nSubState=start\n"},
			agentproto.UnitStatus{Name: "multi-user.target", State: agentproto.StateActivating, SubState: agentproto.SubStart}, nil},
		{"queued", "hello.service", fakeSystemd{show: "LoadState=loaded\nActiveState=inactive\nSubState=dead\n", jobs: "12 hello.service start waiting\n"},
			agentproto.UnitStatus{Name: "hello", State: agentproto.StateInactive, SubState: agentproto.SubDead, Job: agentproto.JobStart}, nil},
		{"failed", "broken", fakeSystemd{show: "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=1\nExecMainStatus=3\n", journal: "starting\nfatal: no config\n"},
			agentproto.UnitStatus{Name: "broken", State: agentproto.StateFailed, SubState: agentproto.SubFailed, Restarts: 1, Result: "exit-code, exit status 3", Output: []string{"starting", "fatal: no config"}}, nil},
		{"not found", "nope", fakeSystemd{show: "LoadState=not-found\nActiveState=inactive\n"},
			agentproto.UnitStatus{Name: "nope"}, []error{agentclient.ErrUnknownUnit}},
		{"no systemctl", "nope", fakeSystemd{status: 127},
			agentproto.UnitStatus{Name: "nope"}, []error{agentclient.ErrUnknownUnit, agentclient.ErrNoServices}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &agentclient.Units{Agent: c, Exec: tt.fake.exec}
			st, err := u.Status(testContext(t), tt.unit)
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("got error %v, want one matching %v", err, want)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("got error %v (ran %q), want none", err, tt.fake.ran)
			}
			got, want := st, tt.want
			if strings.Join(got.Output, "|") != strings.Join(want.Output, "|") {
				t.Errorf("got output %q, want %q", got.Output, want.Output)
			}
			got.Output, want.Output = nil, nil
			if got.Name != want.Name || got.State != want.State || got.SubState != want.SubState || got.Job != want.Job ||
				got.PID != want.PID || got.Restarts != want.Restarts || got.Result != want.Result {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}

	fake := &fakeSystemd{}
	u := &agentclient.Units{Agent: c, Exec: fake.exec}
	status, out, err := u.Systemctl(testContext(t), "is-active hello")
	if err != nil || status != 0 || out != "active\n" || strings.Join(fake.ran, "|") != "systemctl is-active hello" {
		t.Errorf("got %d %q %v after running %q, want the guest's systemctl's answer", status, out, err, fake.ran)
	}
}

func TestSystemdUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"web": "web.service", "web.service": "web.service", "multi-user.target": "multi-user.target",
		"ssh.socket": "ssh.socket", "dev-vda.device": "dev-vda.device", "a.b": "a.b.service",
	} {
		if got := agentclient.SystemdUnit(in); got != want {
			t.Errorf("SystemdUnit(%q): got %q, want %q", in, got, want)
		}
	}
}
