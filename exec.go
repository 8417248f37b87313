package shakedown

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
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
	return m.exec(cmd, m.wait())
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
		settle(ctx)
		if c := cause(ctx); c != nil {
			err = fmt.Errorf("command %q: %w", cmd.Cmd, c)
			if errors.Is(c, context.DeadlineExceeded) || strings.HasPrefix(c.Error(), "timed out") {
				err = fmt.Errorf("command %q killed: %w%s", cmd.Cmd, c, partial(res))
			}
		}
		return res, err
	}
	return res, nil
}

// partial renders what a killed command had printed.
func partial(res Result) string {
	var b strings.Builder
	if len(res.Stdout) > 0 {
		fmt.Fprintf(&b, "\npartial stdout:\n%s", indent(strings.Split(strings.TrimRight(string(res.Stdout), "\n"), "\n"), "  "))
	}
	if len(res.Stderr) > 0 {
		fmt.Fprintf(&b, "\npartial stderr:\n%s", indent(strings.Split(strings.TrimRight(string(res.Stderr), "\n"), "\n"), "  "))
	}
	return b.String()
}

// Execute runs a shell command and returns its exit status and stdout, as
// the NixOS driver's execute does; stderr goes to the test log. A non-zero
// status is not a failure; a command that outlives the machine's timeout,
// or a machine that dies, is.
func (m *Machine) Execute(cmd string) (int, string) {
	m.t().Helper()
	res, err := m.Exec(Command{Cmd: cmd})
	if err != nil {
		m.fatal(err)
	}
	m.logResult(cmd, res)
	return res.Status, string(res.Stdout)
}

func (m *Machine) logResult(cmd string, res Result) {
	if len(res.Stderr) > 0 {
		m.tb.logf("%s: %q: stderr:\n%s", m.name, cmd, indent(strings.Split(strings.TrimRight(string(res.Stderr), "\n"), "\n"), "  "))
	}
}

// Succeed runs a shell command and returns its stdout; a non-zero exit
// status fails the test with the command's output.
func (m *Machine) Succeed(cmd string) string {
	m.t().Helper()
	out, err := m.succeed(cmd)
	if err != nil {
		m.fatal(err)
	}
	return out
}

func (m *Machine) succeed(cmd string) (string, error) {
	res, err := m.Exec(Command{Cmd: cmd})
	if err != nil {
		return "", err
	}
	m.logResult(cmd, res)
	if res.Status != 0 {
		return "", fmt.Errorf("command %q failed with status %d%s", cmd, res.Status, outputs(res))
	}
	return string(res.Stdout), nil
}

// Fail runs a shell command that must fail and returns its stdout; an exit
// status of zero fails the test.
func (m *Machine) Fail(cmd string) string {
	m.t().Helper()
	res, err := m.Exec(Command{Cmd: cmd})
	if err != nil {
		m.fatal(err)
	}
	m.logResult(cmd, res)
	if res.Status == 0 {
		m.fatal(fmt.Errorf("command %q succeeded, want failure%s", cmd, outputs(res)))
	}
	return string(res.Stdout)
}

func outputs(res Result) string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		out  []byte
	}{{"stdout", res.Stdout}, {"stderr", res.Stderr}} {
		if len(s.out) > 0 {
			fmt.Fprintf(&b, "\n%s:\n%s", s.name, indent(strings.Split(strings.TrimRight(string(s.out), "\n"), "\n"), "  "))
		}
	}
	return b.String()
}

// WaitUntilSucceeds runs cmd until it exits with status 0 and returns its
// stdout; it fails the test when the machine's timeout passes first, with
// the last status and output.
func (m *Machine) WaitUntilSucceeds(cmd string) string {
	m.t().Helper()
	out, err := m.waitUntil(cmd, true)
	if err != nil {
		m.fatal(err)
	}
	return out
}

// WaitUntilFails runs cmd until it exits with a non-zero status and
// returns its stdout.
func (m *Machine) WaitUntilFails(cmd string) string {
	m.t().Helper()
	out, err := m.waitUntil(cmd, false)
	if err != nil {
		m.fatal(err)
	}
	return out
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
		return (res.Status == 0) == success, fmt.Sprintf("status %d%s", res.Status, outputs(res)), nil
	})
	return string(last.Stdout), err
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(DefaultWait)
}
