package shakedown

import (
	"fmt"
	"net"
	"strconv"

	"github.com/shakedown-dev/shakedown/agentclient"
)

// ForwardPort makes a TCP port of the guest reachable on the host's
// loopback, and returns the host address (127.0.0.1 and a free port). Each
// connection is carried by the agent, so it needs no network in the guest
// and no route from the host; it follows the machine across reboots. The
// listener closes when the testbed ends.
func (m *Machine) ForwardPort(guestPort int) string {
	m.t().Helper()
	addr, err := m.ForwardPortE(guestPort)
	m.must(err)
	return addr
}

// ForwardPortE is ForwardPort returning its error.
func (m *Machine) ForwardPortE(guestPort int) (string, error) {
	addr, err := m.forwardPort(guestPort)
	if err != nil {
		return "", m.wrap(fmt.Errorf("forward port %d: %w", guestPort, err))
	}
	return addr, nil
}

func (m *Machine) forwardPort(guestPort int) (string, error) {
	if guestPort <= 0 || guestPort > 65535 {
		return "", fmt.Errorf("%w: port %d out of range 1-65535", ErrInvalid, guestPort)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(guestPort))
	m.tb.onClose(agentclient.Forward(ln, func(c net.Conn) { m.relay(c, target) }))
	return ln.Addr().String(), nil
}

// relay joins a host connection to target in the guest, through the
// current boot's agent; a guest that is down or refuses closes it at once.
func (m *Machine) relay(c net.Conn, target string) {
	agent, run, err := m.session()
	if err != nil {
		c.Close()
		return
	}
	agent.Relay(run, c, target)
}
