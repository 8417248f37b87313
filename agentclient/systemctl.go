package agentclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// systemctl's exit statuses, which follow the LSB's for init scripts.
const (
	exitOK = 0
	// exitFailed: a job failed, or too few arguments; for is-failed, no
	// unit is failed.
	exitFailed = 1
	// exitNotActive: status or is-active of a unit that is not active.
	exitNotActive = 3
	// exitNoSuchUnit: status of a unit that does not exist.
	exitNoSuchUnit = 4
	// exitNotInstalled: start, stop or restart of a unit that does not
	// exist.
	exitNotInstalled = 5
)

// systemctlVerbs are the verbs Systemctl understands for supervised
// services.
var systemctlVerbs = []string{"start", "stop", "restart", "is-active", "is-failed", "status", "show", "list-units"}

// Systemctl runs a systemctl command line (without "systemctl") and
// returns its exit status and output, as the NixOS driver's systemctl
// does. On a machine whose agent supervises services it answers itself:
// start and restart wait until the unit is active or has failed (status
// 1), stop until its process is gone; is-active, is-failed, status, show
// (systemd's property names, those it has) and list-units report; systemctl's exit statuses apply (3 for a unit not
// active, 4 or 5 for an unknown one) and options such as --no-pager are
// ignored. Another verb is an error matching errors.ErrUnsupported. On
// other machines it runs the guest's systemctl through Exec.
//
// An error means Systemctl could not answer (the agent went away, ctx
// ended): a unit that fails to start is status 1, not an error.
func (u *Units) Systemctl(ctx context.Context, args string) (int, string, error) {
	list, err := u.Agent.Unit(ctx, agentproto.UnitList, "")
	if errors.Is(err, ErrNoServices) {
		res, err := u.exec(ctx, "systemctl "+args)
		if err != nil {
			return 0, "", err
		}
		return res.Status, string(res.Stdout), nil
	}
	if err != nil {
		return 0, "", err
	}
	var verb string
	var units []string
	for _, f := range strings.Fields(args) {
		switch {
		case strings.HasPrefix(f, "-"):
		case verb == "":
			verb = f
		default:
			units = append(units, unitName(f))
		}
	}
	var out strings.Builder
	switch verb {
	case "list-units", "list", "":
		for _, name := range list.Units {
			st, err := u.Agent.Unit(ctx, agentproto.UnitStatusAction, name)
			if err != nil {
				return 0, "", err
			}
			fmt.Fprintf(&out, "%s.service loaded %s %s\n", name, st.State, st.SubState)
		}
		return exitOK, out.String(), nil
	case "start", "stop", "restart", "is-active", "is-failed", "status", "show":
	default:
		return exitFailed, "", fmt.Errorf("systemctl %s: %w for agent-supervised services (supported: %s)", verb, errors.ErrUnsupported, strings.Join(systemctlVerbs, ", "))
	}
	if len(units) == 0 {
		return exitFailed, "Too few arguments.\n", nil
	}
	status := exitOK
	anyFailed := false
	for _, name := range units {
		if !slices.Contains(list.Units, name) {
			switch verb {
			case "is-active", "is-failed":
				out.WriteString(agentproto.StateInactive + "\n")
				status = max(status, exitNotActive)
			case "status":
				fmt.Fprintf(&out, "Unit %s.service could not be found.\n", name)
				status = max(status, exitNoSuchUnit)
			case "show":
				fmt.Fprintf(&out, "Id=%s.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n\n", name)
			default:
				fmt.Fprintf(&out, "Failed to %s %s.service: Unit %s.service not found.\n", verb, name, name)
				status = max(status, exitNotInstalled)
			}
			continue
		}
		switch verb {
		case "stop":
			if _, err := u.Agent.Unit(ctx, agentproto.UnitStop, name); err != nil {
				return 0, "", err
			}
		case "start", "restart":
			action := agentproto.UnitStart
			if verb == "restart" {
				action = agentproto.UnitRestart
			}
			st, err := u.Agent.Unit(ctx, action, name)
			if err == nil {
				st, err = u.settle(ctx, st)
			}
			if errors.Is(err, ErrUnitFailed) {
				fmt.Fprintf(&out, "Job for %s.service failed: it is %s (%s).\nSee \"systemctl status %s.service\" for details.\n", name, st.State, st.Result, name)
				status = max(status, exitFailed)
			} else if err != nil {
				return 0, "", err
			}
		case "is-active", "is-failed", "status", "show":
			st, err := u.Agent.Unit(ctx, agentproto.UnitStatusAction, name)
			if err != nil {
				return 0, "", err
			}
			switch verb {
			case "is-active":
				out.WriteString(st.State + "\n")
				if st.State != agentproto.StateActive {
					status = max(status, exitNotActive)
				}
			case "is-failed":
				out.WriteString(st.State + "\n")
				anyFailed = anyFailed || st.State == agentproto.StateFailed
			case "show":
				fmt.Fprintf(&out, "Id=%s.service\nNames=%s.service\nLoadState=loaded\nActiveState=%s\nSubState=%s\nMainPID=%d\nNRestarts=%d\nResult=%s\nExecMainStartTimestamp=%s\n\n",
					st.Name, st.Name, st.State, st.SubState, st.PID, st.Restarts, cmp.Or(st.Result, "success"), time.UnixMilli(st.SinceMS).UTC().Format(time.RFC1123))
			case "status":
				writeUnitStatus(&out, st)
				switch st.State {
				case agentproto.StateActive, agentproto.StateActivating, agentproto.StateDeactivating:
				default:
					status = max(status, exitNotActive)
				}
			}
		}
	}
	if verb == "is-failed" {
		// is-failed succeeds when any of the units is failed.
		status = exitFailed
		if anyFailed {
			status = exitOK
		}
	}
	return status, out.String(), nil
}

// writeUnitStatus writes what systemctl status shows of a unit.
func writeUnitStatus(b *strings.Builder, st agentproto.UnitStatus) {
	fmt.Fprintf(b, "● %s.service\n", st.Name)
	fmt.Fprintf(b, "     Loaded: loaded (supervised by shakedown-agent)\n")
	since := time.UnixMilli(st.SinceMS).UTC().Format(time.DateTime)
	fmt.Fprintf(b, "     Active: %s (%s) since %s UTC", st.State, st.SubState, since)
	if st.Result != "" {
		fmt.Fprintf(b, "; last: %s", st.Result)
	}
	b.WriteString("\n")
	if st.PID > 0 {
		fmt.Fprintf(b, "   Main PID: %d\n", st.PID)
	}
	if st.Restarts > 0 {
		fmt.Fprintf(b, "   Restarts: %d\n", st.Restarts)
	}
	fmt.Fprintf(b, "    Command: %s\n", st.Command)
	if len(st.Output) > 0 {
		b.WriteString("\n")
		for _, l := range st.Output {
			fmt.Fprintf(b, "[%s] %s\n", st.Name, l)
		}
	}
}
