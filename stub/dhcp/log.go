package dhcpstub

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// Event is one message the server received and what it did about it, as
// its log holds it. It is logged once the answer is decided, before a
// Delay fault holds the answer back.
type Event struct {
	// Time is when the message arrived.
	Time time.Time
	// Type is the client's message type (dhcpv4.MessageTypeDiscover, ...);
	// MessageTypeNone for a datagram that was no DHCP request.
	Type dhcpv4.MessageType
	// MAC is the client's hardware address (chaddr).
	MAC net.HardwareAddr
	// Hostname is the name the client sent (option 12), "" if none.
	Hostname string
	// XID is the message's transaction ID.
	XID dhcpv4.TransactionID
	// From is the address the message came from: 0.0.0.0:68 for a client
	// with no address yet.
	From netip.AddrPort
	// Requested is the address the client asked for (option 50), or the
	// one it has (ciaddr) when it renews, releases or informs.
	Requested netip.Addr
	// Reply is the answer's type (dhcpv4.MessageTypeOffer, Ack, Nak);
	// MessageTypeNone when none was sent, and Note says why.
	Reply dhcpv4.MessageType
	// Addr is the address given (yiaddr of an OFFER or ACK).
	Addr netip.Addr
	// To is where the answer went.
	To netip.AddrPort
	// Note says why there was no answer or a NAK, or what a RELEASE or
	// DECLINE did: "pool exhausted: ...", "outage: no answer", ...
	Note string
	// Fault is the fault that applied, nil if none.
	Fault *Fault
}

// String is the event as a log line: "REQUEST 52:54:00:12:01:05 (web)
// wants 192.168.1.100: ACK 192.168.1.100 to 255.255.255.255:68".
func (e Event) String() string {
	var b strings.Builder
	if e.Type == dhcpv4.MessageTypeNone {
		fmt.Fprintf(&b, "from %s: %s", e.From, e.Note)
		return b.String()
	}
	fmt.Fprintf(&b, "%s %s", msgName(e.Type), e.MAC)
	if e.Hostname != "" {
		fmt.Fprintf(&b, " (%s)", e.Hostname)
	}
	if e.Requested.IsValid() {
		fmt.Fprintf(&b, " wants %s", e.Requested)
	}
	if e.Reply != dhcpv4.MessageTypeNone {
		fmt.Fprintf(&b, ": %s", msgName(e.Reply))
		if e.Addr.IsValid() {
			fmt.Fprintf(&b, " %s", e.Addr)
		}
		fmt.Fprintf(&b, " to %s", e.To)
	}
	if e.Note != "" {
		fmt.Fprintf(&b, " (%s)", e.Note)
	}
	return b.String()
}

// msgName is a message type as RFC 2131 writes it: DISCOVER, ACK, ...
func msgName(t dhcpv4.MessageType) string {
	return strings.ToUpper(strings.TrimPrefix(t.String(), "DHCP"))
}

// Match picks events from the log, for WaitForLease, WaitForEvent or a
// test's own filtering of Log. The zero value matches every event; each
// field set narrows it.
type Match struct {
	// Type matches the client's message type; MessageTypeNone matches any.
	Type dhcpv4.MessageType
	// Reply matches the answer's type; MessageTypeNone matches any
	// (Func picks events without one).
	Reply dhcpv4.MessageType
	// MAC matches the client's hardware address.
	MAC net.HardwareAddr
	// Hostname matches the name the client sent.
	Hostname string
	// Addr matches the address given.
	Addr netip.Addr
	// Since matches events at or after it: those after a change the test
	// made, say.
	Since time.Time
	// Func, if not nil, must return true too.
	Func func(Event) bool
	// Desc says what Func checks, for the waits' errors.
	Desc string
}

// Matches reports whether e is one m picks.
func (m Match) Matches(e Event) bool {
	return (m.Type == dhcpv4.MessageTypeNone || m.Type == e.Type) &&
		(m.Reply == dhcpv4.MessageTypeNone || m.Reply == e.Reply) &&
		(m.MAC == nil || bytes.Equal(m.MAC, e.MAC)) &&
		(m.Hostname == "" || m.Hostname == e.Hostname) &&
		(!m.Addr.IsValid() || m.Addr == e.Addr) &&
		(m.Since.IsZero() || !e.Time.Before(m.Since)) &&
		(m.Func == nil || m.Func(e))
}

// String describes what m picks: "a REQUEST from 52:54:00:12:01:05
// answered ACK 192.168.1.100".
func (m Match) String() string {
	s := "a message"
	if m.Type != dhcpv4.MessageTypeNone {
		s = "a " + msgName(m.Type)
	}
	if m.MAC != nil {
		s += " from " + m.MAC.String()
	}
	if m.Hostname != "" {
		s += " (" + m.Hostname + ")"
	}
	if m.Reply != dhcpv4.MessageTypeNone {
		s += " answered " + msgName(m.Reply)
	}
	if m.Addr.IsValid() {
		s += " giving " + m.Addr.String()
	}
	return s + eventlog.MatchTail(m.Since, m.Func != nil, m.Desc)
}

// Log returns a copy of the event log, oldest first: the last
// Config.LogLimit events.
func (s *Server) Log() []Event { return s.log.All() }

// ClearLog empties the event log.
func (s *Server) ClearLog() { s.log.Clear() }

// record appends e to the log, wakes the waits, and hands e to
// Config.Logf.
func (s *Server) record(e Event) {
	s.log.Record(e.Time, e, s.cfg.LogLimit)
	s.logf("dhcp stub: %s", e)
}

// WaitForLease waits for a lease given: a REQUEST answered with an ACK,
// that m matches too (its Type and Reply are set for it). It is
// WaitForEvent otherwise.
func (s *Server) WaitForLease(ctx context.Context, m Match) (Event, error) {
	m.Type, m.Reply = dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeAck
	return s.WaitForEvent(ctx, m)
}

// WaitForEvent returns the first event in the log that m matches, waiting
// for one until ctx ends; it looks at the events logged already too, so
// that one that came before the call is not missed (set m.Since to wait
// for a later one). When ctx ends first, the error says what it waited
// for and the last events it saw, and wraps ErrNoEvent and ctx's error
// (context.DeadlineExceeded, say).
func (s *Server) WaitForEvent(ctx context.Context, m Match) (Event, error) {
	return s.log.Wait(ctx, eventlog.Wait[Event]{Match: m.Matches, What: m.String(), Err: ErrNoEvent,
		Noun: "message", Nouns: "messages",
		Empty: "no message came at all (is the client on the server's network, and the server serving?)"})
}
