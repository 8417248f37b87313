package shakedown

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
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

// units answers for the machine's units through its agent, or its
// systemd when the agent supervises nothing (a full system, or a machine
// without services). Guest commands are bounded by ctx and logged as
// other commands are.
func (m *Machine) units() (*agentclient.Units, context.Context, error) {
	agent, run, err := m.session()
	if err != nil {
		return nil, nil, err
	}
	return &agentclient.Units{Agent: agent, Exec: func(ctx context.Context, cmd Command) (Result, error) {
		res, err := m.exec(cmd, time.Until(deadlineOf(ctx)))
		if err == nil {
			m.logResult(cmd.Cmd, res)
		}
		return res, err
	}}, run, nil
}

// unitStatus is the unit's status, or an error that says how to declare
// a unit on a machine that has none.
func (m *Machine) unitStatus(ctx context.Context, u *agentclient.Units, name string) (agentproto.UnitStatus, error) {
	st, err := u.Status(ctx, name)
	if errors.Is(err, ErrUnknownUnit) && errors.Is(err, agentclient.ErrNoServices) {
		err = fmt.Errorf("%w: declare it in MachineConfig.Services", err)
	}
	return st, err
}

// UnitState returns the unit's state as systemd's ActiveState: inactive,
// activating, active, deactivating or failed. An unknown unit fails the
// test.
func (m *Machine) UnitState(name string) string {
	m.t().Helper()
	state, err := m.UnitStateE(name)
	m.must(err)
	return state
}

// UnitStateE is UnitState returning its error, which wraps ErrUnknownUnit
// for a unit the machine does not have.
func (m *Machine) UnitStateE(name string) (string, error) {
	state, err := m.unitState(name)
	return state, m.wrap(err)
}

func (m *Machine) unitState(name string) (string, error) {
	u, run, err := m.units()
	if err != nil {
		return "", err
	}
	ctx, cancel := opContext(run, m.wait(), "state of unit "+name)
	defer cancel()
	st, err := m.unitStatus(ctx, u, name)
	if err != nil {
		return "", fmt.Errorf("unit %s: %w", name, err)
	}
	return st.State, nil
}

// WaitForUnit waits until the unit is active. As in the NixOS driver it
// fails at once, with the unit's last output lines, when the unit enters
// the failed state, or is inactive with no start pending (it exited, or
// was stopped); an unknown unit fails at once too.
func (m *Machine) WaitForUnit(name string) {
	m.t().Helper()
	m.must(m.WaitForUnitE(name))
}

// WaitForUnitE is WaitForUnit returning its error, which wraps
// ErrUnitFailed for a unit that failed (or ended inactive) and
// ErrUnknownUnit for a unit the machine does not have.
func (m *Machine) WaitForUnitE(name string) error {
	return m.wrap(m.waitForUnit(name))
}

func (m *Machine) waitForUnit(name string) error {
	return m.poll("unit "+name+" to be active", func(ctx context.Context) (bool, string, error) {
		// Asked each time: the machine may have rebooted meanwhile.
		u, _, err := m.units()
		if err != nil {
			return false, "", err
		}
		st, err := m.unitStatus(ctx, u, name)
		if err != nil {
			if errors.Is(err, ErrUnknownUnit) || errors.Is(err, ErrMachineDied) {
				return false, "", err
			}
			if ctx.Err() != nil {
				return false, "", nil
			}
			return false, err.Error(), nil
		}
		active, err := agentclient.UnitActive(st)
		return active, agentclient.DescribeUnit(st), err
	})
}

// Systemctl runs a systemctl command and returns its exit status and
// output, as the NixOS driver's systemctl does. On a machine whose agent
// supervises its Services it understands start, stop and restart (which
// wait until the unit is active, or has failed: status 1), is-active,
// is-failed, status and list-units, with systemctl's exit statuses (0,
// 3 for not active, 4 or 5 for an unknown unit); options such as
// --no-pager are ignored. On other machines it runs the guest's systemctl.
// See agentclient.Units.Systemctl.
func (m *Machine) Systemctl(args string) (int, string) {
	m.t().Helper()
	status, out, err := m.SystemctlE(args)
	m.must(err)
	return status, out
}

// SystemctlE is Systemctl returning its error: the machine could not
// answer, or (errors.ErrUnsupported) the verb is one that agent-supervised
// services do not have. A systemctl that fails is a status, not an error.
func (m *Machine) SystemctlE(args string) (int, string, error) {
	status, out, err := m.systemctl(args)
	return status, out, m.wrap(err)
}

func (m *Machine) systemctl(args string) (int, string, error) {
	u, run, err := m.units()
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := opContext(run, m.wait(), "systemctl "+args)
	defer cancel()
	return u.Systemctl(ctx, args)
}
