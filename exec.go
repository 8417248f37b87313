package shakedown

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/internal/eventlog"
	"github.com/shakedown-dev/shakedown/internal/vm"
)

// Command is a command with everything a shell line cannot say: its own
// environment, directory and input. Exec runs it.
type Command = agentclient.Command

// Result is what Exec returns: exit status, signal, stdout and stderr.
type Result = agentclient.Result

// Exec runs cmd in the machine and returns its result, or an error if it
// could not run to the end: the deadline passed (the command was killed in
// the guest; the partial output is in the Result) or the machine died.
// It does not fail the test: it is the building block for callers that
// branch on errors. The other verbs fail the test.
func (m *Machine) Exec(cmd Command) (Result, error) {
	end := m.tb.rec.Begin(m.name, cmd.Cmd, false)
	res, err := m.exec(cmd, m.wait())
	end(err, fmt.Sprintf("exit status %d", res.Status))
	return res, m.wrap(err)
}

func (m *Machine) exec(cmd Command, d time.Duration) (Result, error) {
	agent, run, err := m.session()
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := opContext(run, d, fmt.Sprintf("command %q", cmd.Cmd))
	defer cancel()
	res, err := agent.Exec(ctx, cmd)
	if err != nil {
		vm.Settle(ctx)
		if c := context.Cause(ctx); c != nil {
			err = fmt.Errorf("command %q: %w", cmd.Cmd, c)
			if errors.Is(c, ErrTimeout) || errors.Is(c, ErrGlobalTimeout) {
				err = fmt.Errorf("command %q killed: %w%s", cmd.Cmd, c, res.Outputs("partial "))
			}
		}
		return res, err
	}
	return res, nil
}

// Execute runs a shell command and returns its exit status and stdout, as
// the NixOS driver's execute does; stderr goes to the test log. A non-zero
// status is not a failure; a command that outlives the machine's timeout,
// or a machine that dies, is.
func (m *Machine) Execute(cmd string) (int, string) {
	m.t().Helper()
	status, out, err := m.ExecuteE(cmd)
	m.must(err)
	return status, out
}

// ExecuteE is Execute returning its error.
func (m *Machine) ExecuteE(cmd string) (int, string, error) {
	res, err := m.Exec(Command{Cmd: cmd})
	if err != nil {
		return 0, "", err
	}
	m.logResult(cmd, res)
	return res.Status, string(res.Stdout), nil
}

func (m *Machine) logResult(cmd string, res Result) {
	if len(res.Stderr) > 0 {
		m.tb.logf("%s: %q: stderr:\n%s", m.name, cmd, eventlog.Indent(string(res.Stderr), "  "))
	}
}

// Succeed runs a shell command and returns its stdout; a non-zero exit
// status fails the test with the command's output.
func (m *Machine) Succeed(cmd string) string {
	m.t().Helper()
	out, err := m.SucceedE(cmd)
	m.must(err)
	return out
}

// SucceedE is Succeed returning its error, which wraps ErrCommandFailed
// for a non-zero status.
func (m *Machine) SucceedE(cmd string) (string, error) {
	res, err := m.Exec(Command{Cmd: cmd})
	if err != nil {
		return "", err
	}
	m.logResult(cmd, res)
	if res.Status != 0 {
		return "", m.wrap(&CommandError{Cmd: cmd, Result: res, WantSuccess: true})
	}
	return string(res.Stdout), nil
}

// Fail runs a shell command that must fail and returns its stdout; an exit
// status of zero fails the test.
func (m *Machine) Fail(cmd string) string {
	m.t().Helper()
	out, err := m.FailE(cmd)
	m.must(err)
	return out
}

// FailE is Fail returning its error, which wraps ErrCommandSucceeded for
// a status of zero.
func (m *Machine) FailE(cmd string) (string, error) {
	res, err := m.Exec(Command{Cmd: cmd})
	if err != nil {
		return "", err
	}
	m.logResult(cmd, res)
	if res.Status == 0 {
		return "", m.wrap(&CommandError{Cmd: cmd, Result: res})
	}
	return string(res.Stdout), nil
}

// CommandError is the error of Succeed and Fail when the command's status
// is not the one wanted: errors.Is matches ErrCommandFailed or
// ErrCommandSucceeded, and errors.As gives the command and its result.
type CommandError struct {
	Cmd    string
	Result Result
	// WantSuccess is set for Succeed, which wanted status 0.
	WantSuccess bool
}

func (e *CommandError) Error() string {
	if e.WantSuccess {
		return fmt.Sprintf("command %q failed with status %d%s", e.Cmd, e.Result.Status, e.Result.Outputs(""))
	}
	return fmt.Sprintf("command %q succeeded, want failure%s", e.Cmd, e.Result.Outputs(""))
}

// Is matches ErrCommandFailed or ErrCommandSucceeded, as the case is.
func (e *CommandError) Is(target error) bool {
	if e.WantSuccess {
		return target == ErrCommandFailed
	}
	return target == ErrCommandSucceeded
}

// WaitUntilSucceeds runs cmd until it exits with status 0 and returns its
// stdout; it fails the test when the machine's timeout passes first, with
// the last status and output.
func (m *Machine) WaitUntilSucceeds(cmd string) string {
	m.t().Helper()
	out, err := m.WaitUntilSucceedsE(cmd)
	m.must(err)
	return out
}

// WaitUntilSucceedsE is WaitUntilSucceeds returning its error.
func (m *Machine) WaitUntilSucceedsE(cmd string) (string, error) {
	out, err := m.waitUntil(cmd, true)
	return out, m.wrap(err)
}

// WaitUntilFails runs cmd until it exits with a non-zero status and
// returns its stdout.
func (m *Machine) WaitUntilFails(cmd string) string {
	m.t().Helper()
	out, err := m.WaitUntilFailsE(cmd)
	m.must(err)
	return out
}

// WaitUntilFailsE is WaitUntilFails returning its error.
func (m *Machine) WaitUntilFailsE(cmd string) (string, error) {
	out, err := m.waitUntil(cmd, false)
	return out, m.wrap(err)
}

func (m *Machine) waitUntil(cmd string, success bool) (string, error) {
	want := "succeed"
	if !success {
		want = "fail"
	}
	var last Result
	err := m.poll(fmt.Sprintf("%q to %s", cmd, want), func(ctx context.Context) (bool, string, error) {
		left := time.Until(deadlineOf(ctx))
		res, err := m.exec(Command{Cmd: cmd}, left)
		if err != nil {
			if errors.Is(err, ErrMachineDied) {
				return false, "", err
			}
			return false, err.Error(), nil
		}
		last = res
		return (res.Status == 0) == success, fmt.Sprintf("status %d%s", res.Status, res.Outputs("")), nil
	})
	return string(last.Stdout), err
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(DefaultWait)
}
