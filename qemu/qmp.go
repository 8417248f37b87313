package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// HandshakeTimeout bounds NewClient: reading QEMU's greeting and
// negotiating capabilities. QEMU greets as soon as the monitor exists,
// before any guest runs, so even a loaded CI host answers within
// milliseconds; ten seconds means "this is not a QMP monitor" or "QEMU is
// wedged", and says so instead of hanging.
const HandshakeTimeout = 10 * time.Second

// handshakeTimeout is HandshakeTimeout, shortened by tests of the timeout.
var handshakeTimeout = HandshakeTimeout

// EventBuffer is how many events each subscription buffers. Events come in
// bursts of a few (SHUTDOWN, STOP, RESET); a subscriber that falls further
// behind loses events rather than stalling command replies.
const EventBuffer = 64

// ErrClosed is returned (wrapped) by Execute once the QMP connection is
// closed, by Close or because QEMU exited.
var ErrClosed = errors.New("qmp connection closed")

// Error is an error reply from QEMU, such as {"class": "DeviceNotFound",
// "desc": "Device 'net0' not found"}. Execute returns it wrapped with the
// command; use errors.As to branch on Class.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// Error implements error.
func (e *Error) Error() string {
	return "qmp " + e.Class + ": " + e.Desc
}

// Event is an asynchronous QMP event, such as SHUTDOWN or RESET.
type Event struct {
	Name string          // e.g. "SHUTDOWN"
	Data json.RawMessage // the event's "data" object; nil if it has none
	Time time.Time       // when QEMU emitted it
}

// Version is QEMU's version as announced in the QMP greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string // distribution build, e.g. "Debian 1:7.2+dfsg-7"
}

// String formats v as "7.2.22 (Debian 1:7.2+dfsg-7)".
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
	if v.Package != "" {
		s += " (" + v.Package + ")"
	}
	return s
}

// Client speaks QMP over one connection, typically one end of a socketpair
// whose other end QEMU received as
// "-chardev socket,id=qmp,fd=3 -mon chardev=qmp,mode=control".
//
// One reader goroutine dispatches replies (matched to commands by "id", so
// concurrent Execute calls are safe) and events; one writer goroutine sends
// commands whole, so that a caller giving up mid-write never leaves half a
// command on the wire. Both end when the connection closes; the owner must
// call Close, which also waits for them.
type Client struct {
	conn    net.Conn
	version Version

	writes chan []byte   // commands for the writer goroutine
	done   chan struct{} // closed when the connection is dead
	wg     sync.WaitGroup

	nextID    atomic.Uint64
	dropped   atomic.Uint64 // events lost to full subscriber buffers
	closeOnce sync.Once

	mu       sync.Mutex
	pending  map[string]chan reply  // by command id
	subs     map[*subscription]bool // live subscriptions
	events   *subscription          // the one Events returns, made lazily
	cause    error                  // why the connection died, once done is closed
	closeErr error                  // from closing conn
}

// reply is a command's outcome as the reader delivers it.
type reply struct {
	ret json.RawMessage
	err *Error
}

// subscription is one event channel; closed under Client.mu only.
type subscription struct {
	ch     chan Event
	closed bool
}

// message is any message QEMU sends: greeting, reply or event.
type message struct {
	QMP *struct {
		Version struct {
			QEMU struct {
				Major, Minor, Micro int
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
	} `json:"QMP"`
	Return    json.RawMessage `json:"return"`
	Error     *Error          `json:"error"`
	ID        json.RawMessage `json:"id"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// command is what we send.
type command struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
	ID        string `json:"id"`
}

// NewClient reads QEMU's greeting from conn and negotiates capabilities,
// within HandshakeTimeout. The Client owns conn from then on, and on
// error NewClient closes it.
func NewClient(conn net.Conn) (*Client, error) {
	c := &Client{
		conn:    conn,
		writes:  make(chan []byte),
		done:    make(chan struct{}),
		pending: make(map[string]chan reply),
		subs:    make(map[*subscription]bool),
	}
	dec := json.NewDecoder(conn)
	if err := c.handshake(dec); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp handshake: %w", err)
	}
	c.wg.Add(2)
	go c.read(dec)
	go c.write()
	return c, nil
}

// handshake reads the greeting and runs qmp_capabilities synchronously:
// QEMU sends no events before capabilities are negotiated, so nothing else
// can arrive in between.
func (c *Client) handshake(dec *json.Decoder) error {
	deadline := time.Now().Add(handshakeTimeout)
	if err := c.conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	var greeting message
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("read greeting: %w", timeoutHint(err))
	}
	if greeting.QMP == nil {
		return errors.New("read greeting: no \"QMP\" object: is this a QMP monitor (mode=control)?")
	}
	v := greeting.QMP.Version
	c.version = Version{Major: v.QEMU.Major, Minor: v.QEMU.Minor, Micro: v.QEMU.Micro, Package: v.Package}

	id := c.newID()
	b, err := json.Marshal(command{Execute: "qmp_capabilities", ID: id})
	if err != nil {
		return err
	}
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("send qmp_capabilities: %w", timeoutHint(err))
	}
	var m message
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("read qmp_capabilities reply: %w", timeoutHint(err))
	}
	if m.Error != nil {
		return fmt.Errorf("qmp_capabilities: %w", m.Error)
	}
	if m.Return == nil || idString(m.ID) != id {
		return fmt.Errorf("qmp_capabilities: unexpected reply %s", abbreviate(m))
	}
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear deadline: %w", err)
	}
	return nil
}

// timeoutHint makes a deadline error say what the deadline was.
func timeoutHint(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no answer within %v: %w", handshakeTimeout, err)
	}
	return err
}

// abbreviate renders an unexpected message for an error, cut short.
func abbreviate(m message) string {
	b, _ := json.Marshal(m)
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// newID returns a fresh command id.
func (c *Client) newID() string {
	return "sd" + strconv.FormatUint(c.nextID.Add(1), 10)
}

// idString decodes a reply's id; QMP echoes whatever JSON value we sent,
// and we always send strings.
func idString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// Version returns QEMU's version from the greeting.
func (c *Client) Version() Version { return c.version }

// Done returns a channel closed when the connection is gone: after Close,
// or when QEMU exits or closes the monitor.
func (c *Client) Done() <-chan struct{} { return c.done }

// read is the reader goroutine: it decodes messages until the connection
// fails, hands replies to their callers and events to subscribers, and
// then marks the client dead.
func (c *Client) read(dec *json.Decoder) {
	defer c.wg.Done()
	var cause error
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			cause = err
			break
		}
		switch {
		case m.Event != "":
			c.publish(Event{
				Name: m.Event,
				Data: m.Data,
				Time: time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000),
			})
		case m.Return != nil || m.Error != nil:
			c.mu.Lock()
			id := idString(m.ID)
			ch := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			// A reply whose caller gave up (or with no id, which QEMU
			// sends only for commands it could not parse) has no taker.
			if ch != nil {
				ch <- reply{ret: m.Return, err: m.Error} // buffered, never blocks
			}
		}
	}
	c.shutdown(cause)
}

// shutdown marks the connection dead, once: it closes the connection,
// ends subscriptions, and wakes pending callers by closing done. done is
// closed under c.mu so that send and Subscribe, which check it under
// c.mu, never register with a dead client.
func (c *Client) shutdown(cause error) {
	c.closeOnce.Do(func() {
		err := c.conn.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cause = cause
		c.closeErr = err
		for s := range c.subs {
			s.closed = true
			close(s.ch)
		}
		clear(c.subs)
		close(c.done)
	})
}

// write is the writer goroutine. It writes each command whole; a write
// error means the connection is dead.
func (c *Client) write() {
	defer c.wg.Done()
	for {
		select {
		case b := <-c.writes:
			if _, err := c.conn.Write(b); err != nil {
				c.shutdown(fmt.Errorf("write: %w", err))
				return
			}
		case <-c.done:
			return
		}
	}
}

// Execute runs one QMP command and waits for its reply. args, if not nil,
// is marshaled as the command's "arguments"; result, if not nil, receives
// the "return" value. An error reply is returned as a wrapped *Error.
//
// If ctx ends first, Execute returns its error (wrapped; errors.Is works)
// and the client stays usable: the command may still run in QEMU, and its
// late reply is discarded. Once the connection is closed, Execute fails
// promptly with an error wrapping ErrClosed.
func (c *Client) Execute(ctx context.Context, command string, args any, result any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	ch, id, err := c.send(ctx, command, args)
	if err != nil {
		return err
	}
	var r reply
	select {
	case r = <-ch:
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	case <-c.done:
		// The reader may have delivered the reply just before it saw the
		// connection end; the delivery happened before done was closed.
		select {
		case r = <-ch:
		default:
			return c.closedError(command)
		}
	}
	if r.err != nil {
		return fmt.Errorf("qmp %s: %w", command, r.err)
	}
	if result != nil {
		if err := json.Unmarshal(r.ret, result); err != nil {
			return fmt.Errorf("qmp %s: decode reply %.200s: %w", command, r.ret, err)
		}
	}
	return nil
}

// send registers a pending reply and hands the command to the writer.
func (c *Client) send(ctx context.Context, cmd string, args any) (chan reply, string, error) {
	id := c.newID()
	b, err := json.Marshal(command{Execute: cmd, Arguments: args, ID: id})
	if err != nil {
		return nil, "", fmt.Errorf("qmp %s: encode arguments: %w", cmd, err)
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return nil, "", c.closedError(cmd)
	default:
	}
	c.pending[id] = ch
	c.mu.Unlock()

	select {
	case c.writes <- b:
		return ch, id, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, "", fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	case <-c.done:
		return nil, "", c.closedError(cmd)
	}
}

// forget drops a pending reply whose caller gave up.
func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// closedError says a command failed because the connection is gone, and
// why it went (EOF usually means QEMU exited).
func (c *Client) closedError(cmd string) error {
	c.mu.Lock()
	cause := c.cause
	c.mu.Unlock()
	if cause == nil || errors.Is(cause, net.ErrClosed) {
		return fmt.Errorf("qmp %s: %w", cmd, ErrClosed)
	}
	return fmt.Errorf("qmp %s: %w (%v)", cmd, ErrClosed, cause)
}

// Close closes the connection and waits for the client's goroutines to
// end. Pending and later Execute calls fail with ErrClosed; event channels
// are closed. Close is idempotent and safe to call concurrently; it
// returns the error, if any, from closing the connection.
func (c *Client) Close() error {
	c.shutdown(net.ErrClosed)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr != nil {
		return fmt.Errorf("qmp close: %w", c.closeErr)
	}
	return nil
}

// AwaitPortOpen waits until QEMU reports that the guest opened a
// virtio-serial port (VSERPORT_CHANGE) among events (from Subscribe), for
// at most d; it reports whether it saw one.
func AwaitPortOpen(ctx context.Context, events <-chan Event, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case e := <-events:
			var data struct{ Open bool }
			if e.Name == "VSERPORT_CHANGE" && json.Unmarshal(e.Data, &data) == nil && data.Open {
				return true
			}
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Subscribe returns a channel that receives every event from now on, and a
// function that ends the subscription and closes the channel. The channel
// buffers EventBuffer events; when it is full, further events are dropped
// for this subscriber (counted by DroppedEvents) so that a slow reader
// never stalls command replies. The channel is also closed when the
// connection closes, so ranging over it ends.
func (c *Client) Subscribe() (<-chan Event, func()) {
	c.mu.Lock()
	s := c.subscribeLocked()
	c.mu.Unlock()
	return s.ch, func() { c.unsubscribe(s) }
}

// subscribeLocked makes a subscription, already closed if the connection
// is. c.mu must be held.
func (c *Client) subscribeLocked() *subscription {
	s := &subscription{ch: make(chan Event, EventBuffer)}
	select {
	case <-c.done:
		s.closed = true
		close(s.ch)
	default:
		c.subs[s] = true
	}
	return s
}

// unsubscribe ends s; idempotent.
func (c *Client) unsubscribe(s *subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.closed {
		s.closed = true
		delete(c.subs, s)
		close(s.ch)
	}
}

// Events returns the client's default event subscription, made on first
// call; every call returns the same channel. It follows Subscribe's rules
// and ends only when the connection closes. Use Subscribe for readers that
// come and go.
func (c *Client) Events() <-chan Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.events == nil {
		c.events = c.subscribeLocked()
	}
	return c.events.ch
}

// DroppedEvents returns how many events were lost, summed over all
// subscriptions, because a subscriber's buffer was full.
func (c *Client) DroppedEvents() uint64 { return c.dropped.Load() }

// publish hands e to every subscriber without blocking.
func (c *Client) publish(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		select {
		case s.ch <- e:
		default:
			c.dropped.Add(1)
		}
	}
}

// Status is the VM's run state from query-status.
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"` // e.g. "running", "paused", "prelaunch", "shutdown"
}

// QueryStatus returns the VM's run state.
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// Quit makes QEMU exit at once, like pulling the plug. QEMU may reply
// before it exits or just close the connection; both count as success.
func (c *Client) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// SystemPowerdown presses the ACPI power button; the guest decides whether
// and when to shut down.
func (c *Client) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// SystemReset resets the machine like the reset button, without the
// guest's cooperation.
func (c *Client) SystemReset(ctx context.Context) error {
	return c.Execute(ctx, "system_reset", nil, nil)
}

// Stop pauses all vCPUs.
func (c *Client) Stop(ctx context.Context) error {
	return c.Execute(ctx, "stop", nil, nil)
}

// Cont resumes vCPUs after Stop or after starting QEMU with -S.
func (c *Client) Cont(ctx context.Context) error {
	return c.Execute(ctx, "cont", nil, nil)
}

// SetLink sets the link state of the network device or netdev with the
// given id, as the guest's NIC sees carrier.
func (c *Client) SetLink(ctx context.Context, name string, up bool) error {
	return c.Execute(ctx, "set_link", struct {
		Name string `json:"name"`
		Up   bool   `json:"up"`
	}{name, up}, nil)
}

// Screendump writes the primary console's screen to filename, a path QEMU
// opens (so it must be absolute or relative to QEMU's working directory).
// QEMU 7.2 writes PPM when no format is given; see PPMToPNG. A machine
// without a display device has no console, and QEMU replies with an error.
func (c *Client) Screendump(ctx context.Context, filename string) error {
	return c.Execute(ctx, "screendump", struct {
		Filename string `json:"filename"`
	}{filename}, nil)
}

// SendKey presses the given keys together and releases them, e.g.
// []string{"ctrl", "alt", "delete"}. Keys are QEMU qcodes ("a", "ret",
// "shift", "f1", ...), as in QMP's send-key.
func (c *Client) SendKey(ctx context.Context, keys []string) error {
	type keyValue struct {
		Type string `json:"type"`
		Data string `json:"data"`
	}
	kv := make([]keyValue, len(keys))
	for i, k := range keys {
		kv[i] = keyValue{Type: "qcode", Data: k}
	}
	return c.Execute(ctx, "send-key", struct {
		Keys []keyValue `json:"keys"`
	}{kv}, nil)
}
