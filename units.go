package shakedown

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// Service is a long-running program that the agent of an initramfs
// machine supervises, as systemd would a unit: it starts after boot in
// dependency order, restarts as its policy says (with a backoff from
// 100 ms, failing after 5 starts in 10 s), writes its output to the
// machine's console (and so to its log) with a "[Name] " prefix, and has
// systemd's states: inactive, activating (started, not yet ready), active,
// deactivating and failed. WaitForUnit, UnitState and Systemctl see it by
// Name.
type Service struct {
	// Name identifies the unit; a ".service" suffix in verbs is ignored.
	Name string
	// Command is run by /bin/sh -c, in /, with stdin from /dev/null.
	Command string
	// Env adds to the agent's environment (PATH, HOME, ...).
	Env map[string]string
	// After names services that must be active (or, for one that runs
	// to completion, have exited with status 0) before this one starts.
	// A failed dependency fails this service. Starting a service starts
	// what it needs.
	After []string
	// Restart is "no" (or ""), "on-failure" (a non-zero status or a
	// signal) or "always".
	Restart string
	// Ready says when the service counts as active; the zero value means
	// as soon as it is started (systemd's Type=simple).
	Ready Readiness
}

// Readiness is a service's check that it is up; every check set must pass.
type Readiness struct {
	// Port is a TCP port on the guest's loopback that must accept.
	Port int
	// File is a guest path that must exist.
	File string
	// Command is a shell command that must exit 0.
	Command string
	// Timeout bounds activation; the service is stopped and fails when it
	// passes. 0 means 90 s, systemd's default.
	Timeout time.Duration
}

func agentServices(svcs []Service) []agentproto.Service {
	var out []agentproto.Service
	for _, s := range svcs {
		out = append(out, agentproto.Service{
			Name: s.Name, Command: s.Command, Env: s.Env, After: s.After, Restart: s.Restart,
			Ready: agentproto.Readiness{Port: s.Ready.Port, File: s.Ready.File, Command: s.Ready.Command,
				TimeoutMS: s.Ready.Timeout.Milliseconds()},
		})
	}
	return out
}

// checkServices rejects what the agent would: unknown dependencies,
// cycles, duplicate names, bad policies. It runs when the machine is
// declared, so a mistake fails there and not at boot.
func checkServices(cfg MachineConfig) error {
	if len(cfg.Services) == 0 {
		return nil
	}
	if cfg.Initrd != "" {
		return errors.New("services need shakedown's initramfs, whose agent supervises them; with MachineConfig.Initrd set, the image's own init runs them")
	}
	_, err := agentproto.ValidateServices(agentServices(cfg.Services))
	return err
}

// servicesFile is the initramfs file that tells the agent its services.
func servicesFile(svcs []Service) ([]initramfs.File, error) {
	if len(svcs) == 0 {
		return nil, nil
	}
	b, err := json.MarshalIndent(agentServices(svcs), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return []initramfs.File{{Guest: agentproto.ServicesFile, Data: b, Mode: 0o644}}, nil
}

// unitName drops systemd's default suffix: "web.service" is "web".
func unitName(name string) string { return strings.TrimSuffix(name, ".service") }

// systemdUnit is name as systemctl wants it: a name without a unit type
// suffix is a service ("web" is "web.service", "multi-user.target" stays).
func systemdUnit(name string) string {
	switch filepath.Ext(name) {
	case ".service", ".socket", ".target", ".timer", ".path", ".mount", ".device", ".scope", ".slice", ".swap", ".automount":
		return name
	}
	return name + ".service"
}

// errUnknownUnit marks a unit the machine does not have.
var errUnknownUnit = errors.New("unknown unit")

// unitStatus asks the agent for a unit's status, or the guest's systemd
// when the agent supervises nothing (a full system, or a machine without
// services).
func (m *Machine) unitStatus(ctx context.Context, name string) (agentproto.UnitStatus, error) {
	return m.unitAction(ctx, agentproto.UnitStatusAction, name)
}

func (m *Machine) unitAction(ctx context.Context, action, name string) (agentproto.UnitStatus, error) {
	agent, _, err := m.session()
	if err != nil {
		return agentproto.UnitStatus{}, err
	}
	name = unitName(name)
	st, err := agent.Unit(ctx, action, name)
	if errors.Is(err, agentclient.ErrNoServices) {
		return m.systemdStatus(ctx, action, name)
	}
	if err != nil && st.Error != "" && strings.Contains(st.Error, "not found") {
		return st, fmt.Errorf("%w: %s", errUnknownUnit, st.Error)
	}
	return st, err
}

// systemdStatus does a unit action through the guest's systemctl.
func (m *Machine) systemdStatus(ctx context.Context, action, name string) (agentproto.UnitStatus, error) {
	st := agentproto.UnitStatus{Name: name}
	left := time.Until(deadlineOf(ctx))
	if action != agentproto.UnitStatusAction {
		res, err := m.exec(Command{Cmd: fmt.Sprintf("systemctl %s %s", action, shellQuote(name))}, left)
		if err != nil {
			return st, err
		}
		if res.Status == 127 {
			return st, noServiceManager(name)
		}
	}
	res, err := m.exec(Command{Cmd: "systemctl show --property=LoadState,ActiveState,SubState,Result,MainPID,NRestarts,ExecMainStatus " + shellQuote(systemdUnit(name))}, left)
	if err != nil {
		return st, err
	}
	if res.Status == 127 {
		return st, noServiceManager(name)
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	if props["LoadState"] == "not-found" {
		return st, fmt.Errorf("%w: unit %s not found by systemd", errUnknownUnit, name)
	}
	st.State, st.SubState = props["ActiveState"], props["SubState"]
	fmt.Sscan(props["MainPID"], &st.PID)
	fmt.Sscan(props["NRestarts"], &st.Restarts)
	if r := props["Result"]; r != "" && r != "success" {
		st.Result = r + ", exit status " + props["ExecMainStatus"]
	}
	if st.State == "inactive" {
		// As the NixOS driver does: an inactive unit may still have a
		// start job queued.
		jobs, err := m.exec(Command{Cmd: "systemctl list-jobs --full --no-legend " + shellQuote(systemdUnit(name))}, left)
		if err == nil && strings.TrimSpace(string(jobs.Stdout)) != "" {
			st.Job = "start"
		}
	}
	if st.State == "failed" {
		logs, err := m.exec(Command{Cmd: fmt.Sprintf("journalctl --no-pager -o cat -n %d -u %s", unitOutputLines, shellQuote(systemdUnit(name)))}, left)
		if err == nil {
			st.Output = strings.Split(strings.TrimRight(string(logs.Stdout), "\n"), "\n")
		}
	}
	return st, nil
}

func noServiceManager(name string) error {
	return fmt.Errorf("%w: %s: the machine has no supervised services and no systemctl: declare it in MachineConfig.Services", errUnknownUnit, name)
}

// unitOutputLines is how many of a failed unit's last output lines a
// failure message shows.
const unitOutputLines = 15

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// UnitState returns the unit's state as systemd's ActiveState: inactive,
// activating, active, deactivating or failed. An unknown unit fails the
// test.
func (m *Machine) UnitState(name string) string {
	m.t().Helper()
	_, run, err := m.session()
	if err != nil {
		m.fatal(err)
	}
	ctx, cancel := opContext(run, m.wait(), "state of unit "+name)
	defer cancel()
	st, err := m.unitStatus(ctx, name)
	if err != nil {
		m.fatal(fmt.Errorf("unit %s: %w", name, err))
	}
	return st.State
}

// WaitForUnit waits until the unit is active. As in the NixOS driver it
// fails at once, with the unit's last output lines, when the unit enters
// the failed state, or is inactive with no start pending (it exited, or
// was stopped); an unknown unit fails at once too.
func (m *Machine) WaitForUnit(name string) {
	m.t().Helper()
	if err := m.waitForUnit(name); err != nil {
		m.fatal(err)
	}
}

func (m *Machine) waitForUnit(name string) error {
	return m.poll("unit "+name+" to be active", func(ctx context.Context) (bool, string, error) {
		st, err := m.unitStatus(ctx, name)
		if err != nil {
			if errors.Is(err, errUnknownUnit) || errors.Is(err, ErrMachineDied) {
				return false, "", err
			}
			if ctx.Err() != nil {
				return false, "", nil
			}
			return false, err.Error(), nil
		}
		switch {
		case st.State == "active":
			return true, "", nil
		case st.State == "failed":
			return false, "", unitFailure(st, fmt.Sprintf("unit %s reached state \"failed\"", name))
		case st.State == "inactive" && st.Job == "":
			return false, "", unitFailure(st, fmt.Sprintf("unit %s is inactive and has no pending start", name))
		}
		return false, describeUnit(st), nil
	})
}

func describeUnit(st agentproto.UnitStatus) string {
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
		fmt.Fprintf(&b, "; its last output:\n%s", indent(out, "  ["+st.Name+"] "))
	} else {
		b.WriteString("; it printed nothing")
	}
	return errors.New(b.String())
}

// Systemctl runs a systemctl command and returns its exit status and
// output, as the NixOS driver's systemctl does. On a machine whose agent
// supervises its Services it understands start, stop and restart (which
// wait until the unit is active, or has failed: status 1), is-active,
// is-failed, status and list-units, with systemctl's exit statuses (0,
// 3 for not active, 4 or 5 for an unknown unit); options such as
// --no-pager are ignored. On other machines it runs the guest's systemctl.
func (m *Machine) Systemctl(args string) (int, string) {
	m.t().Helper()
	status, out, err := m.systemctl(args)
	if err != nil {
		m.fatal(err)
	}
	return status, out
}

func (m *Machine) systemctl(args string) (int, string, error) {
	agent, run, err := m.session()
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := opContext(run, m.wait(), "systemctl "+args)
	defer cancel()
	list, err := agent.Unit(ctx, agentproto.UnitList, "")
	if errors.Is(err, agentclient.ErrNoServices) {
		res, err := m.exec(Command{Cmd: "systemctl " + args}, m.wait())
		if err != nil {
			return 0, "", err
		}
		m.logResult("systemctl "+args, res)
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
	status := 0
	known := map[string]bool{}
	for _, u := range list.Units {
		known[u] = true
	}
	switch verb {
	case "list-units", "list", "":
		for _, u := range list.Units {
			st, err := agent.Unit(ctx, agentproto.UnitStatusAction, u)
			if err != nil {
				return 0, "", err
			}
			fmt.Fprintf(&out, "%s.service %s %s %s\n", u, "loaded", st.State, st.SubState)
		}
		return 0, out.String(), nil
	case "start", "stop", "restart", "is-active", "is-failed", "status":
	default:
		return 1, "", fmt.Errorf("systemctl %s: not supported for agent-supervised services (start, stop, restart, is-active, is-failed, status, list-units)", verb)
	}
	if len(units) == 0 {
		return 1, "Too few arguments.\n", nil
	}
	anyFailed := false
	for _, u := range units {
		if !known[u] {
			switch verb {
			case "is-active", "is-failed":
				out.WriteString("inactive\n")
				status = max(status, 3)
			case "status":
				fmt.Fprintf(&out, "Unit %s.service could not be found.\n", u)
				status = max(status, 4)
			default:
				fmt.Fprintf(&out, "Failed to %s %s.service: Unit %s.service not found.\n", verb, u, u)
				status = max(status, 5)
			}
			continue
		}
		switch verb {
		case "start", "restart", "stop":
			action := map[string]string{"start": agentproto.UnitStart, "stop": agentproto.UnitStop, "restart": agentproto.UnitRestart}[verb]
			st, err := agent.Unit(ctx, action, u)
			if err != nil {
				return 0, "", err
			}
			if verb == "stop" {
				continue
			}
			st, err = m.settleUnit(ctx, u, st)
			if err != nil {
				return 0, "", err
			}
			if st.State != "active" && !(st.State == "inactive" && st.Result == "exit status 0") {
				fmt.Fprintf(&out, "Job for %s.service failed: it is %s (%s).\nSee \"systemctl status %s.service\" for details.\n", u, st.State, st.Result, u)
				status = max(status, 1)
			}
		case "is-active", "is-failed", "status":
			st, err := agent.Unit(ctx, agentproto.UnitStatusAction, u)
			if err != nil {
				return 0, "", err
			}
			switch verb {
			case "is-active":
				out.WriteString(st.State + "\n")
				if st.State != "active" {
					status = max(status, 3)
				}
			case "is-failed":
				out.WriteString(st.State + "\n")
				anyFailed = anyFailed || st.State == "failed"
			case "status":
				writeUnitStatus(&out, st)
				if st.State != "active" && st.State != "activating" && st.State != "deactivating" {
					status = max(status, 3)
				}
			}
		}
	}
	if verb == "is-failed" && !anyFailed {
		status = 1
	}
	return status, out.String(), nil
}

// settleUnit polls a unit that was just started until it is no longer
// activating: systemctl start waits for the unit's readiness too.
func (m *Machine) settleUnit(ctx context.Context, name string, st agentproto.UnitStatus) (agentproto.UnitStatus, error) {
	agent, _, err := m.session()
	if err != nil {
		return st, err
	}
	interval := pollStart
	for st.State == "activating" || st.State == "inactive" && st.Job != "" {
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("unit %s: %w; last seen: %s", name, cause(ctx), describeUnit(st))
		case <-time.After(interval):
		}
		interval = min(interval*2, pollMax)
		if st, err = agent.Unit(ctx, agentproto.UnitStatusAction, name); err != nil {
			return st, err
		}
	}
	return st, nil
}

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
