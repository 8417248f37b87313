// Package agenttest runs a guest agent inside the test process, on one end
// of a socketpair standing in for the virtio-serial port, so that the agent
// and its host client are tested without a VM. It imports agent,
// agentclient and internal/agentproto; only tests import it.
package agenttest

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/agent"
	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// Timeouts of the in-process agent: generous, since -race slows it.
const (
	dialTimeout = 10 * time.Second
	stopTimeout = 15 * time.Second
)

// Console is an agent's console: what it writes, safe to read while it
// writes.
type Console struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

// String returns what was written so far.
func (c *Console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// Pair serves a's sessions on one end of a socketpair, which reads EOF
// when the peer is gone as the port does, and returns the host end. The
// agent stops when the test ends.
func Pair(t testing.TB, a *agent.Agent) net.Conn {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	guest := os.NewFile(uintptr(fds[0]), "guest")
	hostF := os.NewFile(uintptr(fds[1]), "host")
	host, err := net.FileConn(hostF)
	hostF.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.ServeSession(ctx, guest); close(done) }()
	t.Cleanup(func() { cancel(); host.Close(); <-done })
	return host
}

// Start runs an agent that supervises svcs, starts them, and returns a
// client connected to it and the agent's console. When the test ends the
// services are stopped and the client closed.
func Start(t testing.TB, svcs ...agentproto.Service) (*agentclient.Client, *Console) {
	t.Helper()
	console := &Console{}
	a, err := agent.New(agent.Config{Services: svcs, Console: console})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	c, err := agentclient.Dial(ctx, Pair(t, a))
	if err != nil {
		t.Fatal(err)
	}
	a.StartServices()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		for _, s := range svcs {
			c.Unit(ctx, agentproto.UnitStop, s.Name)
		}
		c.Close()
	})
	return c, console
}
