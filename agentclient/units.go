package agentclient

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// Settling: a unit just started is asked for its state again after
// settlePollStart, doubling up to settlePollMax, so that a quick start is
// seen quickly and a slow one does not keep a TCG guest busy answering.
const (
	settlePollStart = 50 * time.Millisecond
	settlePollMax   = time.Second
)

// unitOutputLines is how many of a failed unit's last output lines an
// ErrUnitFailed error shows.
const unitOutputLines = 15

// Units answers for the units of one machine, whoever runs them: the
// agent's supervisor when it has services, else the guest's systemd, asked
// with systemctl and journalctl through Exec. Its methods are safe for
// concurrent use if Exec is.
type Units struct {
	// Agent is the machine's agent; it must be set.
	Agent *Client
	// Exec runs a command in the guest for units of the guest's systemd;
	// nil means Agent.Exec. A caller passes its own to bound such
	// commands by its deadlines, or to log them.
	Exec func(ctx context.Context, cmd Command) (Result, error)
}

func (u *Units) exec(ctx context.Context, cmd string) (Result, error) {
	if u.Exec != nil {
		return u.Exec(ctx, Command{Cmd: cmd})
	}
	return u.Agent.Exec(ctx, Command{Cmd: cmd})
}

// Status returns the unit's status. A ".service" suffix is dropped for the
// agent, which names units without it. An unknown unit is an error
// matching ErrUnknownUnit; on a machine with neither supervised services
// nor systemctl it matches ErrNoServices too.
func (u *Units) Status(ctx context.Context, name string) (agentproto.UnitStatus, error) {
	name = unitName(name)
	st, err := u.Agent.Unit(ctx, agentproto.UnitStatusAction, name)
	if errors.Is(err, ErrNoServices) {
		return u.systemdStatus(ctx, name)
	}
	return st, err
}

// systemdStatus asks the guest's systemd for a unit's status.
func (u *Units) systemdStatus(ctx context.Context, name string) (agentproto.UnitStatus, error) {
	st := agentproto.UnitStatus{Name: name}
	unit := ShellQuote(SystemdUnit(name))
	res, err := u.exec(ctx, "systemctl show --property=LoadState,ActiveState,SubState,Result,MainPID,NRestarts,ExecMainStatus "+unit)
	if err != nil {
		return st, err
	}
	if res.Status == 127 {
		return st, &unitError{
			msg:   fmt.Sprintf("unit %s: the agent supervises no services and the guest has no systemctl", name),
			kinds: []error{ErrUnknownUnit, ErrNoServices},
		}
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	if props["LoadState"] == "not-found" {
		return st, &unitError{msg: fmt.Sprintf("unit %s not found by systemd", name), kinds: []error{ErrUnknownUnit}}
	}
	st.State, st.SubState = props["ActiveState"], props["SubState"]
	fmt.Sscan(props["MainPID"], &st.PID)
	fmt.Sscan(props["NRestarts"], &st.Restarts)
	switch r := props["Result"]; {
	case r == "success" && props["ExecMainStatus"] == "0" && st.State == agentproto.StateInactive:
		st.ExitedOK = true
	case r != "" && r != "success":
		st.Result = r + ", exit status " + props["ExecMainStatus"]
	}
	if st.State == agentproto.StateInactive {
		// As the NixOS driver does: an inactive unit may still have a
		// start job queued.
		jobs, err := u.exec(ctx, "systemctl list-jobs --full --no-legend "+unit)
		if err == nil && strings.TrimSpace(string(jobs.Stdout)) != "" {
			st.Job = agentproto.JobStart
		}
	}
	if st.State == agentproto.StateFailed {
		logs, err := u.exec(ctx, fmt.Sprintf("journalctl --no-pager -o cat -n %d -u %s", unitOutputLines, unit))
		if err == nil && len(logs.Stdout) > 0 {
			st.Output = strings.Split(strings.TrimRight(string(logs.Stdout), "\n"), "\n")
		}
	}
	return st, nil
}

// UnitActive reports whether st is active. A unit that cannot become
// active without being asked again is an ErrUnitFailed error, as the NixOS
// driver's wait_for_unit fails: one in the failed state, or inactive with
// no start pending (it exited, or was stopped). Any other state may still
// become active: (false, nil).
func UnitActive(st agentproto.UnitStatus) (bool, error) {
	switch {
	case st.State == agentproto.StateActive:
		return true, nil
	case st.State == agentproto.StateFailed:
		return false, unitFailure(st, fmt.Sprintf("unit %s reached state %q", st.Name, agentproto.StateFailed))
	case st.State == agentproto.StateInactive && st.Job == "":
		return false, unitFailure(st, fmt.Sprintf("unit %s is inactive and has no pending start", st.Name))
	}
	return false, nil
}

// DescribeUnit says in a few words where a unit stands, for a message
// about a wait that has not ended yet.
func DescribeUnit(st agentproto.UnitStatus) string {
	s := st.State
	if st.SubState != "" {
		s += " (" + st.SubState + ")"
	}
	if st.Result != "" {
		s += ", last result: " + st.Result
	}
	if st.Restarts > 0 {
		s += fmt.Sprintf(", %d restarts", st.Restarts)
	}
	return s
}

// unitFailure is an ErrUnitFailed error: what happened, the unit's result
// and its last output lines, which usually say why.
func unitFailure(st agentproto.UnitStatus, what string) error {
	var b strings.Builder
	b.WriteString(what)
	if st.Result != "" {
		fmt.Fprintf(&b, " (%s", st.Result)
		if st.Restarts > 0 {
			fmt.Fprintf(&b, ", after %d restarts", st.Restarts)
		}
		b.WriteString(")")
	}
	out := st.Output
	if len(out) > unitOutputLines {
		out = out[len(out)-unitOutputLines:]
	}
	if len(out) > 0 {
		b.WriteString("; its last output:")
		for _, l := range out {
			fmt.Fprintf(&b, "\n  [%s] %s", st.Name, l)
		}
	} else {
		b.WriteString("; it printed nothing")
	}
	return &unitError{msg: b.String(), kinds: []error{ErrUnitFailed}}
}

// settle polls a supervised unit that was just started until it is no
// longer activating or waiting to start, as systemctl start waits for the
// unit's readiness too. A unit that then is neither active nor a one-shot
// that exited successfully is an ErrUnitFailed error.
func (u *Units) settle(ctx context.Context, st agentproto.UnitStatus) (agentproto.UnitStatus, error) {
	interval := settlePollStart
	for st.State == agentproto.StateActivating || st.State == agentproto.StateInactive && st.Job != "" {
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return st, fmt.Errorf("unit %s: %w; last seen: %s", st.Name, context.Cause(ctx), DescribeUnit(st))
		case <-t.C:
		}
		interval = min(interval*2, settlePollMax)
		var err error
		if st, err = u.Agent.Unit(ctx, agentproto.UnitStatusAction, st.Name); err != nil {
			return st, err
		}
	}
	if st.State != agentproto.StateActive && !(st.State == agentproto.StateInactive && st.ExitedOK) {
		return st, unitFailure(st, fmt.Sprintf("unit %s failed to start: it is %s", st.Name, st.State))
	}
	return st, nil
}

// unitName drops systemd's default suffix: "web.service" is "web".
func unitName(name string) string { return strings.TrimSuffix(name, ".service") }

// SystemdUnit is name as systemctl wants it: a name without a unit type
// suffix is a service ("web" is "web.service", "multi-user.target" stays).
func SystemdUnit(name string) string {
	switch filepath.Ext(name) {
	case ".service", ".socket", ".target", ".timer", ".path", ".mount", ".device", ".scope", ".slice", ".swap", ".automount":
		return name
	}
	return name + ".service"
}

// ShellQuote quotes s for a POSIX shell, as one word.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
