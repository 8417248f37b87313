package shakedown

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/internal/eventlog"
	"github.com/shakedown-dev/shakedown/qemu"
)

// Sentinel errors. The E form of every verb returns an error that wraps
// the one that fits, so that callers (front ends, tests that expect a
// failure) branch with errors.Is; the message says the rest.
var (
	// ErrTimeout: a verb's own deadline passed (DefaultWait, or
	// Machine.WithTimeout) before what it waited for happened.
	ErrTimeout = errors.New("timed out")
	// ErrGlobalTimeout is the cause of every failure after the testbed's
	// global deadline has passed.
	ErrGlobalTimeout = errors.New("global timeout")
	// ErrMachineDied: the machine went away without being asked to: a
	// kernel panic, a guest power-off, QEMU dying.
	ErrMachineDied = errors.New("machine died")
	// ErrKernelPanic is wrapped beside ErrMachineDied when the console
	// shows that the guest kernel panicked.
	ErrKernelPanic = errors.New("kernel panic")
	// ErrCommandFailed: a command that had to succeed exited non-zero.
	ErrCommandFailed = errors.New("command failed")
	// ErrCommandSucceeded: a command that had to fail (Fail) exited 0.
	ErrCommandSucceeded = errors.New("command succeeded")
	// ErrNotRunning: the verb needs a running machine and the machine is
	// not running (never started, or stopped and not restarted).
	ErrNotRunning = errors.New("machine not running")
	// ErrTestbedEnded: the testbed's test has ended; nothing more runs.
	ErrTestbedEnded = errors.New("the testbed has ended")
	// ErrInvalid: an argument is out of range or malformed (an
	// impairment's loss over 100 %, an unknown network); the message
	// names it and the fix.
	ErrInvalid = errors.New("invalid argument")
	// ErrAddressInUse: a host asked for at a machine's or host's address.
	ErrAddressInUse = errors.New("address in use")
	// ErrUnknownUnit: a unit verb named a unit the machine does not
	// have: neither its agent nor its systemd knows it.
	ErrUnknownUnit = agentclient.ErrUnknownUnit
	// ErrUnitFailed: WaitForUnit's unit failed, or ended inactive with no
	// start pending; the message has the unit's result and last output.
	ErrUnitFailed = agentclient.ErrUnitFailed
	// ErrNoQEMU: qemu-system-x86_64 is not installed; the message names
	// the package. Only starting a machine needs QEMU.
	ErrNoQEMU = qemu.ErrNoQEMU
)

// MachineError is the error of a verb of a machine: which machine, what
// went wrong (Err, which wraps the sentinel), and the machine's last
// console lines when it happened, which often say why (a panic, a
// service's last words).
type MachineError struct {
	Machine string
	Err     error
	// Console holds the last console lines (at most 20) when the verb
	// failed.
	Console []string
}

func (e *MachineError) Error() string { return e.Machine + ": " + e.Err.Error() }

func (e *MachineError) Unwrap() error { return e.Err }

// Report is Error followed by ConsoleText, as a failing verb prints it.
func (e *MachineError) Report() string { return e.Error() + e.ConsoleText() }

// ConsoleText renders Console on lines of their own, after a newline.
func (e *MachineError) ConsoleText() string {
	if len(e.Console) == 0 {
		return "\n(no console output)"
	}
	return fmt.Sprintf("\nlast console lines of %s:\n%s", e.Machine, eventlog.Indent(strings.Join(e.Console, "\n"), "  "+e.Machine+" # "))
}

// report renders err for a test failure: each machine's error with its
// console lines, every error of a join.
func report(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var parts []string
		for _, e := range j.Unwrap() {
			parts = append(parts, report(e))
		}
		return strings.Join(parts, "\n")
	}
	var me *MachineError
	if errors.As(err, &me) {
		return err.Error() + me.ConsoleText()
	}
	return err.Error()
}

// errSubtestStopped marks a Subtest whose function did not return: a
// verb failed inside it and ended the test.
var errSubtestStopped = errors.New("stopped: the test failed inside")

// consoleTailLines is how much console goes into a failure: enough for a
// panic and its call trace's head.
const consoleTailLines = 20

// wrap makes err a *MachineError of this machine, with the console tail
// of the moment; nil stays nil, and an error of this machine stays as it
// is.
func (m *machine) wrap(err error) error {
	if err == nil {
		return nil
	}
	var me *MachineError
	if errors.As(err, &me) && me.Machine == m.name {
		return err
	}
	m.tb.rec.Fail(m.name, err.Error())
	return &MachineError{Machine: m.name, Err: err, Console: m.console.Tail(consoleTailLines)}
}

// must fails the handle's test with err, if any, as report renders it.
// Every failing verb is its E form followed by must.
func (m *Machine) must(err error) {
	if err != nil {
		m.t().Helper()
		m.t().Fatalf("%s", report(err))
	}
}

// must fails the testbed's test with err, if any, as report renders it.
func (tb *Testbed) must(err error) {
	if err != nil {
		tb.t.Helper()
		if !errors.As(err, new(*MachineError)) {
			tb.rec.Fail("", err.Error())
		}
		tb.t.Fatalf("%s", report(err))
	}
}
