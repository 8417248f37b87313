package shakedown

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/shakedown-dev/shakedown/internal/poll"
)

// poll calls check until it reports done, returns an error, or the
// machine's timeout passes; then it says what it waited for, how long, and
// the last value check saw.
func (m *Machine) poll(what string, check func(ctx context.Context) (done bool, last string, err error)) (err error) {
	end := m.tb.rec.Begin(m.name, "wait for "+what, false)
	defer func() { end(err, "") }()
	_, run, err := m.session()
	if err != nil {
		return err
	}
	ctx, cancel := opContext(run, m.wait(), what)
	defer cancel()
	began := time.Now()
	last, err := poll.Until(ctx, check)
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil || errors.Is(err, ErrMachineDied) || errors.Is(err, ErrGlobalTimeout):
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	msg := fmt.Sprintf("waited %v for %s", time.Since(began).Round(time.Millisecond), what)
	if last != "" {
		msg += "; last seen: " + last
	}
	return fmt.Errorf("%w: %s", ErrTimeout, msg)
}

// WaitForFile waits until path exists in the guest.
func (m *Machine) WaitForFile(path string) {
	m.t().Helper()
	m.must(m.WaitForFileE(path))
}

// WaitForFileE is WaitForFile returning its error.
func (m *Machine) WaitForFileE(path string) error {
	err := m.poll("file "+path, func(ctx context.Context) (bool, string, error) {
		agent, _, err := m.session()
		if err != nil {
			return false, "", err
		}
		sc, err := agent.SFTP()
		if err != nil {
			return false, "", err
		}
		_, err = sc.Lstat(path)
		if err == nil {
			return true, "", nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return false, "does not exist", nil
		}
		return false, err.Error(), nil
	})
	return m.wrap(err)
}

// WaitForOpenPort waits until a TCP port accepts connections on the
// guest's loopback (or on addr, if given, as seen from inside the guest).
func (m *Machine) WaitForOpenPort(port int, addr ...string) {
	m.t().Helper()
	m.must(m.WaitForOpenPortE(port, addr...))
}

// WaitForOpenPortE is WaitForOpenPort returning its error.
func (m *Machine) WaitForOpenPortE(port int, addr ...string) error {
	return m.wrap(m.waitPort(port, addr, true))
}

// WaitForClosedPort waits until a TCP port refuses connections.
func (m *Machine) WaitForClosedPort(port int, addr ...string) {
	m.t().Helper()
	m.must(m.WaitForClosedPortE(port, addr...))
}

// WaitForClosedPortE is WaitForClosedPort returning its error.
func (m *Machine) WaitForClosedPortE(port int, addr ...string) error {
	return m.wrap(m.waitPort(port, addr, false))
}

func (m *Machine) waitPort(port int, addr []string, open bool) error {
	host := "127.0.0.1"
	if len(addr) > 0 {
		host = addr[0]
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	state := "open"
	if !open {
		state = "closed"
	}
	return m.poll(fmt.Sprintf("TCP port %s to be %s", target, state), func(ctx context.Context) (bool, string, error) {
		return m.dialCheck(ctx, "tcp", target, open)
	})
}

// WaitForOpenUnixSocket waits until a Unix socket in the guest accepts
// connections.
func (m *Machine) WaitForOpenUnixSocket(path string) {
	m.t().Helper()
	m.must(m.WaitForOpenUnixSocketE(path))
}

// WaitForOpenUnixSocketE is WaitForOpenUnixSocket returning its error.
func (m *Machine) WaitForOpenUnixSocketE(path string) error {
	return m.wrap(m.poll("unix socket "+path, func(ctx context.Context) (bool, string, error) {
		return m.dialCheck(ctx, "unix", path, true)
	}))
}

// dialCheck connects from inside the guest through the agent; no program
// (nc, socat) needs to be in the image.
func (m *Machine) dialCheck(ctx context.Context, network, addr string, wantOpen bool) (bool, string, error) {
	agent, _, err := m.session()
	if err != nil {
		return false, "", err
	}
	c, err := agent.DialGuest(ctx, network, addr)
	if err != nil {
		if ctx.Err() != nil {
			return false, "", nil
		}
		return !wantOpen, "refused: " + err.Error(), nil
	}
	c.Close()
	return wantOpen, "open", nil
}

// WaitForConsoleText waits until the serial console of the current boot
// shows a match for the regular expression and returns the match.
func (m *Machine) WaitForConsoleText(pattern string) string {
	m.t().Helper()
	match, err := m.WaitForConsoleTextE(pattern)
	m.must(err)
	return match
}

// WaitForConsoleTextE is WaitForConsoleText returning its error.
func (m *Machine) WaitForConsoleTextE(pattern string) (string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", m.wrap(fmt.Errorf("%w: console pattern: %w", ErrInvalid, err))
	}
	v := m.current()
	if v == nil {
		return "", m.wrap(fmt.Errorf("wait for console text: %w: it was never started", ErrNotRunning))
	}
	ctx, cancel := opContext(v.Run(), m.wait(), fmt.Sprintf("console text %q", pattern))
	defer cancel()
	match, err := m.console.Wait(ctx, re)
	if err != nil {
		return "", m.wrap(context.Cause(ctx))
	}
	return match, nil
}
