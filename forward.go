package shakedown

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
)

// ForwardPort makes a TCP port of the guest reachable on the host's
// loopback, and returns the host address (127.0.0.1 and a free port). Each
// connection is carried by the agent, so it needs no network in the guest
// and no route from the host; it follows the machine across reboots. The
// listener closes when the testbed ends.
func (m *Machine) ForwardPort(guestPort int) string {
	m.t().Helper()
	addr, err := m.forwardPort(guestPort)
	if err != nil {
		m.fatal(fmt.Errorf("forward port %d: %w", guestPort, err))
	}
	return addr
}

func (m *Machine) forwardPort(guestPort int) (string, error) {
	if guestPort <= 0 || guestPort > 65535 {
		return "", fmt.Errorf("port %d out of range", guestPort)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(guestPort))
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				m.relay(c, target)
			}()
		}
	}()
	m.tb.onClose(func() {
		ln.Close()
		<-done
		conns.Wait()
	})
	return ln.Addr().String(), nil
}

// relay joins a host connection to target in the guest; a guest that is
// down or refuses closes the host side at once.
func (m *Machine) relay(c net.Conn, target string) {
	defer c.Close()
	agent, run, err := m.session()
	if err != nil {
		return
	}
	g, err := agent.DialGuest(run, "tcp", target)
	if err != nil {
		return
	}
	defer g.Close()
	stop := make(chan struct{})
	go func() {
		select {
		case <-run.Done():
		case <-stop:
		}
		c.Close()
		g.Close()
	}()
	defer close(stop)
	done := make(chan struct{}, 2)
	go func() { io.Copy(g, c); closeWrite(g); done <- struct{}{} }()
	go func() { io.Copy(c, g); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
