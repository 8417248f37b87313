package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTimeout bounds every wait in these tests. Fake-server exchanges take
// microseconds and real QEMU answers in milliseconds under TCG, so five
// seconds only ever fires on a bug, and then fails instead of hanging.
const testTimeout = 5 * time.Second

// greeting is what QEMU 7.2 sends first.
const greeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}`

// fakeQMP is the server end of a net.Pipe, driven step by step by a test.
type fakeQMP struct {
	conn net.Conn
	dec  *json.Decoder
	// armed is closed once the client has set its handshake deadline, so a
	// fake that hangs up can wait for it: net.Pipe fails SetDeadline after
	// the peer closes, which a real socket never does.
	armed <-chan struct{}
}

// deadlineConn reports the first SetDeadline on a client's end of a pipe.
type deadlineConn struct {
	net.Conn
	once  sync.Once
	armed chan struct{}
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.once.Do(func() { close(c.armed) })
	return err
}

// fakeCommand is a command as the fake server receives it.
type fakeCommand struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
}

// next reads the client's next command, failing the test if none comes.
func (f *fakeQMP) next(t *testing.T) fakeCommand {
	t.Helper()
	cmd, err := f.read()
	if err != nil {
		t.Fatalf("fake qmp: read command: %v", err)
	}
	return cmd
}

// read reads the client's next command within testTimeout.
func (f *fakeQMP) read() (fakeCommand, error) {
	var cmd fakeCommand
	f.conn.SetReadDeadline(time.Now().Add(testTimeout))
	err := f.dec.Decode(&cmd)
	return cmd, err
}

// send writes raw JSON lines to the client.
func (f *fakeQMP) send(t *testing.T, lines ...string) {
	t.Helper()
	if err := f.write(lines...); err != nil {
		t.Fatalf("fake qmp: send: %v", err)
	}
}

// write writes raw JSON lines to the client within testTimeout.
func (f *fakeQMP) write(lines ...string) error {
	f.conn.SetWriteDeadline(time.Now().Add(testTimeout))
	for _, l := range lines {
		if _, err := f.conn.Write([]byte(l + "\n")); err != nil {
			return err
		}
	}
	return nil
}

// reply answers cmd with the given "return" JSON.
func (f *fakeQMP) reply(t *testing.T, cmd fakeCommand, ret string) {
	t.Helper()
	f.send(t, fmt.Sprintf(`{"return": %s, "id": %s}`, ret, cmd.ID))
}

// newFake returns a client connected to a fake server that has completed
// the handshake. Both are closed when the test ends.
func newFake(t *testing.T) (*Client, *fakeQMP) {
	t.Helper()
	cconn, sconn := net.Pipe()
	f := &fakeQMP{conn: sconn, dec: json.NewDecoder(sconn)}
	t.Cleanup(func() { sconn.Close() })
	errc := make(chan error, 1)
	go func() {
		if err := f.write(greeting); err != nil {
			errc <- err
			return
		}
		cmd, err := f.read()
		if err != nil {
			errc <- err
			return
		}
		if cmd.Execute != "qmp_capabilities" {
			errc <- fmt.Errorf("got command %q, want qmp_capabilities", cmd.Execute)
			return
		}
		errc <- f.write(fmt.Sprintf(`{"return": {}, "id": %s}`, cmd.ID))
	}()
	c, err := NewClient(cconn)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := <-errc; err != nil {
		t.Fatalf("fake qmp handshake: %v", err)
	}
	return c, f
}

// testContext returns a context bounded by testTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// async runs fn in a goroutine and returns a channel with its error.
func async(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// await waits for an error from ch within testTimeout.
func await(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(testTimeout):
		t.Fatalf("no result within %v", testTimeout)
		return nil
	}
}

func TestNewClient(t *testing.T) {
	c, _ := newFake(t)
	got := c.Version()
	want := Version{Major: 7, Minor: 2, Micro: 22, Package: "Debian 1:7.2+dfsg-7"}
	if got != want {
		t.Errorf("Version: got %+v, want %+v", got, want)
	}
	if s := got.String(); s != "7.2.22 (Debian 1:7.2+dfsg-7)" {
		t.Errorf("Version.String: got %q, want %q", s, "7.2.22 (Debian 1:7.2+dfsg-7)")
	}
}

func TestNewClientErrors(t *testing.T) {
	defer func(d time.Duration) { handshakeTimeout = d }(handshakeTimeout)
	handshakeTimeout = 200 * time.Millisecond
	tests := []struct {
		name    string
		server  func(f *fakeQMP) error // runs the server side, then the pipe closes
		wantMsg string
	}{
		{"silence", func(f *fakeQMP) error {
			_, err := f.read() // never greet; read until the client gives up
			return ignoreClosed(err)
		}, "read greeting: no answer within 200ms"},
		{"hangup", func(f *fakeQMP) error {
			<-f.armed
			return f.conn.Close()
		}, "read greeting: EOF"},
		{"not json", func(f *fakeQMP) error {
			return f.write("login:")
		}, "read greeting: invalid character"},
		{"not qmp", func(f *fakeQMP) error {
			return f.write(`{"hello": 1}`)
		}, `no "QMP" object`},
		{"capabilities refused", func(f *fakeQMP) error {
			if err := f.write(greeting); err != nil {
				return err
			}
			if _, err := f.read(); err != nil {
				return err
			}
			return f.write(`{"error": {"class": "CommandNotFound", "desc": "nope"}, "id": "sd1"}`)
		}, "qmp_capabilities: qmp CommandNotFound: nope"},
		{"capabilities unanswered", func(f *fakeQMP) error {
			if err := f.write(greeting); err != nil {
				return err
			}
			_, err := f.read()
			if err != nil {
				return err
			}
			_, err = f.read() // wait for the client to give up and close
			return ignoreClosed(err)
		}, "read qmp_capabilities reply: no answer within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pconn, sconn := net.Pipe()
			defer sconn.Close()
			cconn := &deadlineConn{Conn: pconn, armed: make(chan struct{})}
			f := &fakeQMP{conn: sconn, dec: json.NewDecoder(sconn), armed: cconn.armed}
			srv := async(func() error { return tt.server(f) })
			c, err := NewClient(cconn)
			if err == nil {
				c.Close()
				t.Fatalf("NewClient: got nil error, want one containing %q", tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("NewClient: got error %q, want it to contain %q", err, tt.wantMsg)
			}
			// NewClient must close the connection it failed on.
			if _, err := cconn.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("write after failed NewClient: got %v, want closed pipe", err)
			}
			sconn.Close()
			if err := await(t, srv); err != nil {
				t.Errorf("fake server: %v", err)
			}
		})
	}
}

// ignoreClosed hides the errors a fake server sees when the client hangs
// up on it, which those tests expect.
func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, io.ErrClosedPipe) || strings.Contains(err.Error(), "EOF") {
		return nil
	}
	return err
}

func TestHelpers(t *testing.T) {
	tests := []struct {
		name     string
		call     func(*Client, context.Context) error
		wantCmd  string
		wantArgs string // compact JSON; "" for none
	}{
		{"Execute without args", func(c *Client, ctx context.Context) error {
			return c.Execute(ctx, "query-name", nil, nil)
		}, "query-name", ""},
		{"Execute with args", func(c *Client, ctx context.Context) error {
			return c.Execute(ctx, "human-monitor-command", map[string]string{"command-line": "info"}, nil)
		}, "human-monitor-command", `{"command-line":"info"}`},
		{"SystemPowerdown", (*Client).SystemPowerdown, "system_powerdown", ""},
		{"SystemReset", (*Client).SystemReset, "system_reset", ""},
		{"Stop", (*Client).Stop, "stop", ""},
		{"Cont", (*Client).Cont, "cont", ""},
		{"SetLink down", func(c *Client, ctx context.Context) error {
			return c.SetLink(ctx, "net0", false)
		}, "set_link", `{"name":"net0","up":false}`},
		{"SetLink up", func(c *Client, ctx context.Context) error {
			return c.SetLink(ctx, "net1", true)
		}, "set_link", `{"name":"net1","up":true}`},
		{"Screendump", func(c *Client, ctx context.Context) error {
			return c.Screendump(ctx, "/tmp/screen.ppm")
		}, "screendump", `{"filename":"/tmp/screen.ppm"}`},
		{"SendKey", func(c *Client, ctx context.Context) error {
			return c.SendKey(ctx, []string{"ctrl", "alt", "delete"})
		}, "send-key", `{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}`},
		{"Quit", (*Client).Quit, "quit", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFake(t)
			ctx := testContext(t)
			done := async(func() error { return tt.call(c, ctx) })
			cmd := f.next(t)
			if cmd.Execute != tt.wantCmd {
				t.Errorf("got command %q, want %q", cmd.Execute, tt.wantCmd)
			}
			var args bytes.Buffer
			if len(cmd.Arguments) > 0 {
				if err := json.Compact(&args, cmd.Arguments); err != nil {
					t.Fatal(err)
				}
			}
			if args.String() != tt.wantArgs {
				t.Errorf("got arguments %s, want %s", args.String(), tt.wantArgs)
			}
			f.reply(t, cmd, "{}")
			if err := await(t, done); err != nil {
				t.Errorf("got error %v, want nil", err)
			}
		})
	}
}

func TestQueryStatus(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	var got Status
	done := async(func() (err error) {
		got, err = c.QueryStatus(ctx)
		return err
	})
	cmd := f.next(t)
	if cmd.Execute != "query-status" {
		t.Errorf("got command %q, want query-status", cmd.Execute)
	}
	f.reply(t, cmd, `{"status": "paused", "singlestep": false, "running": false}`)
	if err := await(t, done); err != nil {
		t.Fatalf("QueryStatus: %v", err)
	}
	if want := (Status{Running: false, Status: "paused"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestExecuteErrorReply(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	done := async(func() error { return c.SetLink(ctx, "nope", false) })
	cmd := f.next(t)
	f.send(t, fmt.Sprintf(`{"error": {"class": "DeviceNotFound", "desc": "Device 'nope' not found"}, "id": %s}`, cmd.ID))
	err := await(t, done)
	var qerr *Error
	if !errors.As(err, &qerr) {
		t.Fatalf("got error %v, want a *Error", err)
	}
	if want := (Error{Class: "DeviceNotFound", Desc: "Device 'nope' not found"}); *qerr != want {
		t.Errorf("got %+v, want %+v", *qerr, want)
	}
	if want := "qmp set_link: qmp DeviceNotFound: Device 'nope' not found"; err.Error() != want {
		t.Errorf("got message %q, want %q", err, want)
	}
}

func TestExecuteBadResult(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	done := async(func() error {
		_, err := c.QueryStatus(ctx)
		return err
	})
	f.reply(t, f.next(t), `{"running": "yes"}`)
	if err := await(t, done); err == nil || !strings.Contains(err.Error(), "decode reply") {
		t.Errorf("got error %v, want a decode error", err)
	}
}

func TestInterleavedEvents(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	events, cancel := c.Subscribe()
	defer cancel()
	done := async(func() error { return c.Stop(ctx) })
	cmd := f.next(t)
	f.send(t,
		`{"timestamp": {"seconds": 1700000000, "microseconds": 250}, "event": "STOP"}`,
		`{"return": {}, "id": "someone-else"}`, // an id nobody waits for
		`{"return": {}}`,                       // no id at all
		fmt.Sprintf(`{"return": {}, "id": %s}`, cmd.ID),
		`{"timestamp": {"seconds": 1700000001, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`,
	)
	if err := await(t, done); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	want := []Event{
		{Name: "STOP", Time: time.Unix(1700000000, 250000)},
		{Name: "SHUTDOWN", Data: json.RawMessage(`{"guest": true, "reason": "guest-shutdown"}`), Time: time.Unix(1700000001, 0)},
	}
	for i, w := range want {
		select {
		case got := <-events:
			if got.Name != w.Name || !got.Time.Equal(w.Time) || string(got.Data) != string(w.Data) {
				t.Errorf("event %d: got %+v, want %+v", i, got, w)
			}
		case <-time.After(testTimeout):
			t.Fatalf("event %d: none within %v, want %s", i, testTimeout, w.Name)
		}
	}
}

func TestOutOfOrderReplies(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	results := make(map[string]chan string)
	var errs []<-chan error
	for _, name := range []string{"first", "second", "third"} {
		ch := make(chan string, 1)
		results[name] = ch
		errs = append(errs, async(func() error {
			var r struct{ Name string }
			err := c.Execute(ctx, "cmd-"+name, nil, &r)
			ch <- r.Name
			return err
		}))
	}
	var cmds []fakeCommand
	for range 3 {
		cmds = append(cmds, f.next(t))
	}
	// Answer in reverse order of arrival.
	for i := len(cmds) - 1; i >= 0; i-- {
		name := strings.TrimPrefix(cmds[i].Execute, "cmd-")
		f.reply(t, cmds[i], fmt.Sprintf(`{"Name": %q}`, name))
	}
	for _, e := range errs {
		if err := await(t, e); err != nil {
			t.Errorf("Execute: %v", err)
		}
	}
	for name, ch := range results {
		if got := <-ch; got != name {
			t.Errorf("cmd-%s: got reply for %q, want %q", name, got, name)
		}
	}
}

func TestConcurrentExecute(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	const n = 50
	// The server echoes each command's name back, in whatever order.
	srv := async(func() error {
		for range n {
			cmd, err := f.read()
			if err != nil {
				return err
			}
			if err := f.write(fmt.Sprintf(`{"return": %q, "id": %s}`, cmd.Execute, cmd.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			want := fmt.Sprintf("cmd-%d", i)
			var got string
			if err := c.Execute(ctx, want, nil, &got); err != nil {
				t.Errorf("Execute %s: %v", want, err)
			} else if got != want {
				t.Errorf("Execute %s: got reply %q, want %q", want, got, want)
			}
		})
	}
	wg.Wait()
	if err := await(t, srv); err != nil {
		t.Fatalf("fake server: %v", err)
	}
}

func TestConnectionDrop(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	events, cancel := c.Subscribe()
	defer cancel()
	defaultEvents := c.Events()
	done := async(func() error {
		_, err := c.QueryStatus(ctx)
		return err
	})
	f.next(t)
	f.conn.Close() // QEMU died with a call pending
	start := time.Now()
	err := await(t, done)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("pending call: got error %v, want ErrClosed", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("pending call failed after %v, want promptly", elapsed)
	}
	if !strings.Contains(err.Error(), "EOF") {
		t.Errorf("got error %q, want it to name the cause (EOF)", err)
	}
	select {
	case <-c.Done():
	case <-time.After(testTimeout):
		t.Fatal("Done not closed after the connection dropped")
	}
	if err := c.Stop(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("later call: got error %v, want ErrClosed", err)
	}
	for name, ch := range map[string]<-chan Event{"Subscribe": events, "Events": defaultEvents} {
		if _, ok := <-ch; ok {
			t.Errorf("%s channel: got an event, want it closed", name)
		}
	}
	if ch, _ := c.Subscribe(); ch != nil {
		if _, ok := <-ch; ok {
			t.Errorf("Subscribe after drop: got an open channel, want a closed one")
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after drop: %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	c, f := newFake(t)

	// Cancelled while waiting for the reply.
	ctx, cancel := context.WithCancel(testContext(t))
	done := async(func() error { return c.Execute(ctx, "slow", nil, nil) })
	slow := f.next(t)
	cancel()
	if err := await(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}

	// Deadline passes while the command cannot even be written (the
	// server is not reading). The command must still go out whole later.
	short, cancelShort := context.WithTimeout(testContext(t), 50*time.Millisecond)
	defer cancelShort()
	if err := c.Execute(short, "unwritten", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got error %v, want context.DeadlineExceeded", err)
	}

	// Already cancelled: fails without sending.
	if err := c.Execute(ctx, "never", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}

	// The client still works, and late replies go nowhere.
	ctx2 := testContext(t)
	var got string
	done = async(func() error { return c.Execute(ctx2, "after", nil, &got) })
	f.reply(t, slow, `"late"`)
	for {
		cmd := f.next(t)
		if cmd.Execute == "unwritten" {
			f.reply(t, cmd, `"late too"`)
			continue
		}
		if cmd.Execute != "after" {
			t.Fatalf("got command %q, want unwritten or after", cmd.Execute)
		}
		f.reply(t, cmd, `"fresh"`)
		break
	}
	if err := await(t, done); err != nil {
		t.Fatalf("Execute after cancel: %v", err)
	}
	if got != "fresh" {
		t.Errorf("got reply %q, want %q", got, "fresh")
	}
}

func TestSlowSubscriberDropsEvents(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	a, cancelA := c.Subscribe()
	defer cancelA()
	b, cancelB := c.Subscribe()
	defer cancelB()
	const extra = 10

	// sendEvents sends n events numbered from first, then answers a
	// command; once the command returns, the reader has handled them all.
	sendEvents := func(first, n int) {
		t.Helper()
		done := async(func() error { return c.Cont(ctx) })
		cmd := f.next(t)
		for i := range n {
			f.send(t, fmt.Sprintf(`{"timestamp": {"seconds": %d, "microseconds": 0}, "event": "RESUME"}`, first+i))
		}
		f.reply(t, cmd, "{}")
		if err := await(t, done); err != nil {
			t.Fatalf("Cont behind full subscribers: %v", err)
		}
	}

	// Neither subscriber reads: replies still flow, and each subscriber
	// keeps the oldest events it had room for.
	sendEvents(0, EventBuffer+extra)
	if got, want := c.DroppedEvents(), uint64(2*extra); got != want {
		t.Errorf("DroppedEvents: got %d, want %d", got, want)
	}
	for name, ch := range map[string]<-chan Event{"a": a, "b": b} {
		if got := len(ch); got != EventBuffer {
			t.Errorf("subscriber %s holds %d events, want %d", name, got, EventBuffer)
		}
	}
	for i := range EventBuffer {
		if e := <-a; e.Time.Unix() != int64(i) {
			t.Fatalf("subscriber a, event %d: got number %d, want %d", i, e.Time.Unix(), i)
		}
	}

	// Once a has drained, it receives again; b, still full, still drops.
	sendEvents(1000, 1)
	select {
	case e := <-a:
		if e.Time.Unix() != 1000 {
			t.Errorf("subscriber a after draining: got event %d, want 1000", e.Time.Unix())
		}
	default:
		t.Error("subscriber a after draining: got no event, want one")
	}
	if got, want := c.DroppedEvents(), uint64(2*extra+1); got != want {
		t.Errorf("DroppedEvents: got %d, want %d", got, want)
	}
}

func TestUnsubscribe(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	ch, cancel := c.Subscribe()
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Fatal("got an event after cancel, want a closed channel")
	}
	if c.Events() != c.Events() {
		t.Error("Events: got a different channel per call, want the same")
	}
	// Events after unsubscribing go nowhere and are not counted as drops.
	done := async(func() error { return c.Stop(ctx) })
	cmd := f.next(t)
	f.send(t, `{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "STOP"}`)
	f.reply(t, cmd, "{}")
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
	if got := c.DroppedEvents(); got != 0 {
		t.Errorf("DroppedEvents: got %d, want 0", got)
	}
}

func TestQuit(t *testing.T) {
	tests := []struct {
		name   string
		server func(t *testing.T, f *fakeQMP, cmd fakeCommand)
	}{
		{"reply then hang up", func(t *testing.T, f *fakeQMP, cmd fakeCommand) {
			f.send(t, `{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}`)
			f.reply(t, cmd, "{}")
			f.conn.Close()
		}},
		{"hang up without reply", func(t *testing.T, f *fakeQMP, cmd fakeCommand) {
			f.conn.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := newFake(t)
			done := async(func() error { return c.Quit(testContext(t)) })
			tt.server(t, f, f.next(t))
			if err := await(t, done); err != nil {
				t.Errorf("Quit: got error %v, want nil", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	c, f := newFake(t)
	ctx := testContext(t)
	done := async(func() error { return c.Stop(ctx) })
	f.next(t)
	closed := async(c.Close)
	if err := await(t, closed); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := await(t, done); !errors.Is(err, ErrClosed) {
		t.Errorf("pending call: got error %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if err := c.Cont(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: got error %v, want ErrClosed", err)
	}
}

// qemuBinary returns the QEMU binary's path, or skips the test when it is
// missing, except in CI (CI=true), where a missing QEMU is a broken runner
// that must not pass silently.
func qemuBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("qemu-system-x86_64 not on PATH in CI (install Debian package qemu-system-x86): %v", err)
		}
		t.Skipf("qemu-system-x86_64 not on PATH (install Debian package qemu-system-x86): %v", err)
	}
	return path
}

// startQEMU starts a QEMU that runs no guest (-S) with its QMP monitor on
// a socketpair, and returns a client for it. QEMU is killed when the test
// ends, and also if the test binary dies first (Pdeathsig). The returned
// channel is closed when QEMU has exited.
func startQEMU(t *testing.T, accel Accel, extra ...string) (*Client, <-chan struct{}) {
	t.Helper()
	bin := qemuBinary(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "qmp")
	theirs := os.NewFile(uintptr(fds[1]), "qmp-qemu")
	defer theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close() // FileConn holds its own duplicate
	if err != nil {
		theirs.Close()
		t.Fatalf("qmp conn: %v", err)
	}

	args := append([]string{
		"-machine", "q35,accel=" + string(accel),
		"-nodefaults", "-display", "none", "-S",
		"-chardev", "socket,id=qmp,fd=3", // ExtraFiles[0] is fd 3
		"-mon", "chardev=qmp,mode=control",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		conn.Close()
		t.Fatalf("start %s: %v", cmd, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(testTimeout):
			t.Errorf("qemu pid %d did not exit after SIGKILL", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("qemu command: %s\nqemu output:\n%s", cmd, stderr.String())
		}
	})
	c, err := NewClient(conn)
	if err != nil {
		t.Fatalf("NewClient for %s: %v", cmd, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, exited
}

func TestRealQEMU(t *testing.T) {
	c, exited := startQEMU(t, AccelTCG, "-device", "VGA")
	ctx := testContext(t)
	if v := c.Version(); v.Major < 7 {
		t.Errorf("Version: got %v, want 7.2 or later", v)
	}
	t.Logf("QEMU %v", c.Version())

	st, err := c.QueryStatus(ctx)
	if err != nil {
		t.Fatalf("QueryStatus: %v", err)
	}
	if want := (Status{Running: false, Status: "prelaunch"}); st != want {
		t.Errorf("QueryStatus under -S: got %+v, want %+v", st, want)
	}

	dir := t.TempDir()
	ppmPath := filepath.Join(dir, "screen.ppm")
	if err := c.Screendump(ctx, ppmPath); err != nil {
		t.Fatalf("Screendump: %v", err)
	}
	f, err := os.Open(ppmPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := DecodePPM(f)
	f.Close()
	if err != nil {
		t.Fatalf("DecodePPM of QEMU's screendump: %v", err)
	}
	if got, want := img.Bounds(), image.Rect(0, 0, 640, 480); got != want {
		t.Errorf("screendump bounds: got %v, want %v (VGA's default mode)", got, want)
	}
	if err := PPMToPNG(ppmPath, filepath.Join(dir, "screen.png")); err != nil {
		t.Errorf("PPMToPNG: %v", err)
	}

	if err := c.SendKey(ctx, []string{"ctrl", "alt", "delete"}); err != nil {
		t.Errorf("SendKey: %v", err)
	}
	var qerr *Error
	if err := c.SetLink(ctx, "no-such-nic", false); !errors.As(err, &qerr) || qerr.Class != "DeviceNotFound" {
		t.Errorf("SetLink on a missing NIC: got %v, want a DeviceNotFound *Error", err)
	}

	// Start and stop the vCPUs, watching the events QEMU sends for both.
	events, cancel := c.Subscribe()
	defer cancel()
	if err := c.Cont(ctx); err != nil {
		t.Fatalf("Cont: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, want := range []string{"RESUME", "STOP"} {
		select {
		case e := <-events:
			if e.Name != want {
				t.Errorf("got event %s, want %s", e.Name, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %s event: %v", want, ctx.Err())
		}
	}
	if st, err := c.QueryStatus(ctx); err != nil || st.Status != "paused" {
		t.Errorf("QueryStatus after Stop: got %+v, %v, want paused", st, err)
	}

	if err := c.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("QMP connection still open after Quit")
	}
	if err := c.Stop(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Stop after Quit: got %v, want ErrClosed", err)
	}
	// Quit's reply may precede the exit; the process must follow promptly.
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatal("qemu still running after Quit")
	}
}

// TestAwaitPortOpen checks that only a VSERPORT_CHANGE that opens a port
// ends the wait, and that the wait is bounded.
func TestAwaitPortOpen(t *testing.T) {
	events := make(chan Event, 3)
	events <- Event{Name: "VSERPORT_CHANGE", Data: []byte(`{"id": "p", "open": false}`)}
	events <- Event{Name: "NIC_RX_FILTER_CHANGED"}
	events <- Event{Name: "VSERPORT_CHANGE", Data: []byte(`{"id": "p", "open": true}`)}
	if !AwaitPortOpen(context.Background(), events, time.Minute) {
		t.Error("the port's opening went unseen")
	}
	began := time.Now()
	if AwaitPortOpen(context.Background(), events, 20*time.Millisecond) {
		t.Error("saw an opening that never came")
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("a wait bounded at 20ms took %v", d)
	}
}
