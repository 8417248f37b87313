package shakedown

import (
	"fmt"

	"github.com/shakedown-dev/shakedown/qemu"
)

// QMPEvent is an event of a machine's QEMU (QMPEventsE): its name, its
// data as JSON, and when QEMU sent it.
type QMPEvent = qemu.Event

// QMPE runs a QMP command on the machine's QEMU, for what the verbs do not
// cover; package screen's keys and the NixOS driver's send_monitor_command
// are built on it. result, if not nil, receives the command's return value
// as encoding/json decodes it. A stopped machine is started first.
func (m *Machine) QMPE(command string, args, result any) error {
	_, run, err := m.session()
	if err == nil {
		ctx, cancel := opContext(run, m.wait(), "QEMU's answer to "+command)
		defer cancel()
		err = m.current().Proc.QMP.Execute(ctx, command, args, result)
	}
	return m.wrap(err)
}

// QMPEventsE returns the events the machine's QEMU sends from now on,
// until stop, or until this boot ends (the channel closes then); a slow
// reader loses events rather than stall QEMU.
func (m *Machine) QMPEventsE() (events <-chan QMPEvent, stop func(), err error) {
	if _, _, err := m.session(); err != nil {
		return nil, nil, m.wrap(err)
	}
	events, stop = m.current().Proc.QMP.Subscribe()
	return events, stop, nil
}

// SendConsoleE writes s to the machine's serial console, as if typed at
// it (the NixOS driver's send_console); what the guest echoes shows in
// the console log.
func (m *Machine) SendConsoleE(s string) error {
	if _, _, err := m.session(); err != nil {
		return m.wrap(err)
	}
	if _, err := m.current().Proc.Console.Write([]byte(s)); err != nil {
		return m.wrap(fmt.Errorf("send to the console: %w", err))
	}
	return nil
}

// ConsoleLog returns what the machine's console printed since its current
// boot began, as WaitForConsoleText searches it.
func (m *Machine) ConsoleLog() string { return m.console.Text() }

// IsUp reports whether the machine runs and its agent answers.
func (m *Machine) IsUp() bool {
	v := m.current()
	return v != nil && v.Agent() != nil && v.Run().Err() == nil
}
