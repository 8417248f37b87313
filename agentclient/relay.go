package agentclient

import (
	"context"
	"io"
	"net"
	"sync"
)

// Relay joins c, a host connection, to TCP address target inside the
// guest, both ways, until both directions end or ctx does; then it closes
// c. A guest that refuses closes c at once.
func (cl *Client) Relay(ctx context.Context, c net.Conn, target string) {
	defer c.Close()
	g, err := cl.DialGuest(ctx, "tcp", target)
	if err != nil {
		return
	}
	defer g.Close()
	stop := context.AfterFunc(ctx, func() {
		c.Close()
		g.Close()
	})
	defer stop()
	done := make(chan struct{}, 2)
	go func() { io.Copy(g, c); closeWrite(g); done <- struct{}{} }()
	go func() { io.Copy(c, g); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

// closeWrite half-closes c where it can, so that the other side sees EOF.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// Forward accepts connections on ln until it is closed, and hands each to
// relay on a goroutine of its own. The function it returns closes ln and
// waits until the accept loop and every relay have ended.
func Forward(ln net.Listener, relay func(net.Conn)) (stop func()) {
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
				relay(c)
			}()
		}
	}()
	return func() {
		ln.Close()
		<-done
		conns.Wait()
	}
}
